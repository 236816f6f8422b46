"""Post-processing between TransNetV2's per-frame probabilities and the shots: fewer false boundaries,
one boundary per transition, cuts on their exact frame, and the type and span of every transition.

Plain numpy over the two probability curves (single_frame, many_hot) and a few per-frame picture
statistics (`PictureStats`, computed from the 48x27 model frames during the one decode, ~220 bytes a
frame). Turned off (`postprocess: false`), the reference TransNetV2 rule gives the shots, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.shots import FrameClock, Shot, ShotList, shot_spans

THUMB_WIDTH, THUMB_HEIGHT = 8, 6
HIST_LEVELS, HIST_SHIFT = 4, 6  # the top two bits of each RGB channel: 64 bins
TRANSITION_TYPES = ("cut", "dissolve", "fade", "fade_in", "fade_out")


class PictureStats:
    """Per frame: an 8x6 RGB thumbnail, a 64-bin colour histogram, mean luma, and mean change from the last frame."""

    def __init__(self) -> None:
        self._thumbs: list[NDArray[Any]] = []
        self._hists: list[NDArray[Any]] = []
        self._luma: list[float] = []
        self._diff: list[float] = []
        self._previous: NDArray[Any] | None = None

    def update(self, frame: NDArray[Any]) -> None:
        """Take one 27x48x3 RGB frame."""
        self._thumbs.append(cv2.resize(frame, (THUMB_WIDTH, THUMB_HEIGHT), interpolation=cv2.INTER_AREA))
        bins = (frame >> HIST_SHIFT).astype(np.int32)
        codes = (bins[..., 0] * HIST_LEVELS + bins[..., 1]) * HIST_LEVELS + bins[..., 2]
        counts = np.bincount(codes.ravel(), minlength=HIST_LEVELS**3)
        self._hists.append(np.minimum(255, counts * 255 // codes.size + (counts > 0)).astype(np.uint8))
        grey = frame.astype(np.int16)
        self._luma.append(float(grey.mean()))
        # the first frame of a segment has no predecessor here: 0, and the rules fall back on the thumbnails
        self._diff.append(0.0 if self._previous is None else float(np.abs(grey - self._previous).mean()))
        self._previous = grey

    def state(self) -> dict[str, NDArray[Any]]:
        """What the next frame's values depend on: a checkpoint carries it, so a resumed span goes on exactly."""
        return {} if self._previous is None else {"pp_previous": self._previous}

    def restore(self, state: dict[str, NDArray[Any]]) -> None:
        if "pp_previous" in state:
            self._previous = np.asarray(state["pp_previous"], np.int16)

    def arrays(self) -> dict[str, NDArray[Any]]:
        n = len(self._luma)
        return {
            "pp_thumb": np.asarray(self._thumbs, np.uint8).reshape(n, THUMB_HEIGHT, THUMB_WIDTH, 3),
            "pp_hist": np.asarray(self._hists, np.uint8).reshape(n, HIST_LEVELS**3),
            "pp_luma": np.asarray(self._luma, np.float32),
            "pp_diff": np.asarray(self._diff, np.float32),
        }


@dataclass(frozen=True)
class Transition:
    """Frames start..end (inclusive) of one transition; for a cut both are the first frame of the new shot."""

    type: str
    start_frame: int
    end_frame: int
    confidence: float

    @property
    def split(self) -> int:
        """First frame of the shot this transition opens (shots tile the video)."""
        if self.type == "cut":
            return self.start_frame
        return (self.start_frame + self.end_frame + 1) // 2


def reference_transitions(single_frame: NDArray[Any], threshold: float) -> list[Transition]:
    """The reference rule's boundaries as untyped cuts (their spans the frames over the threshold)."""
    probs = np.asarray(single_frame, np.float32).reshape(-1)
    spans = shot_spans(probs, threshold)
    found = []
    for (_, end), (start, _) in zip(spans, spans[1:]):
        confidence = float(probs[end:start].max(initial=0.0))
        # the frames over the threshold after the outgoing shot's last one; a single one is the new shot's first
        found.append(Transition("cut", end + 1, start if start == end + 1 else start - 1, round(confidence, 6)))
    return found


