"""Look at a video file before decoding it: streams, size, frame rate, frame count, limits.

PyAV demuxes packets only (no decoding), so this is cheap and bounded, and it
catches what decoding would choke or lie on: no video stream, absurd sizes,
zero frames. It also reads every frame's presentation timestamp: variable frame
rate is reported (and timed from those timestamps), not refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from videoapi.errors import VideoRejected
from videoapi.settings import Settings

if TYPE_CHECKING:  # PyAV is imported where it is used: the API's Lambda package has no PyAV
    from av.audio.stream import AudioStream
    from av.container import InputContainer
    from av.packet import Packet
    from av.video.stream import VideoStream


@dataclass(frozen=True)
class VideoLimits:
    """What a video may be; the size and duration limits are the settings' (their defaults by default)."""

    max_width: int = Settings.model_fields["max_width"].default
    max_height: int = Settings.model_fields["max_height"].default
    min_side: int = 16
    max_duration_s: float = Settings.model_fields["max_duration_s"].default
    max_fps: float = 240.0
    min_fps: float = 1.0  # below this there is no motion to cut: a slideshow, or no time base at all

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoLimits:
        return cls(max_width=settings.max_width, max_height=settings.max_height, max_duration_s=settings.max_duration_s)


@dataclass(frozen=True)
class VideoInfo:
    """The video stream as demuxed: frame_count counts packets, exact for the codecs we accept."""

    fps: float  # the stream's nominal rate; for variable frame rate, the average
    frame_count: int
    width: int
    height: int
    codec: str  # the format's name (av1), not the decoder's (libdav1d)
    variable_frame_rate: bool = False
    min_fps: float | None = None  # from the longest frame interval (variable frame rate only)
    max_fps: float | None = None  # from the shortest
    end_time: float | None = None  # seconds from the first frame shown to the end of the last
    declared_frames: int = 0  # what the container's index lists (0: it lists none)
    time_base: str = ""  # of the frame timestamps, as a fraction "1/12800"
    rotation: int = 0  # degrees counterclockwise to turn the picture upright (the display matrix, as FFmpeg reads it)
    display_width: int = 0  # the picture as shown: sample aspect ratio applied, then rotation (0: not probed)
    display_height: int = 0
    field_order: str = "progressive"  # as FFmpeg reports it: progressive, tt, bb, tb, bt, or interlaced (unknown order)
    # The first audio stream, demuxed beside the video (audio_codec "": none)
    audio_codec: str = ""
    audio_sample_rate: int = 0
    audio_channels: int = 0
    audio_channel_layout: str = ""
    audio_duration: float = 0.0  # seconds, from its packets' timestamps

    @property
    def audio(self) -> dict[str, Any] | None:
        """The result document's `audio`: codec, sample rate, channels, layout, duration; None without audio."""
        if not self.audio_codec:
            return None
        return {
            "codec": self.audio_codec,
            "sample_rate": self.audio_sample_rate,
            "channels": self.audio_channels,
            "channel_layout": self.audio_channel_layout,
            "duration": self.audio_duration,
        }

    @property
    def duration(self) -> float:
        if self.end_time is not None:
            return self.end_time
        return self.frame_count / self.fps if self.fps > 0 else 0.0

    @property
    def truncated(self) -> bool:
        """The index lists more frames than the file holds: a partial upload or download."""
        return bool(self.declared_frames) and self.frame_count < self.declared_frames - max(
            2, self.declared_frames // 200
        )


