"""From per-frame transition probabilities to shots, with times and SMPTE timecodes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from opentimelineio.opentime import RationalTime, from_timecode, to_timecode


def max_per_stride(values: NDArray[Any], stride: int) -> NDArray[Any]:
    """The highest value of each run of `stride` values (the last run zero-padded): probabilities for a plot."""
    padded = np.pad(np.asarray(values), (0, -len(values) % stride))
    highest: NDArray[Any] = padded.reshape(-1, stride).max(axis=1)
    return highest


def runs(mask: NDArray[Any]) -> list[tuple[int, int]]:
    """Inclusive (start, end) of each run of True."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(start), int(stop) - 1) for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def shot_spans(single_frame: NDArray[Any], threshold: float = 0.5) -> list[tuple[int, int]]:
    """(start, end) frame pairs, end inclusive: the reference TransNetV2 rule, exactly.

    A shot ends on the first frame whose probability exceeds the threshold; the
    next one starts on the first frame below it again.
    """
    above = np.asarray(single_frame).reshape(-1) > threshold
    n = len(above)
    if n == 0:
        return []
    spans, start, prev = [], 0, False
    for i, t in enumerate(above):
        if prev and not t:
            start = i
        if not prev and t and i != 0:
            spans.append((start, i))
        prev = t
    if not above[-1]:
        spans.append((start, n - 1))
    return spans or [(0, n - 1)]


def timecode_rate(fps: float) -> float | None:
    """The SMPTE timecode rate `fps` stands for (23.976 is 24000/1001), or None where SMPTE defines none."""
    rate = RationalTime.nearest_smpte_timecode_rate(fps)
    return rate if abs(rate - fps) < 0.01 else None


_TIMECODE = re.compile(r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d)[:;](\d\d)")


def timecode_frames(timecode: str, fps: float) -> int:
    """Frames from 00:00:00:00 to `timecode` at this rate; ValueError for what is not a timecode of it."""
    match = _TIMECODE.fullmatch(timecode)
    if not match:
        raise ValueError(f"{timecode!r} is not a timecode HH:MM:SS:FF (HH:MM:SS;FF drop-frame) under 24:00:00:00")
    rate = timecode_rate(fps)
    if rate is not None:
        frames_from_zero: int = from_timecode(timecode, rate).to_frames()
        return frames_from_zero
    hours, minutes, seconds, frames = map(int, match.groups())
    nominal = max(1, round(fps))
    if frames >= nominal or ";" in timecode:
        raise ValueError(f"{timecode!r} is not a non-drop timecode at {nominal} fps")
    return ((hours * 60 + minutes) * 60 + seconds) * nominal + frames


def smpte_timecode(frame: int, fps: float, start: str | None = None) -> str:
    """HH:MM:SS:FF from opentime; drop-frame (HH:MM:SS;FF) at 29.97 and 59.94 fps, as editors expect.

    `start` (a timecode such as 01:00:00:00) offsets it. At rates SMPTE does not define (e.g. 15 fps)
    frames are counted non-drop at the nearest whole rate, as FFmpeg does.
    """
    frame += timecode_frames(start, fps) if start else 0
    rate = timecode_rate(fps)
    if rate is not None:
        timecode: str = to_timecode(RationalTime(frame, rate), rate)
        return timecode
    nominal = max(1, round(fps))
    seconds, ff = divmod(frame, nominal)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}"


def media_timecode(seconds: float) -> str:
    """HH:MM:SS.mmm: a variable-frame-rate video's timecode (SMPTE at a nominal rate would name wrong frames)."""
    millis = round(seconds * 1000)
    total_s, ms = divmod(millis, 1000)
    return f"{total_s // 3600:02d}:{total_s // 60 % 60:02d}:{total_s % 60:02d}.{ms:03d}"


