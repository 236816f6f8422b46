"""Per-frame features taken from the 48x27 model frames as they stream to the model: no second decode.

A feature (post-processing's picture statistics, the technical cues' luma figures, ...) sees every
frame of its span once, in order, and ends as named arrays whose first axis is the frame. A
segment keeps its arrays in its npz (prefixed with FEATURE_PREFIX); stitching concatenates them, so
a split job sees the same arrays as a single pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from videoapi.settings import Settings

if TYPE_CHECKING:
    from videoapi.pipeline.audio import AudioLevels
    from videoapi.pipeline.cues import SegmentOptions
    from videoapi.pipeline.probe import VideoInfo
    from videoapi.pipeline.text_cues import TextSampler

FEATURE_PREFIX = "feature_"


class FrameFeature(Protocol):
    """Accumulates per-frame values over consecutive model frames (uint8 [27, 48, 3], RGB)."""

    def update(self, frame: NDArray[Any]) -> None: ...

    def arrays(self) -> dict[str, NDArray[Any]]: ...


class FeatureTap:
    """Feeds frames start..stop-1 (by global frame number) to each feature while passing every frame on."""

    def __init__(self, features: Sequence[FrameFeature], start: int = 0, stop: int | None = None):
        self.features, self.start, self.stop = list(features), start, stop
        # a feature that also hears the audio track (videoapi.pipeline.audio.AudioLevels): the decoder feeds it
        self.audio = cast("AudioLevels | None", next((f for f in self.features if hasattr(f, "add_audio")), None))
        if self.audio is not None:
            self.audio.bind(start, stop)
        # a feature that samples larger pictures (videoapi.pipeline.text_cues.TextSampler): the decoder scales them
        self.text = cast("TextSampler | None", next((f for f in self.features if hasattr(f, "wants")), None))
        if self.text is not None:
            self.text.bind(start, stop)

    def tap(self, frames: Iterable[NDArray[Any]], first: int) -> Iterator[NDArray[Any]]:
        """Pass `frames` (the first being frame number `first`) through, feeding those of the span to the features."""
        if not self.features:
            yield from frames
            return
        # features that see the frames decoded before the span (a segment's margin), to measure its first frame
        leads = [feature for feature in self.features if hasattr(feature, "lead")]
        for index, frame in enumerate(frames, start=first):
            if index >= self.start and (self.stop is None or index < self.stop):
                for feature in self.features:
                    feature.update(frame)
            elif index < self.start:
                for feature in leads:
                    feature.lead(frame)
            yield frame

    def state(self) -> dict[str, NDArray[Any]]:
        """The features' carried state after the last frame fed (features without one have none)."""
        merged: dict[str, NDArray[Any]] = {}
        for feature in self.features:
            merged |= feature.state() if hasattr(feature, "state") else {}
        return merged

    def restore(self, state: dict[str, NDArray[Any]]) -> None:
        """Go on from a checkpoint's `state()`, as if the frames before the span had been fed."""
        for feature in self.features:
            if hasattr(feature, "restore"):
                feature.restore(state)

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Every feature's arrays by name (names are unique across features)."""
        merged: dict[str, NDArray[Any]] = {}
        for feature in self.features:
            for name, values in feature.arrays().items():
                if name in merged:
                    raise ValueError(f"two frame features both produce {name!r}")
                merged[name] = values
        return merged


def frame_features(
    settings: Settings, info: VideoInfo | None = None, segments: SegmentOptions | None = None
) -> list[FrameFeature]:
    """The features a job computes, fresh for each video or segment (the cues' only when `technical_cues`).

    The text cues' sampler only with the video's `info` (its size and rate), `text_cues` on, and a job that asks
    for technical cues (`segments`, default all).
    """
    from videoapi.pipeline.audio import AudioLevels  # none imports this module; local imports keep that true
    from videoapi.pipeline.cues import CueFeature
    from videoapi.pipeline.picture_stats import PictureStats
    from videoapi.pipeline.text_cues import TextSampler, detector_available, sample_step

    cue_features: list[FrameFeature] = [CueFeature(), AudioLevels()] if settings.technical_cues else []
    asked = segments is None or "TECHNICAL_CUE" in segments.segment_types
    if cue_features and settings.text_cues and asked and info is not None and info.width and detector_available():
        step = sample_step(info.fps or 25.0, settings.text_cue_samples_per_s)
        cue_features.append(TextSampler(info.width, info.height, step))
    return [PictureStats(), *cue_features]


def stored(arrays: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """Feature arrays named for a segment's npz."""
    return {FEATURE_PREFIX + name: values for name, values in arrays.items()}


def concatenated(parts: Iterable[dict[str, NDArray[Any]]]) -> dict[str, NDArray[Any]]:
    """One video's feature arrays from its segments' npz contents, in segment order."""
    collected: dict[str, list[NDArray[Any]]] = {}
    for part in parts:
        for name, values in part.items():
            if name.startswith(FEATURE_PREFIX):
                collected.setdefault(name.removeprefix(FEATURE_PREFIX), []).append(np.asarray(values))
    return {name: np.concatenate(values) for name, values in collected.items()}
