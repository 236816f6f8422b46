"""Each post-processing rule on constructed probability curves and frames."""

from __future__ import annotations

import numpy as np
import pytest

from videoapi.pipeline.postprocess import PictureStats, detect_transitions, shot_list, transitions_for
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
