"""From per-frame transition probabilities to shots, with times and SMPTE timecodes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from opentimelineio.opentime import RationalTime, from_timecode, to_timecode


def max_per_stride(values: np.ndarray, stride: int) -> np.ndarray:
    """The highest value of each run of `stride` values (the last run zero-padded): probabilities for a plot."""
    padded = np.pad(np.asarray(values), (0, -len(values) % stride))
    return padded.reshape(-1, stride).max(axis=1)


def shot_spans(single_frame: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
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
        return from_timecode(timecode, rate).to_frames()
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
        return to_timecode(RationalTime(frame, rate), rate)
    nominal = max(1, round(fps))
    seconds, ff = divmod(frame, nominal)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}"


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
    def from_predictions(cls, single_frame: np.ndarray, fps: float, threshold: float = 0.5) -> ShotList:
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
                    start_time=round(start / fps, 6),
                    end_time=round((end + 1) / fps, 6),
                    start_timecode=smpte_timecode(start, fps),
                    end_timecode=smpte_timecode(end, fps),
                    confidence=round(confidence, 6),
                )
            )
        return cls(fps=fps, frame_count=len(probs), threshold=threshold, shots=tuple(shots))

    def boundaries(self) -> list[int]:
        """First frame of every shot but the first: where the cuts are."""
        return [s.start_frame for s in self.shots[1:]]

    def to_dicts(self) -> list[dict]:
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
