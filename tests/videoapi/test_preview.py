"""Keyframe thumbnails and the overview picture, on generated videos."""

from __future__ import annotations

import io
from contextlib import contextmanager

import cv2
import numpy as np
import pytest

from local.synthetic import write_video
from videoapi.domain.result import npz_bytes
from videoapi.pipeline.decode import iter_model_frames, iter_model_frames_pyav
from videoapi.pipeline.preview import (
    KEYFRAME_MAX_CANDIDATES,
    KEYFRAME_MIN_STRIDE,
    OVERVIEW_COLUMNS,
    KeyframeCandidates,
    OverviewSampler,
    StoredCandidates,
    keyframe_tiles,
    keyframes,
    overview_png,
    read_frames_at,
    thumbnail_sheet,
)


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


def _tiles_show_frames(image, frames, every, columns=3, size=(160, 90)):
    width, height = size
    small = {n: cv2.resize(every[n], size, interpolation=cv2.INTER_AREA).astype(int) for n in frames}
    for i, number in enumerate(frames):
        y, x = (i // columns) * height, (i % columns) * width
        tile = image[y : y + height, x : x + width].astype(int)
        error = np.abs(tile - small[number]).mean()
        # two JPEG passes (candidate, sheet) over this noise-textured synthetic video cost about 10 grey levels
        assert error < 20 and all(error < np.abs(tile - small[n]).mean() for n in frames if n != number), (i, error)


def _no_second_decode():
    raise AssertionError("the video was opened again")


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_keyframes_come_from_the_one_decode_and_make_the_sheet(video, decoder):
    path, cuts = video
    spans = list(zip([0, *cuts], [c - 1 for c in cuts] + [1019]))
    candidates = KeyframeCandidates.for_video(320, 180, 1020)
    assert (candidates.stride, candidates.size) == (KEYFRAME_MIN_STRIDE, (160, 90))
    decode = iter_model_frames_pyav if decoder == "pyav" else iter_model_frames
    assert sum(1 for _ in decode(path, tiles=candidates)) == 1020
    assert candidates.numbers().tolist() == list(range(0, 1020, KEYFRAME_MIN_STRIDE))

    frames, tiles = keyframe_tiles(candidates, spans, _no_second_decode)
    for (first, last), middle, frame in zip(spans, keyframes(spans), frames):
        assert first <= frame <= last and abs(frame - middle) <= KEYFRAME_MIN_STRIDE // 2
    sheet = thumbnail_sheet(tiles, len(frames), candidates.size, columns=3)
    assert (sheet.count, sheet.columns, sheet.tile_width, sheet.tile_height) == (4, 3, 160, 90)
    image = cv2.imdecode(np.frombuffer(sheet.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (2 * 90, 3 * 160, 3)
    _tiles_show_frames(image, frames, _all_frames(path))


def test_a_shot_shorter_than_the_stride_is_read_from_the_video(video):
    path, _ = video
    candidates = KeyframeCandidates.for_video(320, 180, 1020, start=0, stop=1020)
    list(iter_model_frames_pyav(path, tiles=candidates))
    spans = [(0, 200), (201, 203), (204, 1019)]  # 201..203 holds no multiple of 4
    opened = []

    @contextmanager
    def open_video():
        opened.append(path)
        yield path

    frames, tiles = keyframe_tiles(candidates, spans, open_video)
    assert len(opened) == 1 and frames[1] == 202
    image = thumbnail_sheet(tiles, len(frames), candidates.size, columns=3)
    _tiles_show_frames(cv2.imdecode(np.frombuffer(image.jpeg, np.uint8), cv2.IMREAD_COLOR), frames, _all_frames(path))


def test_segments_spill_files_serve_their_tiles_one_segment_at_a_time(video, tmp_path):
    path, _ = video
    whole = KeyframeCandidates.for_video(320, 180, 1020)
    list(iter_model_frames(path, tiles=whole))
    stored, segments = {}, {}
    for first, stop in ((0, 500), (500, None)):
        part = KeyframeCandidates.for_video(320, 180, 1020, start=first, stop=stop)
        list(iter_model_frames(path, max(0, first - 25), None if stop is None else stop + 25, tiles=part))
        part.spill.seek(0)
        stored[f"segment-{first}"] = part.spill.read()  # what the worker uploads
        with np.load(io.BytesIO(npz_bytes(**part.index_arrays()))) as data:
            segments[f"segment-{first}"] = {name: data[name] for name in data.files}
        part.close()
    fetched = []

    def fetch(key, target):
        fetched.append(key)
        target.write_bytes(stored[key])
        return target

    candidates = StoredCandidates((160, 90), segments, fetch)
    try:
        assert candidates.numbers().tolist() == whole.numbers().tolist()
        for number in (0, 496, 500, 1016):
            assert np.abs(candidates.tile(number).astype(int) - whole.tile(number)).mean() < 1.0
    finally:
        candidates.close()
        whole.close()
    assert fetched == ["segment-0", "segment-500"]  # in frame order: each segment's file fetched once


def test_long_videos_get_a_sparser_grid_of_bounded_size():
    hours = KeyframeCandidates.for_video(1920, 1080, 4 * 3600 * 30)
    assert hours.stride == -(-4 * 3600 * 30 // KEYFRAME_MAX_CANDIDATES)
    assert hours.size == (160, 90) and KeyframeCandidates.for_video(1080, 1920, 100).size == (51, 90)


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


# Rotation and aspect: pictures are shown upright, at the display's aspect, as a player (FFmpeg's autorotate) shows them


def _write_marked(path, rotation=0, sample_aspect_ratio=None, frames=40, width=160, height=96, container_format=None):
    """Two flat shots (dark, then light grey) with a white block in the top-left corner of the stored picture."""
    import av

    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        if rotation:
            stream.set_display_rotation(rotation)
        if sample_aspect_ratio:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        for i in range(frames):
            rgb = np.full((height, width, 3), 40 if i < frames // 2 else 110, np.uint8)
            rgb[: height // 3, : width // 4] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _ffmpeg_frames(ffmpeg_exe, path, width, height):
    """Every frame (BGR) as the ffmpeg command line shows it: autorotated (the display matrix applied)."""
    import subprocess

    raw = subprocess.run(
        [ffmpeg_exe, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def _bright_corner(picture) -> str:
    """Which quarter of the picture holds the white block: 'top-left', 'bottom-right', ..."""
    height, width = picture.shape[:2]
    grey = picture.astype(float).mean(axis=2)
    quarters = {
        f"{v}-{h}": grey[ys, xs].mean()
        for v, ys in (("top", slice(0, height // 2)), ("bottom", slice(height - height // 2, height)))
        for h, xs in (("left", slice(0, width // 2)), ("right", slice(width - width // 2, width)))
    }
    return max(quarters, key=quarters.get)


# the stored picture's top-left corner, turned counterclockwise by the display matrix's angle
UPRIGHT_CORNER = {0: "top-left", 90: "bottom-left", 180: "bottom-right", 270: "top-right"}


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_keyframes_and_overview_of_a_rotated_video_are_upright(tmp_path, ffmpeg_exe, rotation, decoder):
    from videoapi.pipeline.preview import shown_tile_size
    from videoapi.pipeline.probe import probe

    path = tmp_path / f"rotated-{rotation}.mp4"
    _write_marked(path, rotation=rotation)
    info = probe(path)
    turned = rotation % 180 == 90
    assert (info.rotation, info.display_width, info.display_height) == (rotation, *((96, 160) if turned else (160, 96)))
    shown = _ffmpeg_frames(ffmpeg_exe, path, info.display_width, info.display_height)
    assert _bright_corner(shown[0]) == UPRIGHT_CORNER[rotation]  # the expectation is FFmpeg's

    candidates = KeyframeCandidates.for_info(info)
    decode = iter_model_frames_pyav if decoder == "pyav" else iter_model_frames
    model_frames = np.stack(list(decode(path, tiles=candidates)))
    # the model's input is the picture as stored, not turned (see docs/formats.md)
    assert model_frames.shape == (40, 27, 48, 3) and _bright_corner(model_frames[0]) == "top-left"

    spans = [(0, 20), (21, 23), (24, 39)]  # 21..23 holds no candidate: its keyframe is read from the video
    opened = []

    @contextmanager
    def open_video():
        opened.append(path)
        yield path

    frames, tiles = keyframe_tiles(candidates, spans, open_video)
    size = shown_tile_size(candidates)
    assert opened == [path] and size == ((54, 90) if turned else (150, 90))  # 90 rows at the display's aspect
    sheet = thumbnail_sheet(tiles, len(frames), size, columns=3)
    assert (sheet.tile_width, sheet.tile_height) == size
    image = cv2.imdecode(np.frombuffer(sheet.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (90, 3 * size[0], 3)
    for i, number in enumerate(frames):
        tile = image[:, i * size[0] : (i + 1) * size[0]]
        expected = cv2.resize(shown[number], size, interpolation=cv2.INTER_AREA)
        assert _bright_corner(tile) == UPRIGHT_CORNER[rotation], i
        assert np.abs(tile.astype(int) - expected).mean() < 6, i

    single = np.zeros(40, np.float32)
    png = overview_png(model_frames, single, single, rotation=rotation, aspect=info.display_width / info.display_height)
    overview = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    tile_width = 16 if turned else 45  # 27 rows at 96:160 or 160:96
    assert overview.shape == (2 * 28, OVERVIEW_COLUMNS * (tile_width + 2), 3)
    first = overview[:27, :tile_width]
    assert _bright_corner(first) == UPRIGHT_CORNER[rotation]
    expected = cv2.resize(shown[0], (tile_width, 27), interpolation=cv2.INTER_AREA)
    assert np.abs(first.astype(int) - expected).mean() < 12


def test_an_anamorphic_videos_pictures_have_the_displays_aspect(tmp_path):
    from fractions import Fraction

    from videoapi.pipeline.preview import shown_tile_size
    from videoapi.pipeline.probe import probe

    path = tmp_path / "anamorphic.mkv"
    _write_marked(path, sample_aspect_ratio=Fraction(4, 3), container_format="matroska")
    info = probe(path)
    assert (info.width, info.height, info.display_width, info.display_height) == (160, 96, 213, 96)
    candidates = KeyframeCandidates.for_info(info)
    model_frames = np.stack(list(iter_model_frames_pyav(path, tiles=candidates)))
    assert model_frames.shape == (40, 27, 48, 3)  # the model's input is 48x27 whatever the aspect
    frames, tiles = keyframe_tiles(candidates, [(0, 19), (20, 39)], _no_second_decode)
    size = shown_tile_size(candidates)
    assert size == candidates.size == (200, 90)  # 213:96, not the stored 160:96 (150x90)
    sheet = thumbnail_sheet(tiles, len(frames), size, columns=2)
    image = cv2.imdecode(np.frombuffer(sheet.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (90, 400, 3)
    stored = _all_frames(path)
    for i, number in enumerate(frames):
        tile = image[:, i * 200 : (i + 1) * 200].astype(int)
        stretched = cv2.resize(stored[number], size, interpolation=cv2.INTER_AREA)  # the stored picture, widened
        assert np.abs(tile - stretched).mean() < 6
        block = tile.mean(axis=2) > 200  # the white block: a quarter of the width, a third of the height
        assert abs(block[5].sum() - 50) <= 2 and abs(block[:, 5].sum() - 30) <= 2
    single = np.zeros(40, np.float32)
    png = overview_png(model_frames, single, single, aspect=213 / 96)
    overview = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert overview.shape == (2 * 28, OVERVIEW_COLUMNS * (60 + 2), 3)  # 27 rows at 213:96: 60 wide


def test_a_square_pixel_landscape_video_keeps_the_references_overview():
    frames = np.random.default_rng(1).integers(0, 256, (3, 27, 48, 3), dtype=np.uint8)
    single = np.zeros(3, np.float32)
    assert overview_png(frames, single, single, rotation=0, aspect=1920 / 1080) == overview_png(frames, single, single)
