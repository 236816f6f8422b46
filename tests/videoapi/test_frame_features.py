"""Frame features see each frame of their span once; segments' arrays stitch into the single pass's."""

from __future__ import annotations

import numpy as np

from videoapi.pipeline.frame_features import FeatureTap, concatenated, stored


class MeanLevel:
    """The mean pixel value of each frame."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def update(self, frame: np.ndarray) -> None:
        self.values.append(float(frame.mean()))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean_level": np.asarray(self.values, np.float32)}


def _frames(count: int) -> list[np.ndarray]:
    return [np.full((27, 48, 3), i % 256, np.uint8) for i in range(count)]


def test_tap_passes_every_frame_and_feeds_only_the_span():
    frames = _frames(40)
    tap = FeatureTap([MeanLevel()], start=10, stop=30)
    passed = list(tap.tap(frames[5:], first=5))  # a segment's stream starts before its span (the margin)
    assert len(passed) == 35 and all(a is b for a, b in zip(passed, frames[5:]))
    assert tap.arrays()["mean_level"].tolist() == list(range(10, 30))


def test_segments_stitch_to_the_single_pass():
    frames = _frames(100)
    whole = FeatureTap([MeanLevel()])
    list(whole.tap(frames, first=0))
    parts = []
    for start, stop in [(0, 40), (40, 80), (80, None)]:
        first = max(0, start - 25)
        tap = FeatureTap([MeanLevel()], start=start, stop=stop)
        list(tap.tap(frames[first : None if stop is None else stop + 25], first=first))
        parts.append(stored(tap.arrays()) | {"single_frame": np.zeros(3)})  # other npz arrays are left alone
    assert concatenated(parts).keys() == {"mean_level"}
    np.testing.assert_array_equal(concatenated(parts)["mean_level"], whole.arrays()["mean_level"])


def test_two_features_with_one_name_are_refused():
    tap = FeatureTap([MeanLevel(), MeanLevel()])
    list(tap.tap(_frames(3), first=0))
    try:
        tap.arrays()
    except ValueError as exc:
        assert "mean_level" in str(exc)
    else:
        raise AssertionError("a duplicate feature name was accepted")
