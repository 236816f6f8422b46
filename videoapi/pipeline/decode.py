"""Decode a video (PyAV or OpenCV), frame by frame, into TransNetV2's 48x27 RGB input.

Over 300 lines because the PyAV and OpenCV paths, the audio tap and the decode warnings must agree frame for
frame; kept side by side so that a change to one is seen against the other.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from videoapi.errors import VideoRejected

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import InputContainer
    from av.packet import Packet
    from av.video.stream import VideoStream

MODEL_WIDTH, MODEL_HEIGHT = 48, 27
T = TypeVar("T")


class TileTap(Protocol):
    """Takes small BGR copies of some frames while they are decoded (the keyframe candidates of a job)."""

    size: tuple[int, int]  # width, height

    def wants(self, index: int) -> bool: ...

    def add(self, index: int, bgr: NDArray[Any]) -> None: ...


class AudioTap(Protocol):
    """Hears the audio track while the video is decoded (videoapi.pipeline.audio.AudioLevels): no second decode."""

    def open_audio(self, edges: NDArray[Any], channels: int) -> None: ...

    def add_audio(self, samples: NDArray[Any], time: float, rate: int) -> None: ...

    covered: float  # absolute seconds up to which it has heard the sound

    @property
    def until(self) -> float: ...  # absolute seconds up to which it needs the sound


def to_model_frame(bgr: NDArray[Any]) -> NDArray[Any]:
    """One decoded BGR frame to a 27x48x3 RGB uint8 frame (area averaging, closest to the reference's ffmpeg scale)."""
    small = cv2.resize(bgr, (MODEL_WIDTH, MODEL_HEIGHT), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def _seek(cap: cv2.VideoCapture, start: int) -> int:
    """Position the capture on frame `start`; returns the frame it is really on."""
    if start <= 0:
        return 0
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == start:
        return start
    # The container could not seek exactly: read through from the start instead.
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    index = 0
    while index < start and cap.grab():
        index += 1
    return index


def tile_taps(tiles: TileTap | Sequence[TileTap | None] | None) -> list[TileTap]:
    """The tile taps of a decode: one, several (the keyframe candidates, the text cues' samples) or none."""
    if tiles is None:
        return []
    if isinstance(tiles, Sequence):
        return [tap for tap in tiles if tap is not None]
    return [tiles]


def iter_model_frames(
    path: Path, start: int = 0, stop: int | None = None, *, tiles: TileTap | Sequence[TileTap | None] | None = None
) -> Iterator[NDArray[Any]]:
    """Yield frames start..stop-1 as 27x48x3 RGB uint8, holding one decoded frame at a time; `tiles` taps some."""
    taps = tile_taps(tiles)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoRejected("not_a_video", f"{Path(path).name} is not a video OpenCV can open")
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)  # the picture as stored, as the PyAV decode gives it
    try:
        index = _seek(cap, start)
        if index < start:
            return
        while stop is None or index < stop:
            ok, bgr = cap.read()
            if not ok:
                break
            for tap in taps:
                if tap.wants(index):
                    tap.add(index, cv2.resize(bgr, tap.size, interpolation=cv2.INTER_AREA))
            yield to_model_frame(bgr)
            index += 1
    finally:
        cap.release()


class DecodeLog:
    """What the decode of frames start..stop-1 could not read: bad packets, and frames missing from the picture run.

    FFmpeg conceals what it can and goes on; so does the decode, counting the damage for the result's warnings.
    """

    def __init__(self, start: int = 0, stop: int | None = None):
        self.start, self.stop = start, stop
        self.errors = 0  # packets refused and frames concealed
        self.frames: list[int] = []  # frame numbers at or next to the damage

    def _mine(self, index: int) -> bool:
        return index >= self.start and (self.stop is None or index < self.stop)

    def bad_packet(self, index: int) -> None:
        """A packet the decoder refused, met when frame `index` was next."""
        if self._mine(index):
            self.errors += 1
            self.frames.append(index)

    def concealed(self, index: int) -> None:
        """Frame `index` came out with damage the decoder concealed (FFmpeg flags it corrupt)."""
        self.bad_packet(index)

    def missing(self, index: int) -> None:
        """Frame `index` never came out of the decoder; the one before stands in for it."""
        if self._mine(index):
            self.frames.append(index)

    def arrays(self) -> dict[str, NDArray[Any]]:
        """For a segment's npz: the error count and the damaged frame numbers."""
        return {"decode_errors": np.array([self.errors]), "decode_damaged": np.array(self.frames, dtype=np.int64)}


def decode_warnings(errors: int, damaged: NDArray[Any], frame_count: int, expected: int) -> list[dict[str, Any]]:
    """The result's `warnings`: decode errors (count, first and last frame touched), frames missing at the end."""
    warnings = []
    if errors or len(damaged):
        warnings.append(
            {
                "code": "decode_errors",
                "count": int(errors or len(damaged)),
                "frames": [int(np.min(damaged)), int(np.max(damaged))] if len(damaged) else [],
                "message": "damaged data was concealed or skipped, as FFmpeg does; shots near these frames may be off",
            }
        )
    if frame_count < expected:
        warnings.append(
            {
                "code": "truncated_video",
                "count": int(expected - frame_count),
                "frames": [int(frame_count), int(expected - 1)],
                "message": f"only {frame_count} of {expected} frames are in the file: the shots cover what is there",
            }
        )
    return warnings


def _frame_number(
    pts: int | None, frame_pts: NDArray[Any] | None, fallback: int, base: int, tb: float, rate: float
) -> int:
    """The frame's position in presentation order: looked up among the probe's timestamps when given."""
    if pts is None:
        return fallback
    if frame_pts is None:
        return round((pts - base) * tb * rate)
    if pts < frame_pts[0] - (1 << 32) and tb == 1 / 90000:
        pts += 1 << 33  # an MPEG-TS clock wrap, undone as the probe did
    at = int(np.searchsorted(frame_pts, pts))
    if at >= len(frame_pts) or (at > 0 and pts - frame_pts[at - 1] < frame_pts[at] - pts):
        at -= 1
    return max(at, 0)


# One thread per swscale call: the outputs are small, so PyAV's default (a thread per core, since 18) only adds
# hand-offs; measured on the 1080p speed clip it cost a fifth more CPU for the same frames, bit for bit.
SCALER_THREADS = 1


def iter_model_frames_pyav(
    path: Path,
    start: int = 0,
    stop: int | None = None,
    *,
    skip_loop_filter: bool = True,
    threads: int = 0,
    interpolation: str = "BICUBIC",
    tiles: TileTap | Sequence[TileTap | None] | None = None,
    frame_pts: NDArray[Any] | None = None,
    log: DecodeLog | None = None,
    audio: AudioTap | None = None,
) -> Iterator[NDArray[Any]]:
    """Like iter_model_frames, decoding with PyAV and scaling straight from YUV to 48x27 RGB in one swscale call.

    Bicubic is what `ffmpeg -s 48x27` (the reference's decode) uses: the frames come out within a grey level or
    so of the reference's, closer than OpenCV's area averaging.
    At 48x27 the in-loop deblocking filter's work is invisible, so it can be skipped (H.264/HEVC honour it);
    no full-size RGB frame is ever made. Frame numbers are positions among `frame_pts` (the probe's sorted
    timestamps: exact for variable frame rate and start offsets); without them, timestamp times the rate.
    Bad packets are skipped and frames that never come are stood in for by the one before, as FFmpeg goes
    on past damage; `log` counts both.
    `audio` hears the first audio stream, demuxed in the same loop (it needs `frame_pts` to place the sound).
    """
    import av
    from av.video.reformatter import VideoReformatter

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise VideoRejected("not_a_video", f"{Path(path).name} is not a video FFmpeg can open") from exc
    log = log if log is not None else DecodeLog(start, stop)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        if skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        average_rate = stream.average_rate or stream.guessed_rate
        assert average_rate is not None and stream.time_base is not None  # a video stream has both
        rate = float(average_rate)
        base = stream.start_time or 0
        tb = float(stream.time_base)
        sound = _open_audio(container, audio, frame_pts, tb)
        if start > 0:
            if frame_pts is not None and start < len(frame_pts):
                # with audio, a little earlier: the sound of the span's first frames may be muxed before them
                back = int(AUDIO_LEAD_S / tb) if sound is not None else 0
                _seek_before(container, stream, frame_pts, start, back, tb)
            else:
                container.seek(base + int(start / rate / tb), stream=stream, backward=True)
        scaler = VideoReformatter()  # one swscale context for the whole video (frame.reformat makes one per frame)
        taps = [(tap, VideoReformatter()) for tap in tile_taps(tiles)]  # a scaler each: sizes differ
        expected = start  # the next frame number to yield
        counted = None  # frames without timestamps are numbered by counting
        previous = None  # the last model frame, to stand in for frames that never come
        packets = container.demux(stream) if sound is None else container.demux(stream, sound)
        hear = None if sound is None or audio is None else lambda packet: _hear(packet, audio)
        # the lambda reads `expected` when a packet fails: the frame the damage lands on
        for frame in _decoded_frames(packets, log, lambda: expected, hear):  # noqa: B023
            index = _frame_number(frame.pts, frame_pts, 0 if counted is None else counted + 1, base, tb, rate)
            counted = index
            if index < expected:
                continue  # before the span, or a repeat
            if stop is not None and index >= stop:
                break
            small = scaler.reformat(
                frame,
                width=MODEL_WIDTH,
                height=MODEL_HEIGHT,
                format="rgb24",
                interpolation=interpolation,
                threads=SCALER_THREADS,
            ).to_ndarray()
            while previous is not None and expected < index:
                log.missing(expected)
                yield previous
                expected += 1
            expected = index
            if frame.is_corrupt:
                log.concealed(index)
            for tap, tile_scaler in taps:
                if tap.wants(index):
                    width, height = tap.size
                    tile = tile_scaler.reformat(
                        frame, width=width, height=height, format="bgr24", interpolation="AREA", threads=SCALER_THREADS
                    )
                    tap.add(index, tile.to_ndarray())
            yield small
            previous = small
            expected += 1
        if frame_pts is not None and previous is not None:
            last = len(frame_pts) if stop is None else min(stop, len(frame_pts))
            while expected < last:  # frames lost at the very end: the index says they exist
                log.missing(expected)
                yield previous
                expected += 1
        if sound is not None:
            assert audio is not None  # a sound stream is opened only for a tap
            _hear_until(packets, audio, audio.until)


def iter_niced(items: Iterator[T], nice: int, depth: int = 32) -> Iterator[T]:
    """`items` run on a thread of their own whose nice value is raised by `nice` (the decoder's threads, started
    from it, inherit it), handed over through a queue of `depth`: a CPU decode beside NVDEC jobs takes the cycles
    those jobs leave instead of slowing their feeding. The thread ends with the iteration, so the job's own thread
    and the next job keep their priority (raising it back would need a privilege). Errors come out here."""
    handoff: queue.Queue[tuple[int, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(entry: tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except (OSError, AttributeError):  # not Linux: the decode runs at the worker's priority
            pass
        try:
            for item in items:
                if not put((0, item)):
                    return
            put((1, None))
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            put((2, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator is closed by the thread that ran it

    thread = threading.Thread(target=produce, name="niced-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == 0:
                yield value
            elif kind == 2:
                raise value
            else:
                return
    finally:
        stop.set()
        thread.join()


def _seek_before(
    container: InputContainer, stream: VideoStream, frame_pts: NDArray[Any], start: int, back: int, tb: float
) -> None:
    """Seek so that decoding starts at a keyframe at or before frame `start` (`back` ticks earlier still).

    A seek may land past its target: MPEG-TS has no index, FFmpeg bisects the file by timestamps and can
    stop on the keyframe after it, which would drop the frames between. So where it lands is looked at
    (the first keyframe demuxed) and a late landing is sought again from further back, 1 s, 2 s, 4 s...
    """
    import av

    target = int(frame_pts[start]) - back
    step = max(1, round(1 / tb))  # a second
    for _ in range(16):
        container.seek(target, stream=stream, backward=True)
        landed = None
        try:
            for packet in container.demux(stream):
                if packet.size and packet.is_keyframe and packet.pts is not None:
                    landed = packet.pts
                    break
        except av.FFmpegError:
            pass
        if landed is None or target < frame_pts[0] or _frame_number(landed, frame_pts, 0, 0, tb, 0.0) <= start:
            break
        target, step = target - step, step * 2
    container.seek(target, stream=stream, backward=True)


# Seconds before a segment's first frame from which its audio is demuxed (muxers interleave in chunks).
AUDIO_LEAD_S = 2.0
# How far past the span's end the video may run while the sound of its last frames is still being looked for.
AUDIO_TAIL_S = 10.0


def _open_audio(
    container: InputContainer, audio: AudioTap | None, frame_pts: NDArray[Any] | None, tb: float
) -> AudioStream | None:
    """The audio stream to demux with the video, opened on the tap; None when there is none to hear."""
    if audio is None or frame_pts is None or not len(frame_pts) or not container.streams.audio:
        return None
    from videoapi.pipeline.audio import frame_edges

    sound = container.streams.audio[0]
    if sound.codec_context is None or not sound.codec_context.sample_rate:
        return None
    audio.open_audio(frame_edges(frame_pts, tb), sound.codec_context.channels)
    return sound


def _hear(packet: Packet[AudioStream], audio: AudioTap) -> None:
    """Decode one audio packet onto the tap; a packet the decoder refuses is skipped (the picture is what counts)."""
    import av

    from videoapi.pipeline.audio import samples_of

    try:
        frames = packet.decode()
    except av.FFmpegError:
        return
    for frame in frames:
        if frame.pts is not None and frame.time_base is not None and frame.sample_rate:
            audio.add_audio(samples_of(frame), float(frame.pts * frame.time_base), frame.sample_rate)


def _hear_until(packets: Iterator[Packet[Any]], audio: AudioTap, until: float) -> None:
    """After the video stopped: go on demuxing (video packets skipped) until the sound reaches `until`."""
    import av

    try:
        for packet in packets:
            if packet.stream.type == "audio":
                _hear(packet, audio)
                if audio.covered >= until:
                    return
            elif packet.pts is not None and float(packet.pts * packet.time_base) > until + AUDIO_TAIL_S:
                return
    except av.FFmpegError:
        return


def _decoded_frames(
    packets: Iterator[Any], log: DecodeLog, next_index: Callable[[], int], hear: Callable[..., Any] | None = None
) -> Iterator[Any]:
    """Every video frame the decoder gives, packet by packet: a packet it refuses is logged and skipped.

    Audio packets (demuxed in the same loop when the sound is heard) go to `hear`.
    """
    import av

    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError:
            log.bad_packet(next_index())
            return  # the container itself is unreadable from here on: what was decoded stands
        if hear is not None and packet.stream.type == "audio":
            hear(packet)
            continue
        try:
            frames = packet.decode()
        except av.FFmpegError:
            log.bad_packet(next_index())
            continue
        yield from frames
