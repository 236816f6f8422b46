"""Each post-processing rule on constructed probability curves and frames."""

from __future__ import annotations

import numpy as np
import pytest

from videoapi.pipeline.picture_stats import PictureStats
from videoapi.pipeline.postprocess import detect_transitions, shot_list, transitions_for
from videoapi.pipeline.shots import FrameClock, shot_spans


def texture(seed: int, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A 27x48 picture of coarse random blocks."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(30, 220, (4, 6, 3)).astype(np.float32)
    big = np.kron(blocks, np.ones((7, 8, 1), np.float32))[:27]
    return np.clip(big * np.asarray(tint, np.float32), 0, 255)


def moving(picture: np.ndarray, frames: int, start: int = 0) -> list[np.ndarray]:
    """A slow pan over the picture: one pixel every sixth frame."""
    return [np.roll(picture, (start + t) // 6, axis=1) for t in range(frames)]


def features_of(frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    stats = PictureStats()
    for frame in frames:
        stats.update(np.clip(frame, 0, 255).astype(np.uint8))
    return stats.arrays()


def curves(n: int, single: dict[int, float], hot: tuple[int, int] | list[tuple[int, int]] = ()) -> tuple:
    """single_frame with the given peaks; many_hot 0.9 over the given inclusive spans."""
    s, m = np.full(n, 0.01, np.float32), np.full(n, 0.01, np.float32)
    for at, value in single.items():
        s[at] = value
    for a, b in [hot] if isinstance(hot, tuple) and hot else hot:
        m[a : b + 1] = 0.9
    return s, m


def test_picture_stats_are_small_per_frame():
    arrays = features_of(moving(texture(0), 12))
    assert {name: a.shape[0] for name, a in arrays.items()} == dict.fromkeys(arrays, 12)
    assert all(name.startswith("pp_") for name in arrays)
    assert sum(a[0].nbytes for a in arrays.values()) <= 256
    assert arrays["pp_diff"][0] == 0 and arrays["pp_diff"][1:].max() > 0


def test_a_flash_inside_a_shot_is_no_boundary():
    frames = moving(texture(1), 100)
    for at in (50, 51):
        frames[at] = frames[at] * 0.25 + 255 * 0.75
    s, m = curves(100, {51: 0.7}, (51, 51))
    assert len(shot_spans(s)) == 2  # the reference splits the shot
    assert detect_transitions(s, m, features_of(frames)) == []


def test_a_strobe_is_no_boundary():
    frames = moving(texture(2), 100)
    for at in (40, 42, 44, 46):
        frames[at] = frames[at] * 0.2 + 255 * 0.8
    s, m = curves(100, {40: 0.6, 42: 0.55, 44: 0.7, 46: 0.6})
    assert detect_transitions(s, m, features_of(frames)) == []


def test_a_fade_out_and_fade_in_through_black_is_one_fade():
    a, b = moving(texture(3), 60), moving(texture(4), 60)
    frames = a[:40] + [f * (1 - (i + 1) / 11) for i, f in enumerate(a[40:50])] + [np.zeros_like(a[0])] * 4
    frames += [f * ((i + 1) / 11) for i, f in enumerate(b[:10])] + b[10:50]
    n = len(frames)  # 104; blended frames 40..63
    s, m = curves(n, {46: 0.6, 58: 0.6}, [(41, 49), (54, 62)])
    assert len(shot_spans(s)) == 3  # the reference: two boundaries
    (fade,) = detect_transitions(s, m, features_of(frames))
    assert fade.type == "fade" and abs(fade.start_frame - 40) <= 2 and abs(fade.end_frame - 63) <= 2


def test_a_dissolve_under_the_threshold_is_recovered_with_its_span():
    a, b = moving(texture(5), 100), moving(texture(6), 100)
    frames = a[:40] + [a[40 + i] * (1 - (i + 1) / 21) + b[i] * ((i + 1) / 21) for i in range(20)] + b[20:60]
    s, m = curves(len(frames), {50: 0.3}, (40, 59))
    assert len(shot_spans(s)) == 1  # the reference misses it
    (dissolve,) = detect_transitions(s, m, features_of(frames))
    assert (dissolve.type, dissolve.start_frame, dissolve.end_frame) == ("dissolve", 40, 59)


def test_a_cut_between_similar_shots_stays_on_its_exact_frame():
    picture = texture(7)
    frames = moving(picture, 50) + moving(np.roll(texture(7, (1.05, 1.0, 0.97)), 9, axis=1), 50, start=50)
    # the model's peak one frame late, as on flat content: the cut is still where the picture changes
    s, m = curves(100, {50: 0.6})
    (cut,) = detect_transitions(s, m, features_of(frames))
    assert (cut.type, cut.start_frame, cut.end_frame) == ("cut", 50, 50)


def test_an_exposure_ramp_gives_at_most_one_transition():
    # a still picture brightening by 80% over 30 frames, short of clipping
    dim = texture(8, (0.6, 0.6, 0.6))
    frames = [dim * (1 + 0.8 * min(1.0, max(0.0, (t - 30) / 30))) for t in range(120)]
    frames = [np.clip(f, 0, 255) for f in frames]
    s, m = curves(120, {35: 0.55, 45: 0.6, 55: 0.52}, [(33, 37), (43, 47), (53, 57)])
    assert len(shot_spans(s)) == 4  # the reference: one boundary per ramp step
    assert len(detect_transitions(s, m, features_of(frames))) <= 1


def test_fades_at_the_edges_are_fade_in_and_fade_out():
    a = moving(texture(9), 100)
    frames = [f * ((i + 1) / 16) for i, f in enumerate(a[:15])] + a[15:85]
    frames += [f * (1 - (i + 1) / 16) for i, f in enumerate(a[85:100])]
    s, m = curves(100, {}, [(0, 14), (85, 99)])
    found = detect_transitions(s, m, features_of(frames))
    assert [t.type for t in found] == ["fade_in", "fade_out"]


@pytest.mark.parametrize("seed", range(5))
def test_postprocess_off_is_the_reference_rule(seed):
    rng = np.random.default_rng(seed)
    s = rng.random(300).astype(np.float32) ** 4
    found = transitions_for(s, s, {}, 0.5, enabled=False)
    spans = shot_spans(s, 0.5)
    assert [t.start_frame - 1 for t in found] == [end for _, end in spans[:-1]]
    assert all(t.type == "cut" for t in found)


def test_shots_tile_the_video_and_name_their_transition():
    a, b = moving(texture(10), 100), moving(texture(11), 100)
    frames = a[:40] + [a[40 + i] * (1 - (i + 1) / 21) + b[i] * ((i + 1) / 21) for i in range(20)] + b[20:70]
    frames += moving(texture(12), 40)
    s, m = curves(len(frames), {50: 0.9, 109: 0.95}, (40, 59))
    found = detect_transitions(s, m, features_of(frames))
    assert [t.type for t in found] == ["dissolve", "cut"] and found[1].start_frame == 110
    shots = shot_list(found, len(frames), FrameClock(25.0), 0.5).shots
    assert shots[0].start_frame == 0 and shots[-1].end_frame == len(frames) - 1
    assert all(x.end_frame + 1 == y.start_frame for x, y in zip(shots, shots[1:]))
    assert found[0].start_frame <= shots[1].start_frame <= found[0].end_frame


def test_a_cut_in_a_video_shorter_than_the_hold_is_found():
    # the first candidate run has no run before it to merge with, even when the whole video is that short
    frames = moving(texture(3), 12) + moving(texture(4), 12, start=12)
    s, m = curves(24, {12: 0.9})
    (cut,) = detect_transitions(s, m, features_of(frames))
    assert (cut.type, cut.start_frame, cut.end_frame) == ("cut", 12, 12)


def test_a_long_dissolve_whose_many_hot_sags_in_the_middle_is_one_dissolve_with_its_span():
    # 50 blended frames (a 2 s dissolve): the model's many_hot passes 0.5 at both ends only and single_frame stays low
    a, b = moving(texture(13), 120), moving(texture(14), 120)
    frames = a[:40] + [a[40 + i] * (1 - (i + 1) / 51) + b[i] * ((i + 1) / 51) for i in range(50)] + b[50:90]
    n = len(frames)  # blended frames 40..89
    s, m = curves(n, {60: 0.3})
    m[38:92] = 0.2  # it rises before the run passes 0.5 ...
    m[42:58], m[58:66], m[66:88] = 0.6, 0.4, 0.65  # ... and sags under it in the middle
    assert len(shot_spans(s)) == 1  # the reference misses it
    (dissolve,) = detect_transitions(s, m, features_of(frames))
    assert dissolve.type == "dissolve"
    assert abs(dissolve.start_frame - 40) + abs(dissolve.end_frame - 89) <= 4


def test_a_dissolve_into_a_dark_picture_is_a_dissolve_not_a_fade():
    a, b = moving(texture(15), 100), moving(texture(16, (0.12, 0.12, 0.12)), 100)
    frames = a[:40] + [a[40 + i] * (1 - (i + 1) / 21) + b[i] * ((i + 1) / 21) for i in range(20)] + b[20:60]
    s, m = curves(len(frames), {50: 0.7}, (40, 59))
    (dissolve,) = detect_transitions(s, m, features_of(frames))
    assert dissolve.type == "dissolve"


def test_a_ramp_the_model_takes_for_a_dissolve_on_a_moving_picture_is_dropped():
    # an exposure ramp over 20 frames of a hand-held shot, scored as a gradual transition with single_frame 0.6
    picture, rng = texture(17, (0.5, 0.5, 0.5)), np.random.default_rng(0)
    shaking = [np.roll(picture, tuple(rng.integers(-1, 2, 2)), axis=(0, 1)) for _ in range(110)]
    frames = [np.clip(f * (1 + min(1.0, max(0.0, (t - 40) / 20))), 0, 255) for t, f in enumerate(shaking)]
    s, m = curves(110, {50: 0.6}, (40, 60))
    assert detect_transitions(s, m, features_of(frames)) == []


def test_a_cut_the_model_misses_between_two_crops_of_one_picture_is_found_on_its_frame():
    picture = texture(18)
    frames = moving(picture, 6) + moving(np.roll(picture, 20, axis=1), 6) + moving(np.roll(picture, 9, axis=0), 40)
    s, m = curves(len(frames), {})  # two very short shots the model scores nothing
    cuts = detect_transitions(s, m, features_of(frames))
    assert [(t.type, t.start_frame) for t in cuts] == [("cut", 6), ("cut", 12)]


def test_a_cut_between_two_close_flat_colours_is_found():
    frames = [np.full((27, 48, 3), (110, 180, 60), np.float32)] * 30 + [
        np.full((27, 48, 3), (112, 172, 64), np.float32)
    ] * 30
    s, m = curves(60, {})
    assert [(t.type, t.start_frame) for t in detect_transitions(s, m, features_of(frames))] == [("cut", 30)]


def test_a_pan_in_steps_and_a_flash_are_no_cut_the_model_missed():
    frames = moving(texture(19), 80)  # a jump of one pixel every sixth frame, the same colours
    frames[40] = frames[40] * 0.25 + 255 * 0.75
    s, m = curves(80, {})
    assert detect_transitions(s, m, features_of(frames)) == []


def test_black_frames_inside_a_shot_longer_than_the_excursion_are_no_boundary():
    frames = moving(texture(20), 100)
    for at in range(50, 57):  # seven black frames, then the same shot
        frames[at] = np.zeros_like(frames[at])
    s, m = curves(100, {49: 0.6, 56: 0.45})
    assert detect_transitions(s, m, features_of(frames)) == []


def test_a_fade_in_the_model_misses_is_found_and_belongs_to_the_first_shot():
    a = moving(texture(21, (0.3, 0.3, 0.3)), 70)  # a dark picture: the model barely notices it brighten
    frames = [f * ((i + 1) / 16) for i, f in enumerate(a[:15])] + a[15:70] + moving(texture(22), 30)
    s, m = curves(100, {70: 0.95})
    found = detect_transitions(s, m, features_of(frames))
    assert [(t.type, t.start_frame) for t in found] == [("fade_in", 0), ("cut", 70)]
    assert found[0].end_frame in range(12, 17)
    shots = shot_list(found, 100, FrameClock(25.0), 0.5).shots
    assert [(x.start_frame, x.end_frame) for x in shots] == [(0, 69), (70, 99)]  # no shot of half a fade


def test_a_long_dissolve_the_model_barely_sees_is_found_from_the_frames_with_its_span():
    # 50 blended frames; many_hot stirs (0.15 at most) and single_frame stays at nothing
    a, b = moving(texture(23), 120), moving(texture(24), 120)
    frames = a[:40] + [a[40 + i] * (1 - (i + 1) / 51) + b[i] * ((i + 1) / 51) for i in range(50)] + b[50:90]
    s, m = curves(len(frames), {})  # blended frames 40..89
    m[52:78] = 0.15
    assert len(shot_spans(s)) == 1  # the reference misses it
    (dissolve,) = detect_transitions(s, m, features_of(frames))
    assert dissolve.type == "dissolve" and abs(dissolve.start_frame - 40) + abs(dissolve.end_frame - 89) <= 4
    assert dissolve.confidence == 0.5  # found in the pictures: the threshold's, not the model's


def test_a_bump_of_many_hot_on_one_moving_picture_is_no_dissolve():
    # the same stirring of many_hot, but the picture only pans (and brightens a little): nothing blends into it
    frames = [f * (1 + 0.002 * t) for t, f in enumerate(moving(texture(25), 130))]
    s, m = curves(130, {})
    m[52:78] = 0.15
    assert detect_transitions(s, m, features_of(frames)) == []


def test_a_slow_fade_out_the_model_barely_sees_at_the_end_is_a_fade_out_in_the_last_shot():
    a = moving(texture(26), 120)
    frames = a[:60] + [f * (1 - (i + 1) / 41) for i, f in enumerate(a[60:100])] + [np.zeros_like(a[0])] * 10
    s, m = curves(len(frames), {30: 0.95})  # a cut at 30; the fade out over frames 60..99
    m[75:92] = 0.3
    found = detect_transitions(s, m, features_of(frames))
    assert [t.type for t in found] == ["cut", "fade_out"]
    assert abs(found[1].start_frame - 60) <= 4
    shots = shot_list(found, len(frames), FrameClock(25.0), 0.5).shots
    assert [(x.start_frame, x.end_frame) for x in shots] == [(0, 29), (30, 109)]


def test_a_slow_dip_to_black_and_back_to_the_same_shot_the_model_barely_sees_is_no_boundary():
    a = moving(texture(31), 150)
    frames = a[:50] + [f * (1 - (i + 1) / 31) for i, f in enumerate(a[50:80])] + [np.zeros_like(a[0])] * 4
    frames += [f * ((i + 1) / 31) for i, f in enumerate(a[84:114])] + a[114:150]
    s, m = curves(len(frames), {})
    m[60:76], m[88:104] = 0.2, 0.2
    assert detect_transitions(s, m, features_of(frames)) == []


def test_two_cuts_around_a_dark_shot_are_two_cuts_not_a_fade():
    # a dark picture with detail (under the black level, not one flat colour) between two cuts, its first
    # frames flat as it comes out of a dark corner
    dark = [np.full((27, 48, 3), 14.0, np.float32)] * 4 + moving(texture(33, (0.15, 0.15, 0.15)), 26)
    frames = moving(texture(32), 50) + dark + moving(texture(34), 50)
    s, m = curves(130, {50: 0.6, 80: 0.95})
    found = detect_transitions(s, m, features_of(frames))
    assert [(t.type, t.start_frame) for t in found] == [("cut", 50), ("cut", 80)]


def test_a_fade_whose_fade_in_the_model_misses_spans_both_halves():
    # a fade out over 10 frames, 6 black frames, a slow fade in over 20 frames into a dark picture
    a, b = moving(texture(27), 60), moving(texture(28, (0.15, 0.15, 0.15)), 80)
    frames = a[:40] + [f * (1 - (i + 1) / 11) for i, f in enumerate(a[40:50])] + [np.zeros_like(a[0])] * 6
    frames += [f * ((i + 1) / 21) for i, f in enumerate(b[:20])] + b[20:70]
    s, m = curves(len(frames), {46: 0.8}, (41, 49))  # blended frames 40..75: the model sees the fade out only
    (fade,) = detect_transitions(s, m, features_of(frames))
    assert fade.type == "fade" and abs(fade.start_frame - 40) <= 2 and abs(fade.end_frame - 75) <= 4


def test_a_cut_inside_a_run_the_model_scores_under_the_threshold_is_found_from_the_frames():
    frames = moving(texture(29), 50) + moving(texture(30), 50)
    s, m = curves(100, {50: 0.3}, (49, 51))  # the model's run: under the threshold, too short to recover
    assert len(shot_spans(s)) == 1
    assert [(t.type, t.start_frame) for t in detect_transitions(s, m, features_of(frames))] == [("cut", 50)]


@pytest.mark.parametrize(("width", "height"), [(160, 90), (640, 360)])
def test_a_texture_that_jerks_every_eighth_frame_has_no_cut_but_its_real_ones(tmp_path, width, height):
    # local.synthetic's shots pan a texture one pixel a frame and jump back seven every eighth frame: a jerk the
    # model rightly ignores, isolated like a cut, with the same colours (and, at 640x360, near flat at 48x27)
    from local.synthetic import write_video
    from videoapi.pipeline.decode import iter_model_frames_pyav

    path = tmp_path / "jerky.mp4"
    cuts = write_video(path, [200, 200, 200], fps=25, seed=5, width=width, height=height)
    features = features_of(list(iter_model_frames_pyav(path)))
    blind = np.zeros(len(features["pp_luma"]), np.float32)  # the rules alone: no help from the model
    assert [t.start_frame for t in detect_transitions(blind, blind, features)] == cuts


def test_a_fade_out_in_the_last_second_with_black_to_the_end_is_the_last_shots_fade_out():
    """Issue 36: the span is the ramp, the black tail no part of it, and no black shot is opened."""
    a, b = moving(texture(40), 100), moving(texture(41), 100)
    ramp = [f * (1 - (i + 1) / 21) for i, f in enumerate(b[:20])]
    frames = a[:60] + b[20:80] + ramp + [np.zeros_like(a[0])] * 15  # the ramp 120..139, black 140..154
    n = len(frames)
    s, m = curves(n, {60: 0.95, 141: 0.7}, [(128, 150)])  # the model sees the fade and runs on into the black
    found = detect_transitions(s, m, features_of(frames))
    assert [t.type for t in found] == ["cut", "fade_out"]
    fade = found[1]
    assert abs(fade.start_frame - 120) <= 4 and abs(fade.end_frame - 139) <= 2
    shots = shot_list(found, n, FrameClock(25.0), 0.5).shots
    assert [(x.start_frame, x.end_frame) for x in shots] == [(0, 59), (60, n - 1)]


def test_a_fade_in_after_black_frames_at_the_start_is_the_first_shots_fade_in():
    a, b = moving(texture(42), 100), moving(texture(43), 100)
    frames = [np.zeros_like(a[0])] * 8 + [f * ((i + 1) / 31) for i, f in enumerate(a[:30])] + a[30:90] + b[:60]
    n = len(frames)  # black 0..7, the ramp 8..37, a cut at 98
    s, m = curves(n, {20: 0.7, 98: 0.95}, [(3, 30)])
    found = detect_transitions(s, m, features_of(frames))
    assert [t.type for t in found] == ["fade_in", "cut"]
    assert abs(found[0].start_frame - 8) <= 2 and abs(found[0].end_frame - 37) <= 4
    shots = shot_list(found, n, FrameClock(25.0), 0.5).shots
    assert [(x.start_frame, x.end_frame) for x in shots] == [(0, 97), (98, n - 1)]


def test_a_cut_to_black_a_black_hold_and_a_fade_in_between_shots_is_one_fade_over_the_black():
    """Issue 36's 'as documented': one fade through black whose span covers the black, one boundary."""
    a, b = moving(texture(44), 60), moving(texture(45), 60)
    frames = a[:40] + [np.zeros_like(a[0])] * 8 + [f * ((i + 1) / 13) for i, f in enumerate(b[:12])] + b[12:50]
    n = len(frames)  # the cut to black at 40, black 40..47, the fade in 48..59
    s, m = curves(n, {40: 0.9, 53: 0.6}, [(49, 57)])
    (fade,) = detect_transitions(s, m, features_of(frames))
    assert fade.type == "fade" and abs(fade.start_frame - 40) <= 2 and abs(fade.end_frame - 59) <= 3
    shots = shot_list([fade], n, FrameClock(25.0), 0.5).shots
    assert len(shots) == 2


def test_words_appearing_over_a_picture_that_goes_on_are_no_cut_but_a_cut_under_words_is():
    """The model takes a title appearing over a still picture for a cut (a NASA clip of the real-footage tune part:
    IMAGINE THIS over smoke): the picture's cells outside the words keep their colours exactly, no cut."""
    picture = texture(30)
    titled = picture.copy()
    titled[9:18, 8:40] = 250.0  # white words over the middle third of the picture
    frames = [picture] * 50 + [titled] * 50
    s, m = curves(100, {49: 0.8})
    assert detect_transitions(s, m, features_of(frames)) == []
    # the same words over another picture from that frame on: a cut
    other = texture(31)
    other[9:18, 8:40] = 250.0
    frames = [picture] * 50 + [other] * 50
    assert [(t.type, t.start_frame) for t in detect_transitions(s, m, features_of(frames))] == [("cut", 50)]


def test_rapid_cuts_between_shots_of_two_to_four_frames_are_each_a_cut():
    """Rapid cutting (issue 36 item 4; an edit of the real-footage tune part cuts every 2-4 frames): each cut stands
    out of the steady frames either side of it, though not of the other cuts around it, which `frame_cuts` needs."""
    shots = [moving(texture(40 + k), length) for k, length in enumerate((40, 4, 3, 2, 40))]
    frames = [frame for shot in shots for frame in shot]  # cuts at 40, 44, 47, 49
    s, m = curves(len(frames), {39: 0.8})  # the model sees the first cut only
    found = detect_transitions(s, m, features_of(frames))
    assert [(t.type, t.start_frame) for t in found] == [("cut", 40), ("cut", 44), ("cut", 47), ("cut", 49)]
    # one frame of another picture between two shots: two jumps side by side, neither clean, one boundary
    frames = moving(texture(50), 40) + moving(texture(51), 1) + moving(texture(52), 40)
    found = detect_transitions(*curves(len(frames), {40: 0.8}), features_of(frames))
    assert len(found) == 1 and found[0].type == "cut"


def test_a_fast_pan_past_the_edge_between_two_shades_of_one_scene_is_no_wipe():
    """The camera pans fast (4 pixels a frame, more than a small shift of the frame before explains) past the edge
    between a grey wall and its shadow: the thumbnail's cells switch from one shade to the other one after another, as
    under a wipe's edge, but the pictures before and after have one scene's colours, and a wipe joins two shots."""
    rng = np.random.default_rng(5)
    scene = np.empty((27, 192, 3), np.float32)
    scene[:, :96], scene[:, 96:] = 120.0, 70.0
    scene += rng.normal(0, 3, scene.shape)
    frames = [scene[:, 52 + x : 100 + x] for x in (min(max(0, (t - 40) * 4), 88) for t in range(120))]
    s, m = curves(120, {})
    features = features_of(frames)
    assert np.median(features["pp_unexplained"][41:60]) > 0.5  # no small shift explains the pan's changes
    assert detect_transitions(s, m, features) == []