@dataclass(frozen=True)
class Rules:
    """The post-processing's knobs (tuned on the bench's TUNE seeds only)."""

    hot: float = 0.5  # many_hot over this marks a gradual transition's frames
    merge_gap: int = 4  # runs this close are one transition
    gradual_min: int = 4  # frames: a shorter run is a cut
    recover_mean: float = 0.7  # a many_hot run with single_frame under the threshold is kept at this mean
    recover_min: int = 6  # ... and this length
    return_ratio: float = 0.35  # content after within this share of the jump of the content before: an excursion
    flat_change: float = 0.05  # normalised thumbnails closer than this are the same picture
    cut_search: int = 2  # frames either side of the peak where the largest change marks the cut
    dark: float = 0.35  # a fade's darkest frame under this share of the darker side (or under 24 grey levels)
    edge: int = 3  # a transition this near an end of the video is a fade in / fade out
    hold: int = 40  # frames of black (or white) between a fade out and a fade in, at most
    flat_std: float = 6.0  # a thumbnail with less spread than this is one flat colour
    black: float = 24.0  # mean grey levels under which a frame is black
    white: float = 232.0  # ... over which it is white
    same_ratio: float = 1.5  # a change across a run under this many times the shot's own over as many frames
    excursion: int = 4  # frames either side where the picture may come back
    sure: float = 0.9  # single_frame over this is a cut whatever the motion around it
    same_colours: float = 0.7  # histograms closer than this (L1, 0..~2) before and after: one scene's colours
    isolated: float = 1.8  # a cut's change is this many times the largest other change near it


def _runs(mask: NDArray[Any]) -> list[tuple[int, int]]:
    """(first, last) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _normalised(thumbs: NDArray[Any]) -> NDArray[Any]:
    """Thumbnails with the exposure divided out: a brighter or darker copy of a picture matches it."""
    values = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    centred = values - values.mean(axis=1, keepdims=True)
    normalised: NDArray[Any] = centred / (centred.std(axis=1, keepdims=True) + 4.0)
    return normalised


def _change(normalised: NDArray[Any], i: int, j: int) -> float:
    n = len(normalised)
    i, j = min(max(i, 0), n - 1), min(max(j, 0), n - 1)
    return float(np.abs(normalised[i] - normalised[j]).mean())


def detect_transitions(
    single_frame: NDArray[Any], many_hot: NDArray[Any], features: dict[str, NDArray[Any]], threshold: float = 0.5,
    rules: Rules = Rules(),
) -> list[Transition]:  # fmt: skip
    """Typed transitions with their spans from the two probability curves and PictureStats' arrays."""
    single = np.asarray(single_frame, np.float32).reshape(-1)
    many = np.asarray(many_hot, np.float32).reshape(-1)
    n = len(single)
    if n == 0:
        return []
    luma = features["pp_luma"].astype(np.float32)
    diff = features["pp_diff"].astype(np.float32)
    normalised = _normalised(features["pp_thumb"])
    hists = features["pp_hist"].astype(np.float32) / 255.0
    candidate = (single > threshold) | (many > rules.hot)
    runs: list[list[int]] = []
    flat = features["pp_thumb"].reshape(n, -1).std(axis=1) < rules.flat_std
    extreme = flat & ((luma < rules.black) | (luma > rules.white))
    for first, last in _runs(candidate):
        # a fade out and a fade in through black (or white) are one transition, however long the hold
        # (the first run has nothing to merge with, however short the video)
        gap = first - runs[-1][1] if runs else n
        if runs and (gap <= rules.merge_gap or (gap <= rules.hold and extreme[runs[-1][1] + 1 : first].all())):
            runs[-1][1] = last
        else:
            runs.append([first, last])
    found: list[Transition] = []
    for first, last in runs:
        peak = float(single[first : last + 1].max())
        hot = many[first : last + 1] > rules.hot
        length = last - first + 1
        if peak <= threshold and not (
            hot.sum() >= rules.recover_min and many[first : last + 1].mean() >= rules.recover_mean
        ):
            continue
        before, after = first - 1, last + 1
        if length >= rules.gradual_min and (first <= rules.edge or last >= n - 1 - rules.edge):
            # nothing to compare on one side: at an end of the video a gradual run is a fade in or out
            kind = "fade_in" if first <= rules.edge else "fade_out"
            found.append(Transition(kind, first, last, round(max(peak, float(many[first : last + 1].mean())), 6)))
            continue
        reach = range(1, rules.excursion + 1)
        # an excursion: a few frames on, the picture is back to the one before it (flash, strobe, exposure, dip)
        back = min(_change(normalised, first - i, last + j) for i in reach for j in reach)
        near = range(max(1, first - rules.excursion), min(n, last + rules.excursion + 1))
        # a black or white frame has no picture to compare: its normalised thumbnail is noise
        steps = [_change(normalised, k - 1, k) for k in near if not (extreme[k - 1] or extreme[k])]
        if back < rules.flat_change or back < rules.return_ratio * max(steps, default=0.0):
            continue
        is_cut = length < rules.gradual_min or hot.sum() < rules.gradual_min
        if not is_cut and peak <= threshold and _same_picture(normalised, first, last, rules):
            continue  # an exposure ramp or a slow dip: across it the picture changes no more than the shot moves
        same_colours = _colour_change(hists, first - rules.excursion, last + rules.excursion) < rules.same_colours
        if is_cut and peak < rules.sure and same_colours and _isolation(diff, first, last, rules) < rules.isolated:
            continue  # fast motion (a whip pan): the picture changes over many frames, none stands out
        if is_cut:
            lo, hi = max(1, first - rules.cut_search + 1), min(n - 1, last + rules.cut_search + 1)
            at = lo + int(np.argmax(diff[lo : hi + 1])) if hi >= lo else first + 1
            found.append(Transition("cut", at, at, round(peak, 6)))
            continue
        span_lum = luma[first : last + 1]
        side = min(luma[max(0, before)], luma[min(n - 1, after)])
        if first <= rules.edge:
            kind = "fade_in"
        elif last >= n - 1 - rules.edge:
            kind = "fade_out"
        elif span_lum.min() < max(rules.black, rules.dark * side) or span_lum.max() > rules.white:
            kind = "fade"
        else:
            kind = "dissolve"
        confidence = max(peak, float(many[first : last + 1].mean()))
        found.append(Transition(kind, first, last, round(confidence, 6)))
    return found


