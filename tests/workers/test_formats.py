"""The format matrix: every kind of file people have gives the shots of its constant-rate H.264 original.

Each file is generated here with PyAV's encoders from the same shots, and run through the worker's own
pipeline in process: `ShotDetector.begin` (probe, decode, Triton, publish) over real Redis, moto S3 and
Triton, the code a Celery worker runs for a one-segment job.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from local.synthetic import write_video
from videoapi.adapters.storage import Storage
from videoapi.adapters.triton import ShotModelClient
from videoapi.domain.jobs import JobStore
from videoapi.pipeline.detection import ShotDetector

pytestmark = pytest.mark.slow

SHOTS = [40, 55, 35, 50]  # 180 frames, cuts at 40, 95, 130
SIZE = {"width": 160, "height": 96}  # multiples of 16: no encoder pads
GOP = {"preset": "ultrafast", "crf": "20", "g": "25"}  # keyframes every second: damage heals within one
FAST = {
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=none"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
    "libsvtav1": {"preset": "10"},  # 11 and 12 write streams FFmpeg cannot fully decode
}

TS_WRAP_MS = (1 << 33) // 90  # MPEG-TS timestamps: 33 bits of a 90 kHz clock, 26.5 hours
MATRIX = {
    "h264_mp4_original": ("mp4", {"options": GOP}),
    "hevc_mkv": ("mkv", {"codec": "libx265", "options": FAST["libx265"]}),
    "vp9_webm": ("webm", {"codec": "libvpx-vp9", "options": FAST["libvpx-vp9"]}),
    "av1_mp4": ("mp4", {"codec": "libsvtav1", "options": FAST["libsvtav1"]}),
    "prores_10bit_mov": ("mov", {"codec": "prores_ks", "pix_fmt": "yuv422p10le", "options": {}}),
    "mpeg2_ts": ("ts", {"codec": "mpeg2video", "options": {}}),
    "mjpeg_avi": ("avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p", "options": {}}),
    "h264_10bit_mkv": ("mkv", {"pix_fmt": "yuv420p10le", "options": GOP}),
    "h264_with_audio_mp4": ("mp4", {"options": GOP, "audio": True}),
    "h264_bframes_edit_list_mp4": ("mp4", {"options": {"preset": "medium", "bf": "3"}}),
    "h264_start_offset_mp4": ("mp4", {"options": GOP, "start_ms": 1500}),
    "h264_start_offset_ts": ("ts", {"options": GOP, "start_ms": 3000, "container_format": "mpegts"}),
    "h264_pts_wrap_ts": ("ts", {"options": GOP, "start_ms": TS_WRAP_MS - 3600, "container_format": "mpegts"}),
    "h264_rotated_90_mp4": ("mp4", {"options": GOP, "rotation": 90}),
    "h264_anamorphic_4_3_mkv": ("mkv", {"options": GOP, "sample_aspect_ratio": Fraction(4, 3)}),
    "h264_interlaced_tff_ts": ("ts", {"options": {**GOP, "x264-params": "interlaced=1:tff=1"}}),
    "h264_vfr_mp4": ("mp4", {"options": GOP, "frame_durations_ms": [20, 33, 47, 60, 25, 41]}),
}


@pytest.fixture(scope="module")
def detector(stack_settings):
    store = JobStore.from_url(stack_settings.redis_url)
    storage = Storage.from_settings(stack_settings)
    with ShotModelClient(stack_settings.triton_url) as model:
        yield ShotDetector(stack_settings, store, storage, lambda: model)


def detect(detector: ShotDetector, path: Path) -> dict:
    """The result document of a one-segment job on `path`, as the worker would publish it."""
    key = f"incoming/{time.time_ns()}-{path.name}"
    detector.storage.put_bytes(key, path.read_bytes(), "application/octet-stream")
    job = detector.store.create(bucket=detector.storage.bucket, key=key, threshold=0.5)
    document = detector.begin(job.id)
    assert isinstance(document, dict), document
    return document


def starts(document: dict) -> list[int]:
    return [shot["start_frame"] for shot in document["shots"]]


def within_one_frame(found: list[int], expected: list[int]) -> bool:
    return len(found) == len(expected) and all(abs(a - b) <= 1 for a, b in zip(found, expected, strict=True))


@pytest.fixture(scope="module")
def original(detector, tmp_path_factory) -> list[int]:
    """The constant-rate H.264 original's shot starts (its cuts are at 40, 95 and 130)."""
    path = tmp_path_factory.mktemp("formats") / "original.mp4"
    cuts = write_video(path, SHOTS, options=GOP, **SIZE)
    found = starts(detect(detector, path))
    assert within_one_frame(found, [0, *cuts]), found
    return found