class FrameClock:
    """The one place frame numbers become times: fps for constant rate, each frame's timestamp otherwise.

    `times` are seconds from the first frame shown, one per frame (None: frame / fps); `end` is when the
    last frame ends. Constant-rate videos keep round(frame / fps, 6) and SMPTE timecodes.
    """

    def __init__(self, fps: float, times: NDArray[Any] | None = None, end: float | None = None):
        self.fps = fps
        self.times = None if times is None else np.asarray(times, dtype=np.float64)
        self.end = end

    @property
    def variable(self) -> bool:
        return self.times is not None

    def time(self, frame: int) -> float:
        """Seconds at which `frame` is shown."""
        if self.times is None:
            return round(frame / self.fps, 6)
        if frame < len(self.times):
            return round(float(self.times[frame]), 6)
        return self.duration(frame)

    def end_time(self, frame: int) -> float:
        """Seconds at which `frame` stops being shown (the next frame's time, or the stream's end)."""
        return self.time(frame + 1)

    def duration(self, frame_count: int) -> float:
        """Seconds that `frame_count` frames from the start last."""
        if self.times is None:
            return round(frame_count / self.fps, 6)
        if frame_count < len(self.times):
            return round(float(self.times[frame_count]), 6)
        if self.end is not None and frame_count == len(self.times):
            return round(self.end, 6)
        last = float(self.times[-1]) if len(self.times) else 0.0
        return round(last + (frame_count - len(self.times) + 1) / self.fps, 6)

    def timecode(self, frame: int) -> str:
        """SMPTE for constant rate; media time HH:MM:SS.mmm for variable rate."""
        return media_timecode(self.time(frame)) if self.times is not None else smpte_timecode(frame, self.fps)


@dataclass(frozen=True)
class Shot:
    index: int
    start_frame: int
    end_frame: int  # inclusive
    start_time: float  # seconds, at the start of start_frame
    end_time: float  # seconds, at the end of end_frame
    start_timecode: str
    end_timecode: str  # of end_frame (inclusive)
    confidence: float  # peak probability of the boundary that opens the shot; 1.0 for the first


@dataclass(frozen=True)
class ShotList:
    fps: float
    frame_count: int
    threshold: float
    shots: tuple[Shot, ...]

    @classmethod
    def from_predictions(
        cls, single_frame: NDArray[Any], fps: float, threshold: float = 0.5, clock: FrameClock | None = None
    ) -> ShotList:
        """Shots by the reference rule, timed by `clock` (default: constant rate `fps`)."""
        clock = clock or FrameClock(fps)
        probs = np.asarray(single_frame, dtype=np.float32).reshape(-1)
        spans = shot_spans(probs, threshold)
        shots = []
        for i, (start, end) in enumerate(spans):
            confidence = 1.0 if i == 0 else float(probs[spans[i - 1][1] : start].max(initial=0.0))
            shots.append(
                Shot(
                    index=i,
                    start_frame=start,
                    end_frame=end,
                    start_time=clock.time(start),
                    end_time=clock.end_time(end),
                    start_timecode=clock.timecode(start),
                    end_timecode=clock.timecode(end),
                    confidence=round(confidence, 6),
                )
            )
        return cls(fps=fps, frame_count=len(probs), threshold=threshold, shots=tuple(shots))

    def boundaries(self) -> list[int]:
        """First frame of every shot but the first: where the cuts are."""
        return [s.start_frame for s in self.shots[1:]]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.shots]


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int


def transitions(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Transitions between consecutive shots, as (last frame of one, first frame of the next)."""
    return [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]


def score_transitions(
    predicted: Sequence[tuple[int, int]], truth: Sequence[tuple[int, int]], tolerance: int = 2
) -> Score:
    """Precision/recall/F1, transitions matched one to one when they lie within `tolerance` frames."""
    unmatched = sorted(truth)
    tp = 0
    for p_start, p_end in sorted(predicted):
        best = None
        for j, (t_start, t_end) in enumerate(unmatched):
            gap = max(t_start - p_end, p_start - t_end, 0)  # 0 when the two intervals overlap
            if gap <= tolerance and (best is None or gap < best[0]):
                best = (gap, j)
        if best is not None:
            unmatched.pop(best[1])
            tp += 1
    fp, fn = len(predicted) - tp, len(truth) - tp
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, tp, fp, fn)
