"""Look at a video file before decoding it: streams, size, frame rate, frame count, limits.

PyAV demuxes packets only (no decoding), so this is cheap and bounded, and it
catches what decoding would choke or lie on: no video stream, absurd sizes,
variable frame rate, zero frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


class VideoRejected(ValueError):
    """The file is not a video this service will process; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VideoLimits:
    max_width: int = 7680
    max_height: int = 4320
    min_side: int = 16
    max_duration_s: float = 4 * 3600
    max_fps: float = 240.0
    min_fps: float = 1.0  # below this there is no motion to cut: a slideshow, or no time base at all


@dataclass(frozen=True)
class VideoInfo:
    """The video stream as demuxed: frame_count counts packets, exact for the codecs we accept."""

    fps: float
    frame_count: int
    width: int
    height: int
    codec: str

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def _frame_rate(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return None


def is_variable_frame_rate(pts: np.ndarray, tolerance: float = 0.1, share: float = 0.02) -> bool:
    """True when more than `share` of the frame intervals differ from the median by over `tolerance`."""
    if len(pts) < 3:
        return False
    deltas = np.diff(np.sort(pts))
    deltas = deltas[deltas > 0]
    if len(deltas) < 2:
        return False
    median = float(np.median(deltas))
    off = np.abs(deltas - median) > tolerance * median
    return float(off.mean()) > share


def probe(path: Path, limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """Validate and describe the video stream of `path`, or raise VideoRejected with a code."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoRejected("not_found", f"no such file: {path.name}")
    if path.stat().st_size == 0:
        raise VideoRejected("empty_file", "the file is empty")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoRejected("not_a_video", f"not a video container FFmpeg can read: {exc}") from exc
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            if "audio" in kinds:
                raise VideoRejected("audio_only", "the file has audio but no video stream")
            raise VideoRejected("no_video_stream", f"no video stream (streams: {', '.join(kinds) or 'none'})")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width > limits.max_width or height > limits.max_height:
            raise VideoRejected(
                "resolution_too_large", f"{width}x{height} exceeds the limit {limits.max_width}x{limits.max_height}"
            )
        if min(width, height) < limits.min_side:
            raise VideoRejected("resolution_too_small", f"{width}x{height} is below {limits.min_side} px a side")
        rate = _frame_rate(stream)
        if rate is None or not limits.min_fps <= rate <= limits.max_fps:
            raise VideoRejected(
                "bad_frame_rate", f"frame rate {rate} is not within {limits.min_fps:g}..{limits.max_fps:g} fps"
            )
        declared = [container.duration / 1e6] if container.duration else []
        if stream.duration and stream.time_base:
            declared.append(float(stream.duration * stream.time_base))
        for seconds in declared:
            if seconds > limits.max_duration_s:
                raise VideoRejected(
                    "duration_too_long", f"declared duration {seconds:.0f}s exceeds {limits.max_duration_s:.0f}s"
                )
        max_packets = int(limits.max_duration_s * float(rate)) + 1
        pts = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet
                pts.append(packet.pts if packet.pts is not None else packet.dts)
                if len(pts) > max_packets:
                    raise VideoRejected("duration_too_long", f"more than {max_packets} frames at {float(rate):g} fps")
        except av.FFmpegError as exc:
            raise VideoRejected("corrupt_video", f"the video stream cannot be read: {exc}") from exc
        if not pts:
            raise VideoRejected("zero_frames", "the video stream has no frames")
        declared_frames = stream.frames or 0
        if declared_frames and len(pts) < declared_frames - max(2, declared_frames // 200):
            raise VideoRejected(
                "truncated_video",
                f"the index lists {declared_frames} frames but only {len(pts)} are in the file: truncated upload?",
            )
        known = np.array([p for p in pts if p is not None], dtype=np.int64)
        if is_variable_frame_rate(known):
            raise VideoRejected(
                "variable_frame_rate",
                "variable frame rate: frame numbers and timecodes would not map to time; re-encode at a constant rate",
            )
        return VideoInfo(
            fps=float(rate), frame_count=len(pts), width=width, height=height, codec=stream.codec_context.name
        )
