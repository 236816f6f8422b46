"""Decode into 48x27 RGB, with OpenCV or PyAV: ranges are exact slices of a full pass; PyAV matches the reference."""

from functools import partial

import numpy as np
import pytest

from local.synthetic import write_video
from videoapi.errors import VideoRejected
from videoapi.pipeline.decode import iter_model_frames, iter_model_frames_pyav, iter_niced

DECODERS = {
    "opencv": iter_model_frames,
    "pyav": iter_model_frames_pyav,
    "pyav-deblocked": partial(iter_model_frames_pyav, skip_loop_filter=False),
}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "v.mp4"
    write_video(path, [120, 130, 150], fps=25)
    return path


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_full_decode_shape_and_type(video, decoder):
    frames = np.stack(list(DECODERS[decoder](video)))
    assert frames.shape == (400, 27, 48, 3) and frames.dtype == np.uint8
    # content changes at the cuts: the mean colour jumps
    means = frames.reshape(400, -1).mean(axis=1)
    jumps = np.argsort(np.abs(np.diff(means)))[-2:] + 1
    assert sorted(jumps.tolist()) == [120, 250]


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize(
    "start,stop", [(0, 75), (75, 225), (175, 400), (260, 300), (350, None), (399, None), (500, None)]
)
def test_ranges_are_exact_slices(video, decoder, start, stop):
    decode = DECODERS[decoder]
    full = np.stack(list(decode(video)))
    part = list(decode(video, start, stop))
    expected = full[start:stop]
    assert len(part) == len(expected)
    if part:
        assert np.array_equal(np.stack(part), expected)


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_not_a_video(tmp_path, decoder):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"hello" * 1000)
    with pytest.raises(VideoRejected) as caught:
        list(DECODERS[decoder](path))
    assert caught.value.code == "not_a_video"


def test_pyav_frames_are_closest_to_the_reference_decode(reference_video, reference_frames):
    """The reference decodes with `ffmpeg -s 48x27` (swscale, bicubic): PyAV from YUV lands within a grey level."""
    errors = {}
    for name, decode in DECODERS.items():
        frames = np.stack(list(decode(reference_video)))
        assert frames.shape == reference_frames.shape
        errors[name] = float(np.abs(frames.astype(np.int16) - reference_frames).mean())
    assert errors["pyav-deblocked"] < 0.5 and errors["pyav"] < 1.5 < 2.0 < errors["opencv"], errors


# MPEG-TS timestamps are 33 bits of a 90 kHz clock: they wrap to 0 after 2^33 ticks (about 26.5 hours)
TS_WRAP_MS = (1 << 33) // 90


def _write_ts(path, start_ms: int) -> list[int]:
    return write_video(
        path,
        [40, 55, 35, 50],
        width=160,
        height=96,
        options={"preset": "ultrafast", "crf": "20", "g": "25"},
        container_format="mpegts",
        start_ms=start_ms,
    )


def test_a_transport_stream_whose_timestamps_wrap_decodes_like_its_unwrapped_original(tmp_path):
    import av

    from videoapi.pipeline.probe import frame_times, probe_timeline

    wrapped, original = tmp_path / "wrapped.ts", tmp_path / "original.ts"
    _write_ts(wrapped, TS_WRAP_MS - 3600)  # 3.6 s (90 frames) before the clock wraps
    _write_ts(original, 0)
    with av.open(str(wrapped), options={"correct_ts_overflow": "0"}) as container:  # the timestamps as written
        written = [p.pts for p in container.demux(video=0) if p.size]
    drop = int(np.argmin(np.diff(written)))
    assert 85 <= drop <= 95 and written[drop] > (1 << 33) - 90_000 and 0 <= written[drop + 1] < 90_000  # it wraps

    info, pts = probe_timeline(wrapped)
    reference, reference_pts = probe_timeline(original)
    assert (info.frame_count, info.fps, info.variable_frame_rate) == (180, 25.0, False)
    assert (info.duration, info.end_time) == (reference.duration, reference.end_time) == (7.2, 7.2)
    times = frame_times(pts, info.time_base)
    assert (np.diff(times) > 0).all()  # monotonic through the wrap
    np.testing.assert_allclose(times, np.arange(180) / 25, atol=1e-3)
    np.testing.assert_allclose(times, frame_times(reference_pts, reference.time_base), atol=1e-3)

    whole = np.stack(list(iter_model_frames_pyav(wrapped, frame_pts=pts)))
    assert whole.shape == (180, 27, 48, 3)
    assert np.abs(whole.astype(int) - np.stack(list(iter_model_frames_pyav(original)))).max() <= 2
    for start, stop in ((60, 120), (91, None), (100, 150)):  # segments across, at and after the wrap seek to it
        part = np.stack(list(iter_model_frames_pyav(wrapped, start, stop, frame_pts=pts)))
        assert (part == whole[start:stop]).all(), (start, stop)


def test_a_wrap_the_demuxer_left_in_is_undone_by_the_probe_and_the_decode():
    """Where libavformat has not corrected the wrap, the 33-bit clock is unwrapped as FFmpeg would."""
    from fractions import Fraction

    from videoapi.pipeline.decode import _frame_number
    from videoapi.pipeline.probe import _filled_timestamps

    wrap, step = 1 << 33, 3600
    written = [wrap - 2 * step + 100, wrap - step + 100, 100, step + 100, None, 3 * step + 100]
    filled = _filled_timestamps(written, Fraction(25), Fraction(1, 90000))
    assert (np.diff(filled) == step).all() and filled[0] == wrap - 2 * step + 100
    assert [_frame_number(p, filled, 0, 0, 1 / 90000, 25.0) for p in (wrap - step + 100, 100, 3 * step + 100)] == [
        1,
        2,
        5,
    ]


def test_a_niced_decode_runs_on_a_thread_of_its_own_at_a_lower_priority():
    # a CPU decode beside NVDEC jobs (cpu_decode_nice): its thread is niced, the job's own thread keeps its priority
    import os
    import threading

    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen = []

    def frames():
        seen.append((threading.get_native_id(), priority()))
        yield from range(100)

    base = priority()
    assert list(iter_niced(frames(), 5, depth=4)) == list(range(100))
    assert seen[0][0] != threading.get_native_id()
    assert seen[0][1] == min(19, base + 5)
    assert priority() == base


def test_a_niced_decode_raises_its_errors_and_stops_when_left():
    import threading

    def broken():
        yield 1
        raise VideoRejected("not_a_video", "broken")

    with pytest.raises(VideoRejected):
        list(iter_niced(broken(), 3))
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    frames = iter_niced(endless(), 3, depth=2)
    assert next(frames) == 0
    frames.close()
    assert closed.wait(5)