def _frame_rate(stream: VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return None


def is_variable_frame_rate(pts: NDArray[Any], tolerance: float = 0.1, share: float = 0.02) -> bool:
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
    return probe_timeline(path, limits)[0]


def frame_times(frame_pts: NDArray[Any], time_base: str) -> NDArray[Any]:
    """Seconds from the first frame shown, per frame, from the sorted presentation timestamps."""
    pts = np.asarray(frame_pts, dtype=np.int64)
    if len(pts) == 0:
        return np.zeros(0)
    times: NDArray[np.float64] = (pts - pts[0]).astype(np.float64) * float(Fraction(time_base))
    return times


def probe_timeline(path: Path, limits: VideoLimits = VideoLimits()) -> tuple[VideoInfo, NDArray[Any]]:
    """Like probe, with every frame's presentation timestamp (time_base units) in presentation order.

    Frame numbers are positions in that order, whatever the timestamps: variable frame rate, a start
    offset (edit list, transport stream) or a timestamp wrap do not shift them.
    """
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
        for declared_s in declared:
            if declared_s > limits.max_duration_s:
                raise VideoRejected(
                    "duration_too_long", f"declared duration {declared_s:.0f}s exceeds {limits.max_duration_s:.0f}s"
                )
        max_packets = int(limits.max_duration_s * float(rate)) + 1
        pts, durations = [], []
        sound = container.streams.audio[0] if container.streams.audio else None
        heard = _AudioSpan()
        try:
            for packet in container.demux(stream) if sound is None else container.demux(stream, sound):
                if packet.size == 0 or packet.is_discard:
                    continue  # the flush packet, or one an edit list leaves out
                if packet.stream is sound:
                    heard.add(packet)
                    continue
                pts.append(packet.pts if packet.pts is not None else packet.dts)
                durations.append(packet.duration or 0)
                if len(pts) > max_packets:
                    raise VideoRejected("duration_too_long", f"more than {max_packets} frames at {float(rate):g} fps")
        except av.FFmpegError:
            pass  # damaged or cut off: what was demuxed so far is what the file holds (the decode warns)
        if not pts:
            raise VideoRejected("corrupt_video" if stream.frames else "zero_frames", "the video stream has no frames")
        time_base = Fraction(stream.time_base or Fraction(1, 90000))
        stamps = _filled_timestamps(pts, rate, time_base)
        frame_pts = np.sort(stamps)
        seconds = frame_times(frame_pts, str(time_base))
        last = durations[int(np.argmax(stamps))]  # the last frame shown lasts its packet's duration
        deltas = np.diff(seconds)
        deltas = deltas[deltas > 0]
        last_duration = float(last * time_base) if last else (float(np.median(deltas)) if len(deltas) else 1 / rate)
        variable = is_variable_frame_rate(frame_pts)
        rotation, field_order = _first_frame_facts(container, stream)
        sar = Fraction(stream.sample_aspect_ratio or 1)
        shown_width, shown_height = (round(width * sar) if sar > 0 else width), height
        if rotation % 180 == 90:
            shown_width, shown_height = shown_height, shown_width
        return VideoInfo(
            fps=float(rate) if not variable else round((len(seconds)) / (seconds[-1] + last_duration), 6),
            frame_count=len(pts),
            width=width,
            height=height,
            codec=stream.codec_context.codec.canonical_name,
            variable_frame_rate=variable,
            min_fps=round(1 / float(deltas.max()), 6) if variable else None,
            max_fps=round(1 / float(deltas.min()), 6) if variable else None,
            end_time=round(float(seconds[-1]) + last_duration, 6),
            declared_frames=stream.frames or 0,
            time_base=str(time_base),
            rotation=rotation,
            display_width=shown_width,
            display_height=shown_height,
            field_order=field_order,
            **_audio_facts(sound, heard),
        ), frame_pts


class _AudioSpan:
    """The first and last instant the audio stream's packets cover (its duration, exact for any container)."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

    def add(self, packet: Packet[Any]) -> None:
        if packet.pts is None or packet.time_base is None:
            return
        start = float(packet.pts * packet.time_base)
        self.first = start if self.first is None else min(self.first, start)
        self.last = max(self.last, start + float((packet.duration or 0) * packet.time_base))


def _audio_facts(sound: AudioStream | None, heard: _AudioSpan) -> dict[str, Any]:
    """VideoInfo's audio fields for the first audio stream (none: the defaults, no audio)."""
    if sound is None or sound.codec_context is None or not sound.codec_context.sample_rate:
        return {}
    context = sound.codec_context
    duration = heard.last - heard.first if heard.first is not None else 0.0
    if duration <= 0 and sound.duration and sound.time_base:
        duration = float(sound.duration * sound.time_base)
    return {
        "audio_codec": context.codec.canonical_name if context.codec else (context.name or ""),
        "audio_sample_rate": int(context.sample_rate),
        "audio_channels": int(context.channels),
        "audio_channel_layout": context.layout.name if context.layout else "",
        "audio_duration": round(max(0.0, duration), 6),
    }


FIELD_ORDERS = {0: "unknown", 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}  # FFmpeg's AVFieldOrder


def _first_frame_facts(container: InputContainer, stream: VideoStream) -> tuple[int, str]:
    """Rotation (the display matrix) and field order, read from the first decoded frame, where PyAV exposes them."""
    import av

    try:
        container.seek(0, stream=stream, backward=True)
        for frame in container.decode(stream):
            order = FIELD_ORDERS.get(int(stream.codec_context.field_order or 0), "unknown")
            if order in ("unknown", "progressive"):
                order = "interlaced" if frame.interlaced_frame else "progressive"
            return round(frame.rotation or 0) % 360, order
    except (av.FFmpegError, ValueError):
        pass
    return 0, "progressive"


def _filled_timestamps(pts: list[Any], rate: Fraction, time_base: Fraction) -> NDArray[Any]:
    """The packets' timestamps, missing ones guessed at the nominal rate, a transport stream's 33-bit wrap undone."""
    step = max(1, round(1 / (rate * time_base)))
    filled, previous = [], None
    for p in pts:
        if p is None:
            p = (previous + step) if previous is not None else 0
        filled.append(p)
        previous = p
    values = np.array(filled, dtype=np.int64)
    wrap = 1 << 33
    if time_base == Fraction(1, 90000) and len(values) > 1 and values.max() - values.min() > wrap // 2:
        values = np.where(values < values[0] - wrap // 2, values + wrap, values)  # MPEG-TS clock wrapped
    return values
