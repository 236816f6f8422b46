"""Technical cues (black frames, colour bars, frozen frames, silence, text's) from the one decode; the options.

The taps keep small per-frame figures (arrays prefixed `cue_`: the 48x27 model frames' here, the audio track's
in videoapi.pipeline.audio); `technical_cues` turns the stitched arrays into cue spans, so a segmented job gives the
same cues as a single pass. The model frames are RGB from
swscale, which expands limited-range video to full range, so thresholds are fractions of 0..255.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from videoapi.pipeline.shots import FrameClock, runs
from videoapi.pipeline.text_cues import TEXT_CUE_TYPES, text_cues

SEGMENT_TYPES: tuple[Literal["SHOT", "TECHNICAL_CUE"], ...] = ("SHOT", "TECHNICAL_CUE")
CUE_TYPES = (
    "BlackFrames",
    "ColorBars",
    "FrozenFrames",
    "Silence",
    *TEXT_CUE_TYPES,  # from text on screen: videoapi.pipeline.text_cues
    "Content",
)
# Not programme content (Rekognition's Content is what none of these covers); frozen frames and silence are.
NOT_CONTENT = ("BlackFrames", "ColorBars", *TEXT_CUE_TYPES)
# Percentiles kept per frame for the black-frame test: any min_coverage_percentage is answered later.
BLACK_PERCENTILES = np.arange(101)
# Mean absolute change (0..255) under which two frames count as the same picture.
FREEZE_MAX_CHANGE = 0.5
# 75% SMPTE/EBU bars, left to right, as full-range RGB.
BAR_COLOURS = np.array(
    [[191, 191, 191], [191, 191, 0], [0, 191, 191], [0, 191, 0], [191, 0, 191], [191, 0, 0], [0, 0, 191]],
    dtype=np.float32,
)
BARS_MAX_ERROR = 40.0
# Luma levels (0..255) over a black run's darkest level within which its frames count as held black. A fade
# through black only touches its darkest level (each frame of its ramp is a step of the picture over the fade's
# length darker or lighter); a black slug holds it.
BLACK_HOLD_LEVELS = 3
# Silence confidence: 0.5 at silence_db, 1.0 this many dB under it (or quieter).
SILENCE_CONFIDENCE_DB = 20.0


class SegmentOptions(BaseModel):
    """What a job reports beside its shots; names and ranges follow Rekognition's StartSegmentDetection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment_types: tuple[Literal["SHOT", "TECHNICAL_CUE"], ...] = Field(default=SEGMENT_TYPES, min_length=1)
    # Rekognition's MinSegmentConfidence (50..100) for shots and for technical cues.
    shot_min_confidence: float = Field(default=50.0, ge=50.0, le=100.0)
    cue_min_confidence: float = Field(default=50.0, ge=50.0, le=100.0)
    # Rekognition's BlackFrame filter: a pixel is black at or under this fraction of full range ...
    black_max_pixel_threshold: float = Field(default=0.2, ge=0.0, le=1.0)
    # ... and a frame is black when at least this percentage of its pixels are.
    black_min_coverage_percentage: float = Field(default=99.0, ge=0.0, le=100.0)
    # A black run is a BlackFrames cue only when its darkest level is held at least this long (0: any black
    # frame, Rekognition's plain rule): the dip of a fade through black, or a black flash, is not a slug.
    min_black_s: float = Field(default=0.4, ge=0.0, le=3600.0)
    min_freeze_s: float = Field(default=2.0, gt=0.0, le=3600.0)
    silence_db: float = Field(default=-50.0, ge=-120.0, le=0.0)
    min_silence_s: float = Field(default=2.0, gt=0.0, le=3600.0)

    @classmethod
    def from_record(cls, stored: str | None) -> SegmentOptions:
        """The options kept in a job record (defaults for jobs submitted without them)."""
        return cls.model_validate_json(stored) if stored else cls()

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> SegmentOptions:
        """The options from a request body using Rekognition-style nested `filters`."""
        filters = body.get("filters") or {}
        black = filters.get("black_frame") or {}
        fields = {
            "segment_types": body.get("segment_types"),
            "shot_min_confidence": filters.get("min_segment_confidence"),
            "cue_min_confidence": filters.get("min_segment_confidence"),
            "black_max_pixel_threshold": black.get("max_pixel_threshold"),
            "black_min_coverage_percentage": black.get("min_coverage_percentage"),
            "min_black_s": body.get("min_black_s"),
            "min_freeze_s": body.get("min_freeze_s"),
            "silence_db": body.get("silence_db"),
            "min_silence_s": body.get("min_silence_s"),
        }
        return cls(**{name: value for name, value in fields.items() if value is not None})