def presentation_times(path: Path) -> list[float]:
    """Every frame's PTS in seconds from the first frame shown, read by a plain PyAV decode."""
    with av.open(str(path)) as container:
        times = sorted(float(frame.pts * frame.time_base) for frame in container.decode(video=0))
    return [t - times[0] for t in times]


@pytest.mark.parametrize("name", list(MATRIX))
def test_format_gives_the_shots_of_the_original(detector, original, tmp_path, name):
    suffix, spec = MATRIX[name]
    path = tmp_path / f"{name}.{suffix}"
    spec = {"container_format": "mpegts" if suffix == "ts" else None, **spec}
    write_video(path, SHOTS, **SIZE, **spec)
    document = detect(detector, path)
    assert within_one_frame(starts(document), original), (starts(document), original)
    video = document["video"]
    assert video["frame_count"] == sum(SHOTS) and document["warnings"] == []
    times = presentation_times(path)
    shown = {"h264_rotated_90_mp4": (90, 96, 160), "h264_anamorphic_4_3_mkv": (0, 213, 96)}.get(name, (0, 160, 96))
    assert (video["rotation"], video["display_width"], video["display_height"]) == shown
    thumbnails_are_upright_at_the_displays_aspect(detector, document, path)
    assert (video["field_order"] != "progressive") == ("interlaced" in name), video["field_order"]
    if "frame_durations_ms" in spec:
        assert video["variable_frame_rate"] and video["timecode"] == "media"
        assert (video["min_fps"], video["max_fps"]) == pytest.approx((1000 / 60, 1000 / 20))
        for shot in document["shots"]:
            assert shot["start_time"] == pytest.approx(times[shot["start_frame"]], abs=0.001), shot
            assert shot["end_time"] == pytest.approx(
                times[shot["end_frame"] + 1] if shot["end_frame"] + 1 < len(times) else video["duration"], abs=0.001
            )
        assert document["shots"][1]["start_timecode"].count(":") == 2 and "." in document["shots"][1]["start_timecode"]
    else:
        assert not video["variable_frame_rate"] and video["timecode"] == "smpte"
        assert document["shots"][0]["start_time"] == 0.0  # times from the first frame shown, whatever its PTS
        assert [s["start_time"] for s in document["shots"]] == [round(s / 25, 6) for s in starts(document)]
        assert times[1] == pytest.approx(0.04, abs=0.001)


