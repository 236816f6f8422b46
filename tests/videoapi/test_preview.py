"""Keyframe thumbnails and the overview picture, on generated videos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from videoapi.decode import iter_model_frames
from videoapi.preview import (
    OVERVIEW_COLUMNS,
    OverviewSampler,
    keyframes,
    overview_png,
    read_frames_at,
    thumbnail_sheet,
)
from videoapi.synthetic import write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("preview") / "v.mp4"
    cuts = write_video(path, [120, 500, 90, 310], fps=25, width=320, height=180, seed=5)
    return path, cuts


def _all_frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return frames
        frames.append(bgr)


def test_frames_read_at_numbers_are_those_frames(video):
    path, _ = video
    every = _all_frames(path)
    wanted = [0, 3, 119, 120, 700, 1019, 450]  # short gaps read through, long ones seek
    found = read_frames_at(path, wanted, seek_gap=100)
    assert sorted(found) == sorted(wanted)
    for number in wanted:
        assert np.abs(found[number].astype(int) - every[number]).mean() < 1.0, number


def test_thumbnail_sheet_has_a_tile_per_shot_showing_its_keyframe(video):
    path, cuts = video
    spans = list(zip([0, *cuts], [c - 1 for c in cuts] + [1019]))
    frames = keyframes(spans)
    assert frames == [(a + b) // 2 for a, b in spans]
    sheet = thumbnail_sheet(path, frames, tile_height=90, columns=3)
    assert (sheet.count, sheet.columns, sheet.tile_width, sheet.tile_height) == (4, 3, 160, 90)
    image = cv2.imdecode(np.frombuffer(sheet.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (2 * 90, 3 * 160, 3)
    every = _all_frames(path)
    for i, number in enumerate(frames):
        y, x = (i // 3) * 90, (i % 3) * 160

        def small(n):
            return cv2.resize(every[n], (160, 90), interpolation=cv2.INTER_AREA).astype(int)

        expected, others = small(number), [small(n) for n in frames if n != number]
        tile = image[y : y + 90, x : x + 160].astype(int)
        error = np.abs(tile - expected).mean()
        assert error < 12 and all(error < np.abs(tile - o).mean() for o in others), (i, error)


def test_overview_draws_frames_and_bars_like_the_reference():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (60, 27, 48, 3), dtype=np.uint8)
    single = np.zeros(60, np.float32)
    many = np.zeros(60, np.float32)
    single[30], many[31] = 1.0, 0.5
    image = cv2.imdecode(np.frombuffer(overview_png(frames, single, many), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    rows = -(-60 // OVERVIEW_COLUMNS)
    assert image.shape == (rows * 28, OVERVIEW_COLUMNS * 50, 3)
    assert (image[28 : 28 + 27, 5 * 50 : 5 * 50 + 48] == frames[30]).all()  # frame 30: row 1, column 5
    green = image[28 : 28 + 27, 5 * 50 + 48]
    assert (green[1:] == [0, 255, 0]).all()  # a full-height bar for p = 1
    blue = image[28 : 28 + 27, 6 * 50 + 49]
    assert (blue[-13:] == [0, 0, 255]).all() and (blue[:-13] == 0).all()  # half height for 0.5
    assert (image[28 : 28 + 27, 4 * 50 + 48 : 4 * 50 + 50] == 0).all()  # p = 0: no bar


def test_sampling_by_segment_equals_sampling_the_whole(video):
    path, _ = video
    whole = OverviewSampler.for_video(1020, max_frames=100)
    assert whole.stride == 11
    list(whole.tap(iter_model_frames(path), 0))
    parts = []
    for start, stop in ((0, 500), (500, None)):
        part = OverviewSampler.for_video(1020, 100, start, stop)
        first = max(0, start - 25)  # segments decode a margin before their first frame
        list(part.tap(iter_model_frames(path, first, None if stop is None else stop + 25), first))
        parts.append(part.arrays())
    frames, indices = whole.arrays()
    assert list(indices) == list(range(0, 1020, 11)) == list(np.concatenate([p[1] for p in parts]))
    assert (np.concatenate([p[0] for p in parts]) == frames).all()


def test_long_videos_show_the_highest_probability_of_each_stride():
    frames = np.zeros((4, 27, 48, 3), np.uint8)
    single = np.zeros(10, np.float32)
    single[5] = 1.0  # inside tile 1 (frames 3..5) at stride 3
    image = cv2.imdecode(np.frombuffer(overview_png(frames, single, single, stride=3), np.uint8), cv2.IMREAD_COLOR)
    assert image[1:27, 1 * 50 + 48].any() and not image[:, 0 * 50 + 48].any() and not image[:, 2 * 50 + 48].any()
