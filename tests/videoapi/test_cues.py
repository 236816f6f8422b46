"""Technical cues from constructed 48x27 frames, and the segment options' ranges."""

import numpy as np
import pytest
from pydantic import ValidationError

from videoapi.pipeline.cues import BAR_COLOURS, CueFeature, SegmentOptions, technical_cues
from videoapi.pipeline.shots import FrameClock

FPS = 25.0


def bars_frame() -> np.ndarray:
    frame = np.zeros((27, 48, 3), dtype=np.uint8)
    edges = np.linspace(0, 48, 8).round().astype(int)
    for colour, left, right in zip(BAR_COLOURS, edges[:-1], edges[1:], strict=True):
        frame[:18, left:right] = colour
    frame[18:] = 30
    return frame


def moving_frame(index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    return rng.integers(40, 220, (27, 48, 3), dtype=np.uint8)


def cues_of(frames, options: SegmentOptions | None = None) -> list[tuple[str, int, int]]:
    options = options or SegmentOptions()
    feature = CueFeature()
    for frame in frames:
        feature.update(frame)
    return [
        (c["type"], c["start_frame"], c["end_frame"])
        for c in technical_cues(feature.arrays(), FrameClock(FPS), options)
    ]


def test_bars_black_content_and_freeze_spans_are_exact():
    frames = [bars_frame()] * 50  # 0..49 bars
    frames += [np.full((27, 48, 3), 8, np.uint8)] * 25  # 50..74 black slug
    frames += [moving_frame(i) for i in range(75, 100)]  # 75..99 content
    frames += [moving_frame(100)] * 60  # 100..159 frozen picture inside the shot
    frames += [moving_frame(i) for i in range(160, 180)]  # 160..179 content
    assert cues_of(frames) == [
        ("ColorBars", 0, 49),
        ("BlackFrames", 50, 74),
        ("Content", 75, 179),
        ("FrozenFrames", 100, 159),
    ]


def test_short_freeze_and_grey_frames_are_no_cue():
    frames = [moving_frame(i) for i in range(20)] + [moving_frame(20)] * 30 + [np.full((27, 48, 3), 60, np.uint8)]
    assert [kind for kind, _, _ in cues_of(frames)] == ["Content"]


def test_black_threshold_and_coverage_follow_the_filter():
    dim = np.full((27, 48, 3), 40, np.uint8)  # about 0.16 of full range
    dim[0, :12] = 255  # 12 of 1296 pixels bright: 99.07% dark
    frames = [moving_frame(0), *([dim] * 10), moving_frame(1)]
    assert ("BlackFrames", 1, 10) in cues_of(frames)
    assert ("BlackFrames", 1, 10) not in cues_of(frames, SegmentOptions(black_max_pixel_threshold=0.1))
    assert ("BlackFrames", 1, 10) not in cues_of(frames, SegmentOptions(black_min_coverage_percentage=99.5))


def test_segmented_arrays_give_the_same_cues():
    frames = [moving_frame(i) for i in range(30)] + [np.zeros((27, 48, 3), np.uint8)] * 20
    whole, first, second = CueFeature(), CueFeature(), CueFeature()
    for index, frame in enumerate(frames):
        whole.update(frame)
        (first if index < 35 else second).update(frame)
    stitched = {name: np.concatenate([first.arrays()[name], second.arrays()[name]]) for name in whole.arrays()}
    options = SegmentOptions()
    assert technical_cues(stitched, FrameClock(FPS), options) == technical_cues(
        whole.arrays(), FrameClock(FPS), options
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({"filters": {"min_segment_confidence": 49}}, "shot_min_confidence"),
        ({"filters": {"black_frame": {"max_pixel_threshold": 1.5}}}, "black_max_pixel_threshold"),
        ({"filters": {"black_frame": {"min_coverage_percentage": -1}}}, "black_min_coverage_percentage"),
        ({"segment_types": ["SCENE"]}, "segment_types"),
        ({"segment_types": []}, "segment_types"),
        ({"min_freeze_s": 0}, "min_freeze_s"),
        ({"silence_db": 3}, "silence_db"),
    ],
)
def test_out_of_range_options_name_their_field(body, field):
    with pytest.raises(ValidationError) as error:
        SegmentOptions.from_body(body)
    assert field in {str(e["loc"][0]) for e in error.value.errors()}


def faded(picture: np.ndarray, gain: float) -> np.ndarray:
    return (picture.astype(np.float32) * gain).astype(np.uint8)


def test_a_fade_through_black_is_not_a_black_slug_but_a_slug_between_cuts_is():
    outgoing, incoming = moving_frame(1), moving_frame(2)
    frames = [moving_frame(i) for i in range(100, 130)]  # 0..29 content
    frames += [faded(outgoing, 1 - (i + 1) / 11) for i in range(10)]  # 30..39 fade out
    frames += [np.zeros((27, 48, 3), np.uint8)] * 5  # 40..44 held black (0.2 s)
    frames += [faded(incoming, (i + 1) / 11) for i in range(10)]  # 45..54 fade in
    frames += [moving_frame(i) for i in range(200, 230)]  # 55..84 content
    frames += [np.full((27, 48, 3), 3, np.uint8)] * 13  # 85..97 a black slug of 0.52 s between two cuts
    frames += [moving_frame(i) for i in range(300, 330)]  # 98..127 content
    found = cues_of(frames)
    assert [cue for cue in found if cue[0] == "BlackFrames"] == [("BlackFrames", 85, 97)]
    assert [cue for cue in found if cue[0] == "Content"] == [("Content", 0, 84), ("Content", 98, 127)]
    # Rekognition's plain rule (any black frame): the fade's darkest frames are black too
    plain = [cue for cue in cues_of(frames, SegmentOptions(min_black_s=0)) if cue[0] == "BlackFrames"]
    assert len(plain) == 2 and plain[0][1] <= 40 and plain[0][2] >= 44 and plain[1] == ("BlackFrames", 85, 97)
    # a slug shorter than min_black_s is not one
    assert not [cue for cue in cues_of(frames, SegmentOptions(min_black_s=0.6)) if cue[0] == "BlackFrames"]