def thumbnails_are_upright_at_the_displays_aspect(detector: ShotDetector, document: dict, path: Path) -> None:
    """The sheet's tiles are 90 rows at the display's aspect and show the keyframe as a player shows it."""
    import cv2

    video, sheet = document["video"], document["previews"]["thumbnails"]
    size = (round(90 * video["display_width"] / video["display_height"]), 90)
    assert (sheet["tile_width"], sheet["tile_height"]) == size and sheet["count"] == len(document["shots"])
    image = cv2.imdecode(np.frombuffer(detector.storage.get_bytes(sheet["key"]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (90, sheet["columns"] * size[0], 3)
    with av.open(str(path)) as container:
        stored = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    for i, number in enumerate(sheet["keyframes"]):
        tile = image[:, i * size[0] : (i + 1) * size[0]].astype(int)
        turned = np.rot90(stored[number], video["rotation"] // 90)  # counterclockwise, as FFmpeg's autorotate
        error = np.abs(tile - cv2.resize(turned, size, interpolation=cv2.INTER_AREA)).mean()
        wrong = np.abs(tile - cv2.resize(np.rot90(turned, 2), size, interpolation=cv2.INTER_AREA)).mean()
        assert error < 20 and error < wrong / 2, (i, error, wrong)
    overview = cv2.imdecode(
        np.frombuffer(detector.storage.get_bytes(document["previews"]["overview"]["key"]), np.uint8), 1
    )
    tile_width = round(27 * video["display_width"] / video["display_height"])
    assert overview.shape[1] == 25 * (tile_width + 2), overview.shape


def test_codec_name_is_the_formats(detector, original, tmp_path):
    path = tmp_path / "av1.mkv"
    write_video(path, SHOTS, codec="libsvtav1", options=FAST["libsvtav1"], **SIZE)
    assert detect(detector, path)["video"]["codec"] == "av1"


def overwrite_blocks(data: bytes, blocks: int = 20, size: int = 64, seed: int = 5) -> tuple[bytes, int, int]:
    """`blocks` random blocks of `size` bytes overwritten in the middle third; returns the bytes and the span hit."""
    rng = np.random.default_rng(seed)
    damaged = bytearray(data)
    offsets = rng.integers(len(data) // 3, 2 * len(data) // 3, blocks)
    for offset in offsets:
        damaged[offset : offset + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    return bytes(damaged), int(offsets.min()), int(offsets.max()) + size


def test_damaged_file_succeeds_with_a_warning_and_the_shots_away_from_the_damage(detector, original, tmp_path):
    path = tmp_path / "damaged.mp4"
    write_video(path, SHOTS, options=GOP, **SIZE)
    data, _, _ = overwrite_blocks(path.read_bytes())
    path.write_bytes(data)
    document = detect(detector, path)
    (warning,) = [w for w in document["warnings"] if w["code"] == "decode_errors"]
    first, last = warning["frames"]
    assert warning["count"] >= 1 and 0 <= first <= last < sum(SHOTS)
    assert document["video"]["frame_count"] == sum(SHOTS)  # frames lost to the damage are stood in for
    # a damaged frame smears until the next keyframe (every 25 frames): compare the shots outside that reach
    reach = range(first - 1, last + 26)
    kept = [s for s in original if s not in reach]
    found = [s for s in starts(document) if s not in reach]
    assert within_one_frame(found, kept), (found, kept, warning)


def test_truncated_file_with_its_index_first_gives_the_shots_of_what_is_there(detector, original, tmp_path):
    path = tmp_path / "truncated.mp4"
    write_video(path, SHOTS, options=GOP, container_options={"movflags": "faststart"}, **SIZE)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == sum(SHOTS)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    document = detect(detector, path)
    (warning,) = [w for w in document["warnings"] if w["code"] == "truncated_video"]
    frames = document["video"]["frame_count"]
    assert 60 < frames < sum(SHOTS) and warning["frames"] == [frames, sum(SHOTS) - 1]
    assert within_one_frame(starts(document), [s for s in original if s < frames - 1])


def test_nothing_decodable_fails_as_corrupt_video(detector, tmp_path):
    path = tmp_path / "garbage.mp4"
    write_video(path, SHOTS, options=GOP, container_options={"movflags": "faststart"}, **SIZE)  # the index survives
    data = bytearray(path.read_bytes())
    mdat = data.find(b"mdat") + 4
    data[mdat:] = np.random.default_rng(1).integers(0, 256, len(data) - mdat, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    key = f"incoming/{time.time_ns()}-garbage.mp4"
    detector.storage.put_bytes(key, path.read_bytes(), "application/octet-stream")
    job = detector.store.create(bucket=detector.storage.bucket, key=key, threshold=0.5)
    with pytest.raises(Exception) as caught:
        detector.begin(job.id)
    from videoapi.pipeline.detection import as_job_error

    assert as_job_error(caught.value).code == "corrupt_video", caught.value


def test_a_split_variable_frame_rate_job_equals_a_single_pass(detector, tmp_path):
    """Segments find their frames by the probe's timestamps and carry their damage: stitching stays exact."""
    path = tmp_path / "vfr_long.mp4"
    write_video(path, [130, 210, 95, 165], options=GOP, frame_durations_ms=[20, 33, 47, 60, 25, 41], **SIZE)
    data, _, _ = overwrite_blocks(path.read_bytes(), blocks=6)
    path.write_bytes(data)
    whole = ShotDetector(
        detector.settings.model_copy(update={"segment_frames": 10_000}),
        detector.store,
        detector.storage,
        lambda: detector.model,
    )
    single = detect(whole, path)
    split = ShotDetector(
        detector.settings.model_copy(update={"segment_frames": 150}),
        detector.store,
        detector.storage,
        lambda: detector.model,
    )
    key = f"incoming/{time.time_ns()}-split.mp4"
    detector.storage.put_bytes(key, path.read_bytes(), "application/octet-stream")
    job = detector.store.create(bucket=detector.storage.bucket, key=key, threshold=0.5)
    segments = split.begin(job.id)
    assert isinstance(segments, list) and len(segments) == 4
    document = split.stitch(job.id, [split.run_segment(job.id, segment) for segment in segments])
    assert document["shots"] == single["shots"] and document["warnings"] == single["warnings"]
    assert document["video"] == {**single["video"], "source": document["video"]["source"]}
    assert document["video"]["variable_frame_rate"] and single["warnings"][0]["code"] == "decode_errors"


def test_a_split_transport_stream_whose_clock_wraps_equals_its_unwrapped_original(detector, tmp_path):
    """The 33-bit clock wraps at frame 90; segments seek across it (and MPEG-TS seeks, by bisection, can land on
    the keyframe after their target: the frames between would be lost and the rest misnumbered)."""
    original, wrapped = tmp_path / "original.ts", tmp_path / "wrapped.ts"
    gop = {**GOP, "g": "30"}  # segments decode from 25, 75, 125: between keyframes, where a TS seek may land late
    write_video(original, SHOTS, options=gop, container_format="mpegts", **SIZE)
    write_video(wrapped, SHOTS, options=gop, container_format="mpegts", start_ms=TS_WRAP_MS - 3600, **SIZE)
    with av.open(str(wrapped), options={"correct_ts_overflow": "0"}) as container:  # the timestamps as written
        written = [packet.pts for packet in container.demux(video=0) if packet.size]
    assert 85 <= int(np.argmin(np.diff(written))) <= 95 and min(written) < 90_000 < (1 << 33) - 90_000 < max(written)
    reference = detect(detector, original)
    split = ShotDetector(
        detector.settings.model_copy(update={"segment_frames": 60}),
        detector.store,
        detector.storage,
        lambda: detector.model,
    )
    key = f"incoming/{time.time_ns()}-wrapped.ts"
    detector.storage.put_bytes(key, wrapped.read_bytes(), "application/octet-stream")
    job = detector.store.create(bucket=detector.storage.bucket, key=key, threshold=0.5)
    segments = split.begin(job.id)
    assert isinstance(segments, list) and len(segments) == 4  # on the 50-frame window grid: 0, 50, 100, 150
    document = split.stitch(job.id, [split.run_segment(job.id, segment) for segment in segments])
    assert document["warnings"] == [] and document["video"]["frame_count"] == sum(SHOTS)
    assert within_one_frame(starts(document), starts(reference)), (starts(document), starts(reference))
    times = [shot["start_time"] for shot in document["shots"]]
    assert times[0] == 0.0 and times == sorted(times)  # from the first frame shown, monotonic through the wrap
    for shot, expected in zip(document["shots"], reference["shots"], strict=True):
        assert abs(shot["start_time"] - expected["start_time"]) <= 0.04 + 0.001
        assert shot["start_time"] == pytest.approx(shot["start_frame"] / 25, abs=0.001)
        assert shot["end_time"] == pytest.approx((shot["end_frame"] + 1) / 25, abs=0.001)
    assert document["video"]["duration"] == reference["video"]["duration"] == 7.2


def test_a_url_source_is_downloaded_by_the_worker_and_a_refused_one_fails_with_its_code(detector, original, tmp_path):
    """A local HTTP server on loopback, allowed by this test's settings; the stack's own settings refuse it."""
    import functools
    import http.server
    import threading

    from videoapi.errors import JobError

    write_video(tmp_path / "served.mp4", SHOTS, options=GOP, **SIZE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/served.mp4"
    try:
        allowed = ShotDetector(
            detector.settings.model_copy(update={"url_source_allow_http": True, "url_source_allow_loopback": True}),
            detector.store,
            detector.storage,
            lambda: detector.model,
        )
        document = allowed.begin(detector.store.create(bucket="", key=url, threshold=0.5).id)
        assert document["video"]["source"] == url and within_one_frame(starts(document), original)
        refused = detector.store.create(bucket="", key=url, threshold=0.5)
        with pytest.raises(JobError) as caught:
            detector.begin(refused.id)
        assert caught.value.code == "source_not_allowed"
    finally:
        httpd.shutdown()
        httpd.server_close()