# Where each option sits in the request body's Rekognition-style layout, to name it in errors.
BODY_FIELDS = {
    "segment_types": "segment_types",
    "shot_min_confidence": "filters.min_segment_confidence",
    "cue_min_confidence": "filters.min_segment_confidence",
    "black_max_pixel_threshold": "filters.black_frame.max_pixel_threshold",
    "black_min_coverage_percentage": "filters.black_frame.min_coverage_percentage",
    "min_black_s": "min_black_s",
    "min_freeze_s": "min_freeze_s",
    "silence_db": "silence_db",
    "min_silence_s": "min_silence_s",
}


LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def luma(frame: NDArray[Any]) -> NDArray[Any]:
    """BT.709 luma of full-range RGB frames (..., 3) in 0..255."""
    return frame[..., :3].astype(np.float32) @ LUMA_WEIGHTS


def percentile_ranks(pixels: int) -> NDArray[Any]:
    """Rank (ascending) of the pixel under which each whole percentage of a frame's pixels lies."""
    ranks: NDArray[Any] = np.maximum(np.ceil(BLACK_PERCENTILES / 100 * pixels).astype(int) - 1, 0)
    return ranks


def bar_reference(height: int, width: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """The bars' colours over the top two thirds of a frame, and the columns compared (bar edges left out)."""
    edges = np.linspace(0, width, len(BAR_COLOURS) + 1).round().astype(int)
    reference = np.zeros((height * 2 // 3, width, 3), np.float32)
    columns = np.zeros(width, bool)
    for colour, left, right in zip(BAR_COLOURS, edges[:-1], edges[1:], strict=True):
        reference[:, left:right] = colour
        # Skip a column each side: bar edges fall between the model frame's pixels.
        columns[left + 1 : max(left + 2, right - 1)] = True
    return reference[:, columns], columns


class CueFeature:
    """Per frame: luma percentiles, the change from the previous frame, and how far the picture is from bars."""

    def __init__(self) -> None:
        self.percentiles: list[NDArray[Any]] = []
        self.changes: list[float] = []
        self.bar_errors: list[float] = []
        self.previous: NDArray[Any] | None = None
        self.shape: tuple[int, int] | None = None

    def update(self, frame: NDArray[Any]) -> None:
        if self.shape != frame.shape[:2]:
            height, width = frame.shape[:2]
            self.shape = (height, width)
            self.ranks = percentile_ranks(frame.shape[0] * frame.shape[1])
            self.reference, self.columns = bar_reference(*self.shape)
        y = luma(frame)
        self.percentiles.append(np.sort(y, axis=None)[self.ranks].round().astype(np.uint8))
        # Measured against the first frame of the still run, so a slow pan's drift adds up and ends it; the
        # first frame of a span has no anchor here, and NaN keeps a seam from faking a freeze.
        change = math.nan if self.previous is None else float(np.abs(y - self.previous).mean())
        self.changes.append(change)
        if not change <= FREEZE_MAX_CHANGE:
            self.previous = y
        top = frame[: len(self.reference), self.columns].astype(np.float32)
        self.bar_errors.append(float(np.abs(top - self.reference).mean()))

    def state(self) -> dict[str, NDArray[Any]]:
        """The still run's anchor frame: a checkpoint carries it, so a resumed span measures freezes exactly."""
        return {} if self.previous is None else {"cue_anchor": self.previous}

    def restore(self, state: dict[str, NDArray[Any]]) -> None:
        if "cue_anchor" in state:
            self.previous = np.asarray(state["cue_anchor"])

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "cue_luma_percentiles": np.array(self.percentiles, dtype=np.uint8).reshape(-1, len(BLACK_PERCENTILES)),
            "cue_change": np.array(self.changes, dtype=np.float32),
            "cue_bar_error": np.array(self.bar_errors, dtype=np.float32),
        }


def cue(kind: str, start: int, end: int, clock: FrameClock, confidence: float) -> dict[str, Any]:
    """One technical cue document over frames start..end inclusive, timed as the shots are."""
    return {
        "type": kind,
        "start_frame": start,
        "end_frame": end,
        "start_time": clock.time(start),
        "end_time": clock.end_time(end),
        "start_timecode": clock.timecode(start),
        "end_timecode": clock.timecode(end),
        "duration_frames": end - start + 1,
        "confidence": round(float(confidence), 4),
    }


def black_mask(percentiles: NDArray[Any], options: SegmentOptions) -> NDArray[Any]:
    """Frames where at least min_coverage_percentage of pixels are at or under max_pixel_threshold."""
    return black_levels(percentiles, options) <= options.black_max_pixel_threshold * 255


def black_levels(percentiles: NDArray[Any], options: SegmentOptions) -> NDArray[Any]:
    """Per frame, the luma under which min_coverage_percentage of its pixels lie (what the threshold is held to)."""
    return percentiles[:, min(100, math.ceil(options.black_min_coverage_percentage))]


def held_seconds(levels: NDArray[Any], start: int, clock: FrameClock) -> float:
    """The longest stretch of a black run (frames from `start`) within BLACK_HOLD_LEVELS of its darkest level."""
    held = levels.astype(np.int16) <= int(levels.min()) + BLACK_HOLD_LEVELS
    return max(clock.end_time(start + end) - clock.time(start + first) for first, end in runs(held))


def black_slugs(percentiles: NDArray[Any], clock: FrameClock, options: SegmentOptions) -> list[tuple[int, int]]:
    """Runs of black frames (Rekognition's rule) whose darkest level is held for at least min_black_s."""
    levels = black_levels(percentiles, options)
    found = []
    for start, end in runs(levels <= options.black_max_pixel_threshold * 255):
        if held_seconds(levels[start : end + 1], start, clock) >= options.min_black_s - 1e-6:
            found.append((start, end))
    return found


def silences(levels: NDArray[Any], clock: FrameClock, options: SegmentOptions) -> list[dict[str, Any]]:
    """Silence cues: frames whose sound (cue_audio_db) stays under silence_db for at least min_silence_s.

    A frame with no sample at all (the track ends before the picture) is silent.
    """
    quiet = np.nan_to_num(levels, nan=-np.inf) < options.silence_db
    found = []
    for start, end in runs(quiet):
        if clock.end_time(end) - clock.time(start) >= options.min_silence_s - 1e-6:
            loudest = float(np.nan_to_num(levels[start : end + 1], nan=-np.inf).max())
            margin = min(1.0, (options.silence_db - loudest) / SILENCE_CONFIDENCE_DB)
            found.append(cue("Silence", start, end, clock, 0.5 + 0.5 * margin))
    return found


def technical_cues(arrays: dict[str, NDArray[Any]], clock: FrameClock, options: SegmentOptions) -> list[dict[str, Any]]:
    """The video's technical cues, by start frame, from its stitched `cue_` arrays; Content fills the gaps."""
    percentiles = arrays["cue_luma_percentiles"]
    count = len(percentiles)
    found: list[dict[str, Any]] = []
    for start, end in black_slugs(percentiles, clock, options):
        found.append(cue("BlackFrames", start, end, clock, 1.0))
    bars = arrays["cue_bar_error"] < BARS_MAX_ERROR
    for start, end in runs(bars):
        confidence = 1.0 - float(arrays["cue_bar_error"][start : end + 1].mean()) / (2 * BARS_MAX_ERROR)
        found.append(cue("ColorBars", start, end, clock, confidence))
    # A frame is frozen when it equals the previous one; a run of equal frames starts one frame earlier.
    same = np.nan_to_num(arrays["cue_change"], nan=np.inf) <= FREEZE_MAX_CHANGE
    still = black_mask(percentiles, options) | bars
    for start, end in runs(same):
        start -= 1
        if clock.end_time(end) - clock.time(start) >= options.min_freeze_s and not still[start : end + 1].all():
            found.append(cue("FrozenFrames", start, end, clock, 1.0))
    audio = arrays.get("cue_audio_db")
    if audio is not None and len(audio) == count:  # no audio stream (or no audio heard): no Silence cue
        found += silences(audio, clock, options)
    for kind, start, end, confidence in text_cues(arrays, clock):
        found.append(cue(kind, start, end, clock, confidence))
    covered = np.zeros(count, dtype=bool)
    for item in found:
        if item["type"] in NOT_CONTENT:
            covered[item["start_frame"] : item["end_frame"] + 1] = True
    for start, end in runs(~covered):
        found.append(cue("Content", start, end, clock, 1.0))
    kept = [item for item in found if item["confidence"] * 100 >= options.cue_min_confidence]
    return sorted(kept, key=lambda item: (item["start_frame"], item["type"]))
