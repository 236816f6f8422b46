"""The audio track, heard in the one decode: how loud each video frame's sound is (the Silence cue's input).

The decoder demuxes the audio stream's packets in the same loop as the video's (videoapi.pipeline.decode) and hands
each decoded audio frame to `AudioLevels`, which sums the squared samples falling in each video frame's display
interval. Its array (`cue_audio_db`, one value a video frame) is stitched like the other frame features, so a
segmented job hears the same levels as a single pass.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame

# Digital silence (all samples zero) reads as this level, so every frame of a track has a finite level.
FLOOR_DB = -150.0


def samples_of(frame: AudioFrame) -> NDArray[Any]:
    """A decoded PyAV AudioFrame as float samples [channels, n] in -1..1, whatever its sample format."""
    array: NDArray[Any] = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    if array.dtype.kind == "i":
        return array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    if array.dtype.kind == "u":
        return (array.astype(np.float32) - 128.0) / 128.0
    return array.astype(np.float32, copy=False)


def frame_edges(frame_pts: NDArray[Any], time_base: float) -> NDArray[Any]:
    """Absolute seconds at which each video frame starts to be shown, and when the last one ends."""
    starts = np.asarray(frame_pts, dtype=np.float64) * time_base
    deltas = np.diff(starts)
    last = float(np.median(deltas[deltas > 0])) if (deltas > 0).any() else 0.04
    return np.append(starts, starts[-1] + last) if len(starts) else starts


class AudioLevels:
    """A frame feature that also hears the audio track: per video frame of its span, the RMS level (dBFS, full
    scale 1.0) of the loudest channel over the frame's display interval; NaN where no sample falls in it.

    Without an audio stream (or with the OpenCV decoder, which reads none) it has no arrays, so a job gets
    no Silence cue rather than a wrong one.
    """

    def __init__(self) -> None:
        self.start: int = 0
        self.stop: int | None = None
        self.frames = 0  # video frames of the span seen
        self.edges: NDArray[Any] | None = None  # the span's frame edges (absolute seconds), one more than its frames
        self.power: NDArray[Any] | None = None  # [span frames, channels] sums of squared samples
        self.counts: NDArray[Any] | None = None  # [span frames] samples summed
        self.covered = -math.inf  # absolute seconds up to which audio has been heard

    def bind(self, start: int, stop: int | None) -> None:
        """The span (global frame numbers start..stop-1) whose frames this feature reports."""
        self.start, self.stop = start, stop

    def update(self, frame: NDArray[Any]) -> None:
        self.frames += 1

    def open_audio(self, edges: NDArray[Any], channels: int) -> None:
        """The file has an audio stream: `edges` are every video frame's start (absolute seconds) and the last's end."""
        last = len(edges) - 1 if self.stop is None else min(self.stop, len(edges) - 1)
        self.edges = np.asarray(edges[self.start : last + 1], dtype=np.float64)
        count = max(0, len(self.edges) - 1)
        self.power = np.zeros((count, max(1, channels)), np.float64)
        self.counts = np.zeros(count, np.int64)

    @property
    def until(self) -> float:
        """Absolute seconds up to which the span needs audio (the end of its last frame)."""
        return float(self.edges[-1]) if self.edges is not None and len(self.edges) else -math.inf

    def add_audio(self, samples: NDArray[Any], time: float, rate: int) -> None:
        """Samples [channels, n] starting at absolute `time` seconds, `rate` a second."""
        if self.edges is None or len(self.edges) < 2 or samples.shape[1] == 0:
            return
        n = samples.shape[1]
        end = time + n / rate
        self.covered = max(self.covered, end)
        first = max(0, int(np.searchsorted(self.edges, time, "right")) - 1)
        last = min(len(self.edges) - 1, int(np.searchsorted(self.edges, end, "left")))
        if first >= last:
            return
        assert self.power is not None and self.counts is not None  # opened with the edges
        # sample k plays at time + k / rate: frame i holds the samples from cuts[i] to cuts[i + 1]
        cuts = np.clip(np.ceil((self.edges[first : last + 1] - time) * rate - 1e-6), 0, n).astype(np.int64)
        squared = np.square(samples[: self.power.shape[1]], dtype=np.float64)
        cumulative = np.concatenate([np.zeros((len(squared), 1)), np.cumsum(squared, axis=1)], axis=1)
        self.power[first:last, : len(squared)] += (cumulative[:, cuts[1:]] - cumulative[:, cuts[:-1]]).T
        self.counts[first:last] += np.diff(cuts)

    def arrays(self) -> dict[str, NDArray[Any]]:
        if self.power is None:
            return {}
        assert self.counts is not None  # opened with the power
        seen = min(self.frames, len(self.counts))
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_square = self.power[:seen].max(axis=1) / self.counts[:seen]
            levels = np.maximum(10 * np.log10(mean_square), FLOOR_DB)
        levels = np.where(self.counts[:seen] > 0, levels, np.nan).astype(np.float32)
        if seen < self.frames:  # frames past the probe's index (never for a whole file): no audio known there
            levels = np.concatenate([levels, np.full(self.frames - seen, np.nan, np.float32)])
        return {"cue_audio_db": levels}
