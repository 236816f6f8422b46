"""Decode a video (PyAV or OpenCV), frame by frame, into TransNetV2's 48x27 RGB input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from videoapi.probe import VideoRejected

MODEL_WIDTH, MODEL_HEIGHT = 48, 27


class TileTap(Protocol):
    """Takes small BGR copies of some frames while they are decoded (the keyframe candidates of a job)."""

    size: tuple[int, int]  # width, height

    def wants(self, index: int) -> bool: ...

    def add(self, index: int, bgr: np.ndarray) -> None: ...


def to_model_frame(bgr: np.ndarray) -> np.ndarray:
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


def iter_model_frames(
    path: Path, start: int = 0, stop: int | None = None, *, tiles: TileTap | None = None
) -> Iterator[np.ndarray]:
    """Yield frames start..stop-1 as 27x48x3 RGB uint8, holding one decoded frame at a time; `tiles` taps some."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoRejected("not_a_video", f"{Path(path).name} is not a video OpenCV can open")
    try:
        index = _seek(cap, start)
        if index < start:
            return
        while stop is None or index < stop:
            ok, bgr = cap.read()
            if not ok:
                break
            if tiles is not None and tiles.wants(index):
                tiles.add(index, cv2.resize(bgr, tiles.size, interpolation=cv2.INTER_AREA))
            yield to_model_frame(bgr)
            index += 1
    finally:
        cap.release()


def iter_model_frames_pyav(
    path: Path,
    start: int = 0,
    stop: int | None = None,
    *,
    skip_loop_filter: bool = True,
    threads: int = 0,
    interpolation: str = "BICUBIC",
    tiles: TileTap | None = None,
) -> Iterator[np.ndarray]:
    """Like iter_model_frames, decoding with PyAV and scaling straight from YUV to 48x27 RGB in one swscale call.

    Bicubic is what `ffmpeg -s 48x27` (the reference's decode) uses: the frames come out within a grey level or
    so of the reference's, closer than OpenCV's area averaging.
    At 48x27 the in-loop deblocking filter's work is invisible, so it can be skipped (H.264/HEVC honour it);
    no full-size RGB frame is ever made. Frame numbers come from timestamps (the probe refused VFR).
    """
    import av
    from av.video.reformatter import VideoReformatter

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise VideoRejected("not_a_video", f"{Path(path).name} is not a video FFmpeg can open") from exc
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        if skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        rate = float(stream.average_rate or stream.guessed_rate)
        base = stream.start_time or 0
        tb = float(stream.time_base)
        if start > 0:
            container.seek(base + int(start / rate / tb), stream=stream, backward=True)
        counted = None  # frames without timestamps are numbered by counting
        scaler = VideoReformatter()  # one swscale context for the whole video (frame.reformat makes one per frame)
        tile_scaler = VideoReformatter()
        for frame in container.decode(stream):
            if frame.pts is not None:
                index = round((frame.pts - base) * tb * rate)
            else:
                index = 0 if counted is None else counted + 1
            counted = index
            if index < start:
                continue
            if stop is not None and index >= stop:
                break
            if tiles is not None and tiles.wants(index):
                width, height = tiles.size
                tile = tile_scaler.reformat(frame, width=width, height=height, format="bgr24", interpolation="AREA")
                tiles.add(index, tile.to_ndarray())
            small = scaler.reformat(
                frame, width=MODEL_WIDTH, height=MODEL_HEIGHT, format="rgb24", interpolation=interpolation
            )
            yield small.to_ndarray()