def _peak_change(normalised: NDArray[Any], first: int, last: int) -> float:
    """The largest change from the frame before a run to any frame of it."""
    return max(_change(normalised, first - 1, k) for k in range(first, last + 1))


def _isolation(diff: NDArray[Any], first: int, last: int, rules: Rules) -> float:
    """How far the largest frame change near a run stands above the other changes around it."""
    lo, hi = max(1, first - rules.cut_search), min(len(diff), last + rules.cut_search + 2)
    if hi <= lo:
        return np.inf
    at = lo + int(np.argmax(diff[lo:hi]))
    # a cut can spread over two frames (an encoder's or a scaler's blend): its neighbours are not the motion
    around = np.concatenate((diff[max(1, at - 7) : max(1, at - 1)], diff[at + 2 : at + 8]))
    return float(diff[at] / (around.max(initial=0.0) + 1.0))


def transitions_for(
    single_frame: NDArray[Any],
    many_hot: NDArray[Any],
    features: dict[str, NDArray[Any]],
    threshold: float,
    enabled: bool,
) -> list[Transition]:
    """The post-processed transitions, or the reference rule's when disabled (or the features are missing)."""
    needed = ("pp_thumb", "pp_luma", "pp_diff")
    complete = all(name in features and len(features[name]) == len(single_frame) for name in needed)
    if enabled and complete:
        return detect_transitions(single_frame, many_hot, features, threshold)
    return reference_transitions(single_frame, threshold)


def shot_list(transitions: list[Transition], frame_count: int, clock: FrameClock, threshold: float) -> ShotList:
    """Shots tiling the video, each after the first opened by one transition (a gradual one splits at its middle)."""
    starts = [0] + [t.split for t in transitions]
    ends = [s - 1 for s in starts[1:]] + [frame_count - 1]
    shots = [
        Shot(
            index=i,
            start_frame=start,
            end_frame=end,
            start_time=clock.time(start),
            end_time=clock.end_time(end),
            start_timecode=clock.timecode(start),
            end_timecode=clock.timecode(end),
            confidence=1.0 if i == 0 else transitions[i - 1].confidence,
        )
        for i, (start, end) in enumerate(zip(starts, ends))
    ]
    return ShotList(fps=clock.fps, frame_count=frame_count, threshold=threshold, shots=tuple(shots))


def transition_dicts(transitions: list[Transition], clock: FrameClock) -> list[dict[str, Any]]:
    """The result document's `transitions`."""
    return [
        {
            "index": i,
            "type": t.type,
            "start_frame": t.start_frame,
            "end_frame": t.end_frame,
            "start_time": clock.time(t.start_frame),
            "end_time": clock.end_time(t.end_frame),
            "confidence": t.confidence,
        }
        for i, t in enumerate(transitions)
    ]


def _same_picture(normalised: NDArray[Any], first: int, last: int, rules: Rules) -> bool:
    """Whether the picture after a run is the one before it, moved no more than the shot moves by itself."""
    width = min(30, last - first + 2)
    across = min(_change(normalised, first - i, last + j) for i in (1, 2) for j in (1, 2))
    own = max(_change(normalised, first - 1 - width, first - 1), _change(normalised, last + 1, last + 1 + width))
    return across < rules.same_ratio * own + rules.flat_change


def _colour_change(hists: NDArray[Any], i: int, j: int) -> float:
    """L1 distance between two frames' colour histograms (about 0 to 2)."""
    i, j = min(max(i, 0), len(hists) - 1), min(max(j, 0), len(hists) - 1)
    return float(np.abs(hists[i] - hists[j]).sum())
