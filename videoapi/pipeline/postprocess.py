"""Post-processing between TransNetV2's per-frame probabilities and the shots: fewer false boundaries,
one boundary per transition, cuts on their exact frame, and the type and span of every transition.

Plain numpy over the two probability curves (single_frame, many_hot) and a few per-frame picture
statistics (`videoapi.pipeline.picture_stats`, computed from the 48x27 model frames during the one decode).
Turned off (`postprocess: false`), the reference TransNetV2 rule gives the shots, exactly.

Over 300 lines because the rules work on one set of per-frame arrays through a dozen small helpers over
them (excursions, spans, fades, the cuts the model misses); apart, each would take all the arrays again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.shots import FrameClock, Shot, ShotList, shot_spans

TRANSITION_TYPES = ("cut", "dissolve", "fade", "fade_in", "fade_out")
EDGE_TYPES = ("fade_in", "fade_out")  # at the video's ends: part of its first or last shot, between no two shots


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
    warm: float = 0.3  # ... and over this joins two such runs (a long dissolve's many_hot sags in its middle)
    warm_gap: int = 12  # frames between two runs that many_hot over `warm` may bridge
    merge_gap: int = 4  # runs this close are one transition
    gradual_min: int = 4  # frames: a shorter run is a cut
    recover_mean: float = 0.45  # a many_hot run with single_frame under the threshold is kept at this mean
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
    frame_cut_iso: float = 2.0  # a cut the model missed: its frame change this many times the 3rd largest near it
    frame_cut_diff: float = 2.5  # ... at least this many grey levels
    frame_cut_flat_diff: float = 1.0  # ... between two flat colours (no noise, no motion there)
    frame_cut_step: float = 0.15  # ... the picture (normalised) changes this much and does not come back
    frame_cut_flash: float = 40.0  # ... and the frame is not this many grey levels brighter than the one before
    frame_cut_big_step: float = 0.55  # ... and under this change its colours change at least
    frame_cut_colours: float = 0.1  # ... this much (L1 between histograms)
    colour_ratio: float = 2.0  # ... and this many times as much as between the frames around it
    frame_cut_unexplained: float = 0.5  # ... and no shift of the last frame by 2 pixels halves its difference
    frame_cut_reach: int = 8  # frames after it where the picture may come back (a strobe)
    edge_fade_max: int = 60  # frames: a fade in from black at the start (out at the end) the model missed, at most
    edge_fade_rise: float = 10.0  # ... brightening by at least this many grey levels
    span_floor: float = 0.1  # a gradual transition's span: the frames around its run with many_hot over this
    span_reach: int = 30  # ... widened by at most this many frames either side
    fade_step: float = 2.0  # ... and a fade's where the mean grey level still moves this much a frame
    dissolve_across: float = 0.45  # a dissolve's pictures before and after differ at least this much (normalised)
    dissolve_ratio: float = 2.5  # ... and this many times the shots' own change over 5 frames


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
    # results stitched from segments checkpointed before this array existed: no move ever explains a change
    unexplained = features.get("pp_unexplained", np.ones(n, np.float32))
    normalised = _normalised(features["pp_thumb"])
    hists = features["pp_hist"].astype(np.float32) / 255.0
    candidate = (single > threshold) | (many > rules.hot)
    runs: list[list[int]] = []
    # one flat colour: little spread within each channel (a flat green's channels differ from one another)
    flat = features["pp_thumb"].reshape(n, -1, 3).std(axis=1).max(axis=1) < rules.flat_std
    extreme = flat & ((luma < rules.black) | (luma > rules.white))
    for first, last in _runs(candidate):
        # a fade out and a fade in through black (or white) are one transition, however long the hold
        # (the first run has nothing to merge with, however short the video)
        gap = first - runs[-1][1] if runs else n
        warm = many[runs[-1][1] + 1 : first] > rules.warm if runs else np.zeros(0, bool)
        if runs and (
            (gap <= rules.merge_gap and (gap <= 2 or warm.any()))
            or (gap <= rules.hold and _through_black_or_white(luma, flat, runs[-1], (first, last), rules))
            or (gap <= rules.warm_gap and warm.all())
        ):
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
        # black or white frames held after (or before) the run are skipped: the picture may come back after them
        lead, trail = _held_extreme(extreme, first - 1, -1, rules.hold), _held_extreme(extreme, last + 1, 1, rules.hold)
        back = min(_change(normalised, first - lead - i, last + trail + j) for i in reach for j in reach)
        near = range(max(1, first - rules.excursion), min(n, last + rules.excursion + 1))
        # a black or white frame has no picture to compare: its normalised thumbnail is noise
        steps = [_change(normalised, k - 1, k) for k in near if not (extreme[k - 1] or extreme[k])]
        if back < rules.flat_change or back < rules.return_ratio * max(steps, default=0.0):
            continue
        if lead + trail or (length < rules.gradual_min and extreme[first : last + 1].any()):
            # black frames inside a shot: after them the picture has moved no more than the shot moves in as long
            distance = lead + trail + (length + 1 if length < rules.gradual_min else 1)
            if back < rules.same_ratio * _change(normalised, first - lead - 1 - distance, first - lead - 1):
                continue
        is_cut = length < rules.gradual_min or hot.sum() < rules.gradual_min
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
        elif _dips_to_black_or_white(span_lum, side, extreme[max(0, first - 2) : last + 3].any(), rules):
            kind = "fade"
            if peak <= threshold and _same_picture(normalised, first, last, rules):
                continue  # a slow dip: across it the picture changes no more than the shot moves
        else:
            kind = "dissolve"
            across, own = _across_and_own(normalised, first, last)
            if peak < rules.sure and (across < rules.dissolve_across or across < rules.dissolve_ratio * own):
                continue  # an exposure ramp or a strobe on a moving picture: no other picture after it
        confidence = max(peak, float(many[first : last + 1].mean()))
        start, end = _span(many, luma, first, last, kind, rules)
        found.append(Transition(kind, start, end, round(confidence, 6)))
    taken = np.zeros(n, bool)
    for first, last in runs:  # whatever the rules made of a run, its frames are the model's to judge
        taken[max(0, first - rules.excursion) : last + rules.excursion + 1] = True
    for t in found:
        taken[max(0, t.start_frame - rules.excursion) : t.end_frame + rules.excursion + 1] = True
    moved = unexplained < rules.frame_cut_unexplained  # a shift of the last frame explains the change
    # found in the pictures where the model scored under the threshold: their confidence is the threshold's (the
    # model's own figure there says only that it missed them, and differs in its 6th decimal between batchings)
    for at in _frame_cuts(diff, luma, features["pp_thumb"], normalised, hists, flat, extreme, taken | moved, rules):
        found.append(Transition("cut", at, at, threshold))
    found += _edge_fades(luma, found, threshold, rules)
    return sorted(found, key=lambda t: t.start_frame)


def _through_black_or_white(
    luma: NDArray[Any], flat: NDArray[Any], out: list[int], into: tuple[int, int], rules: Rules
) -> bool:
    """Whether run `out` fades out to black (or white), the frames up to run `into` hold it, and `into` fades in."""
    held = luma[out[1] + 1 : into[0]]
    if not flat[out[1] + 1 : into[0]].any():  # dark pictures between two cuts are not a fade's hold
        return False
    if (held < rules.black).all():
        return bool(luma[out[1]] <= luma[out[0]] and luma[into[0]] <= luma[into[1]])
    if (held > rules.white).all():
        return bool(luma[out[1]] >= luma[out[0]] and luma[into[0]] >= luma[into[1]])
    return False


def _dips_to_black_or_white(span_lum: NDArray[Any], side: float, reaches_flat: bool, rules: Rules) -> bool:
    """A fade: the run goes to black (or white) and, near it, to one flat colour (a dissolve into a dark
    picture darkens too, but keeps that picture's detail)."""
    return bool(reaches_flat and (span_lum.min() < max(rules.black, rules.dark * side) or span_lum.max() > rules.white))


def _edge_fades(luma: NDArray[Any], found: list[Transition], threshold: float, rules: Rules) -> list[Transition]:
    """A fade in from black at the very start (or out to black at the end) that the model scored too low."""
    n = len(luma)
    fades = []
    for kind, order in (("fade_in", luma), ("fade_out", luma[::-1])):
        if n < 2 * rules.gradual_min or order[0] >= rules.black:
            continue
        rising = np.diff(order[: rules.edge_fade_max + 4]) > 0.5
        k = int(np.argmin(rising)) if not rising.all() else rules.edge_fade_max
        if not rules.gradual_min <= k <= rules.edge_fade_max or order[k] < order[0] + rules.edge_fade_rise:
            continue
        first, last = (0, k - 1) if kind == "fade_in" else (n - k, n - 1)
        if any(t.start_frame <= last and t.end_frame >= first for t in found):
            continue
        fades.append(Transition(kind, first, last, threshold))
    return fades


def _span(many: NDArray[Any], luma: NDArray[Any], first: int, last: int, kind: str, rules: Rules) -> tuple[int, int]:
    """A gradual transition's frames: the run widened while many_hot stays over `span_floor` (it rises before
    the run's frames pass `hot`); a fade also over the frames where the picture still darkens or brightens."""
    n = len(many)
    start, end = first, last
    while start > 0 and first - start < rules.span_reach and many[start - 1] > rules.span_floor:
        start -= 1
    while end < n - 1 and end - last < rules.span_reach and many[end + 1] > rules.span_floor:
        end += 1
    if kind == "fade":
        while start > 0 and first - start < rules.span_reach and abs(luma[start - 1] - luma[start]) > rules.fade_step:
            start -= 1
        while end < n - 1 and end - last < rules.span_reach and abs(luma[end + 1] - luma[end]) > rules.fade_step:
            end += 1
    return start, end


def _held_extreme(extreme: NDArray[Any], start: int, step: int, most: int) -> int:
    """How many black or white frames run from `start` in direction `step` (at most `most`)."""
    count = 0
    while count < most and 0 <= start + step * count < len(extreme) and extreme[start + step * count]:
        count += 1
    return count


def _frame_cuts(
    diff: NDArray[Any], luma: NDArray[Any], thumbs: NDArray[Any], normalised: NDArray[Any], hists: NDArray[Any],
    flat: NDArray[Any], extreme: NDArray[Any], taken: NDArray[Any], rules: Rules,
) -> list[int]:  # fmt: skip
    """Cuts the model scored under the threshold (very short shots, similar pictures): a frame change that stands
    far above the changes around it, after which the picture does not come back."""
    n = len(diff)
    if n < 4:
        return []
    colours_of = thumbs.reshape(n, -1, 3).mean(axis=1)  # each frame's mean colour
    least = np.where(flat[1:-1] & flat[:-2], rules.frame_cut_flat_diff, rules.frame_cut_diff)
    peaks = (diff[1:-1] >= least) & (diff[1:-1] >= diff[:-2]) & (diff[1:-1] >= diff[2:])
    found = []
    for t in (np.flatnonzero(peaks) + 1).tolist():
        if taken[t] or extreme[t - 1] or extreme[t]:
            continue
        if (luma[max(1, t - 3) : t + 1] - luma[max(0, t - 4) : t] > rules.frame_cut_flash).any():
            continue  # a flash (or its end): the picture jumped brighter; a cut between similar shots barely does
        around = np.concatenate((diff[max(1, t - 7) : max(1, t - 1)], diff[t + 2 : t + 8]))
        if len(around) < 3 or diff[t] < rules.frame_cut_iso * (np.sort(around)[-3] + 1.0):
            continue
        if flat[t - 1] and flat[t]:  # one flat colour to another: nothing in the picture to compare, but its colour
            if np.abs(colours_of[t] - colours_of[t - 1]).max() < rules.frame_cut_flat_diff:
                continue  # the same colour (a fine texture moving, averaged out at this size)
        else:
            step = _change(normalised, t - 1, t)
            back = min(
                _change(normalised, t - i, t + j) for i in range(1, 5) for j in range(1, rules.frame_cut_reach + 1)
            )
            if step < rules.frame_cut_step or back < rules.frame_cut_step:
                continue
            # colours change more than from one frame to the next around it, unless the picture changes a lot
            usual = float(np.median([_colour_change(hists, k - 1, k) for k in range(max(1, t - 7), t + 8) if k != t]))
            colours = _colour_change(hists, t - 1, t)
            if step < rules.frame_cut_big_step and colours < max(rules.frame_cut_colours, rules.colour_ratio * usual):
                continue  # the same colours as the frames around: the camera moved (or jerked)
        found.append(t)
    return found


def _across_and_own(normalised: NDArray[Any], first: int, last: int) -> tuple[float, float]:
    """The change across a run (frames just outside it) and the shots' own change over 5 frames around it."""
    across = min(_change(normalised, first - i, last + j) for i in (1, 2) for j in (1, 2))
    steps = [_change(normalised, first - 6 - 5 * i, first - 1 - 5 * i) for i in range(3)]
    steps += [_change(normalised, last + 1 + 5 * i, last + 6 + 5 * i) for i in range(3)]
    return across, float(np.mean(steps))


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
    """Shots tiling the video, each after the first opened by one transition (a gradual one splits at its middle);
    a fade in or out at an end of the video belongs to the first or last shot."""
    transitions = between_shots(transitions)
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


def between_shots(transitions: list[Transition]) -> list[Transition]:
    """The transitions that open a shot: all but the fades in and out at the video's ends."""
    return [t for t in transitions if t.type not in EDGE_TYPES]


def opening_transitions(transitions: list[dict[str, Any]]) -> list[int]:
    """For the result document: the index in `transitions` of the one opening each shot after the first."""
    return [t["index"] for t in transitions if t["type"] not in EDGE_TYPES]


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
