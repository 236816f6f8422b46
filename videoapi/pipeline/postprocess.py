"""Post-processing between TransNetV2's per-frame probabilities and the shots: fewer false boundaries,
one boundary per transition, cuts on their exact frame, and the type and span of every transition.

Plain numpy over the two probability curves (single_frame, many_hot) and a few per-frame picture
statistics (`videoapi.pipeline.picture_stats`, computed from the 48x27 model frames during the one decode).
Turned off (`postprocess: false`), the reference TransNetV2 rule gives the shots, exactly.

Here the model's runs are judged (merged, dropped, typed, spanned) and the shots built; what the model misses
is found in the pictures by `videoapi.pipeline.unseen`; the thresholds, the transition and the comparisons of
pictures both use are in `videoapi.pipeline.transition_rules`. Over 300 lines because judging the runs is one
pass over the same per-frame arrays, and its helpers (merging, excursions, spans, fades) read them all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.shots import FrameClock, Shot, ShotList, runs, shot_spans
from videoapi.pipeline.transition_rules import (
    DEFAULT_RULES,
    EDGE_TYPES,
    Rules,
    Transition,
    across_and_own,
    change,
    colour_change,
    held_extreme,
    normalised_thumbs,
    overlaid,
)
from videoapi.pipeline.unseen import blended_transitions, edge_fades, frame_cuts, rapid_cuts
from videoapi.pipeline.wipes import wipe_transitions


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


def detect_transitions(
    single_frame: NDArray[Any], many_hot: NDArray[Any], features: dict[str, NDArray[Any]], threshold: float = 0.5,
    rules: Rules = DEFAULT_RULES,
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
    normalised = normalised_thumbs(features["pp_thumb"])
    hists = features["pp_hist"].astype(np.float32) / 255.0
    candidate = (single > threshold) | (many > rules.hot)
    groups: list[list[int]] = []
    # one flat colour: little spread within each channel (a flat green's channels differ from one another)
    flat = features["pp_thumb"].reshape(n, -1, 3).std(axis=1).max(axis=1) < rules.flat_std
    extreme = flat & ((luma < rules.black) | (luma > rules.white))
    pitch = (luma < rules.pitch) | (luma > 255.0 - rules.pitch)
    for first, last in runs(candidate):
        # a fade out and a fade in through black (or white) are one transition, however long the hold
        # (the first run has nothing to merge with, however short the video)
        gap = first - groups[-1][1] if groups else n
        warm = many[groups[-1][1] + 1 : first] > rules.warm if groups else np.zeros(0, bool)
        if groups and (
            (gap <= rules.merge_gap and (gap <= 2 or warm.any()))
            or (gap <= rules.hold and _through_black_or_white(luma, flat, groups[-1], (first, last), rules))
            or (gap <= rules.warm_gap and warm.all())
        ):
            groups[-1][1] = last
        else:
            groups.append([first, last])
    found: list[Transition] = []
    judged = []  # the runs the model scored as transitions, whatever the rules make of them
    for first, last in groups:
        peak = float(single[first : last + 1].max())
        hot = many[first : last + 1] > rules.hot
        length = last - first + 1
        if peak <= threshold and not (
            hot.sum() >= rules.recover_min and many[first : last + 1].mean() >= rules.recover_mean
        ):
            continue
        judged.append((first, last))
        before, after = first - 1, last + 1
        if length >= rules.gradual_min and (first <= rules.edge or last >= n - 1 - rules.edge):
            # nothing to compare on one side: at an end of the video a gradual run is a fade in or out
            kind = "fade_in" if first <= rules.edge else "fade_out"
            found.append(Transition(kind, first, last, round(max(peak, float(many[first : last + 1].mean())), 6)))
            continue
        reach = range(1, rules.excursion + 1)
        # an excursion: a few frames on, the picture is back to the one before it (flash, strobe, exposure, dip)
        # black or white frames held after (or before) the run are skipped: the picture may come back after them
        lead, trail = held_extreme(extreme, first - 1, -1, rules.hold), held_extreme(extreme, last + 1, 1, rules.hold)
        back = min(change(normalised, first - lead - i, last + trail + j) for i in reach for j in reach)
        near = range(max(1, first - rules.excursion), min(n, last + rules.excursion + 1))
        # a black or white frame has no picture to compare: its normalised thumbnail is noise
        steps = [change(normalised, k - 1, k) for k in near if not (extreme[k - 1] or extreme[k])]
        if back < rules.flat_change or back < rules.return_ratio * max(steps, default=0.0):
            continue
        if lead + trail or (length < rules.gradual_min and extreme[first : last + 1].any()):
            # black frames inside a shot: after them the picture has moved no more than the shot moves in as long
            distance = lead + trail + (length + 1 if length < rules.gradual_min else 1)
            if back < rules.same_ratio * change(normalised, first - lead - 1 - distance, first - lead - 1):
                continue
        is_cut = length < rules.gradual_min or hot.sum() < rules.gradual_min
        same_colours = colour_change(hists, first - rules.excursion, last + rules.excursion) < rules.same_colours
        if is_cut and peak < rules.sure and same_colours and _isolation(diff, first, last, rules) < rules.isolated:
            continue  # fast motion (a whip pan): the picture changes over many frames, none stands out
        if is_cut:
            lo, hi = max(1, first - rules.cut_search + 1), min(n - 1, last + rules.cut_search + 1)
            at = lo + int(np.argmax(diff[lo : hi + 1])) if hi >= lo else first + 1
            if overlaid(features["pp_thumb"], at - 1, at, rules):
                continue  # words or a graphic over a picture that goes on
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
        start, end = _span(many, luma, pitch, first, last, kind, rules)
        if overlaid(features["pp_thumb"], start - 1, end + 1, rules):
            continue  # words or a graphic fading in or out over a picture that goes on
        if kind == "dissolve" and peak < rules.sure:
            # across the whole span: many_hot passes `hot` only in a long dissolve's middle, where both pictures show
            across, own = across_and_own(normalised, start, end)
            if across < rules.dissolve_across or across < rules.dissolve_ratio * own:
                continue  # an exposure ramp or a strobe on a moving picture: no other picture after it
        confidence = max(peak, float(many[first : last + 1].mean()))
        found.append(Transition(kind, start, end, round(confidence, 6)))
    found = _one_per_dissolve(found)
    # wipes, which the model barely sees (or takes for a dissolve): where one is, it replaces a dissolve found there
    cuts = np.zeros(n, bool)
    for t in found:
        if t.type == "cut":
            cuts[max(0, t.start_frame - 1) : t.start_frame + 1] = True
    wipes = wipe_transitions(features["pp_thumb"], hists, diff, unexplained, cuts, threshold, rules)
    found = [t for t in found if t.type == "cut" or not any(_overlap(t, w) for w in wipes)] + wipes
    taken = np.zeros(n, bool)
    for first, last in judged:  # whatever the rules made of these runs, their frames are the model's to judge
        taken[max(0, first - rules.excursion) : last + rules.excursion + 1] = True
    for t in found:
        taken[max(0, t.start_frame - rules.excursion) : t.end_frame + rules.excursion + 1] = True
    moved = unexplained < rules.frame_cut_unexplained  # a shift of the last frame explains the change
    # found in the pictures where the model scored under the threshold: their confidence is the threshold's (the
    # model's own figure there says only that it missed them, and differs in its 6th decimal between batchings)
    for blend in blended_transitions(many, features["pp_thumb"], normalised, extreme, taken, threshold, rules):
        found.append(blend)
        taken[max(0, blend.start_frame - rules.excursion) : blend.end_frame + rules.excursion + 1] = True
    for at in frame_cuts(diff, luma, features["pp_thumb"], normalised, hists, flat, extreme, taken | moved, rules):
        found.append(Transition("cut", at, at, threshold))
    # rapid cutting: shots of a few frames, whose cuts the rules above took for one another's surroundings
    blocked = moved.copy()
    for t in found:
        blocked[max(0, t.start_frame - 1) : t.end_frame + 2] = True
    cut_frames = [t.start_frame for t in found if t.type == "cut"]
    for at in rapid_cuts(
        diff, luma, features["pp_thumb"], normalised, hists, flat, extreme, blocked, cut_frames, rules
    ):
        found.append(Transition("cut", at, at, threshold))
    found += edge_fades(luma, found, threshold, rules)
    return _at_the_ends(sorted(found, key=lambda t: t.start_frame), luma, rules)


def _at_the_ends(found: list[Transition], luma: NDArray[Any], rules: Rules) -> list[Transition]:
    """A fade reaching the black (or white) that opens or closes the video belongs to the first or last shot: a
    fade in or out over its ramp alone; the frames held black before or after it are no part of it (nor a shot:
    a BlackFrames cue where cues are asked for and it is long enough)."""
    n = len(luma)
    head, tail = _held_at_start(luma, rules), _held_at_start(luma[::-1], rules)
    if head >= n:
        return found
    out = []
    for t in found:
        reaches_tail = t.end_frame >= n - tail - 1 - rules.excursion and t.start_frame < n - tail
        reaches_head = t.start_frame <= head + rules.excursion and t.end_frame >= head
        if tail and t.type in ("fade", "fade_out") and reaches_tail:
            t = Transition("fade_out", _still_moving(luma, t.start_frame, -1, rules), n - tail - 1, t.confidence)
        elif head and t.type in ("fade", "fade_in") and reaches_head:
            t = Transition("fade_in", head, _still_moving(luma, t.end_frame, 1, rules), t.confidence)
        out.append(t)
    return out


def _overlap(a: Transition, b: Transition) -> bool:
    return a.start_frame <= b.end_frame and b.start_frame <= a.end_frame


def _still_moving(luma: NDArray[Any], at: int, step: int, rules: Rules) -> int:
    """A fade's far end from frame `at` in direction `step`: on while the grey level still moves (the model's run
    can end before the ramp does)."""
    reach = 0
    while reach < rules.span_reach and 0 <= at + step < len(luma) and abs(luma[at + step] - luma[at]) > rules.fade_step:
        at, reach = at + step, reach + 1
    return at


def _held_at_start(luma: NDArray[Any], rules: Rules) -> int:
    """How many frames at the start of `luma` hold its first frame's pitch black (pure white): 0 for a picture."""
    first = float(luma[0])
    if rules.pitch <= first <= 255.0 - rules.pitch:
        return 0
    held = np.abs(luma - first) <= rules.end_hold
    count = len(luma) if held.all() else int(np.argmin(held))
    return count if count >= 2 else 0  # one dark frame is a ramp's first, not black held


def _one_per_dissolve(found: list[Transition]) -> list[Transition]:
    """Dissolves whose spans meet are one: many_hot can sag under `warm` for long in a long dissolve's middle."""
    merged: list[Transition] = []
    for t in found:
        last = merged[-1] if merged else None
        if last and last.type == t.type == "dissolve" and t.start_frame <= last.end_frame + 1:
            merged[-1] = Transition("dissolve", last.start_frame, max(last.end_frame, t.end_frame),
                                    max(last.confidence, t.confidence))  # fmt: skip
        else:
            merged.append(t)
    return merged


def _through_black_or_white(
    luma: NDArray[Any], flat: NDArray[Any], out: list[int], into: tuple[int, int], rules: Rules
) -> bool:
    """Whether run `out` fades out to black (or white), the frames up to run `into` hold it, and `into` fades in."""
    held = luma[out[1] + 1 : into[0]]
    if flat[out[1] + 1 : into[0]].mean() < 0.5:  # dark pictures between two cuts are not a fade's hold
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


def _span(
    many: NDArray[Any], luma: NDArray[Any], pitch: NDArray[Any], first: int, last: int, kind: str, rules: Rules
) -> tuple[int, int]:
    """A gradual transition's frames: the run widened while many_hot stays over `span_floor` (it rises before
    the run's frames pass `hot`); a fade also over the frames where the picture still darkens or brightens."""
    n = len(many)
    start, end = first, last
    while start > 0 and first - start < rules.span_reach and many[start - 1] > rules.span_floor:
        start -= 1
    while end < n - 1 and end - last < rules.span_reach and many[end + 1] > rules.span_floor:
        end += 1
    if kind == "fade":
        start = _ramp(luma, pitch, start, -1, rules)
        end = _ramp(luma, pitch, end, 1, rules)
    return start, end


def _ramp(luma: NDArray[Any], pitch: NDArray[Any], at: int, step: int, rules: Rules) -> int:
    """How far a fade goes on from frame `at` in direction `step`: while the grey level still moves, and on through
    pitch black (or pure white: `pitch`) frames held there into the ramp after them (the model often sees only one
    half of a fade)."""
    n, reach = len(luma), 0

    def moving(k: int) -> bool:
        return 0 <= k + step < n and abs(luma[k + step] - luma[k]) > rules.fade_step

    while reach < rules.span_reach and moving(at):
        at, reach = at + step, reach + 1
    # black (white) frames held, then a ramp away from it on the far side: into a dark picture it can be slow
    held = held_extreme(pitch, at + step, step, rules.hold) if 0 <= at + step < n else 0
    if held:
        at += step * held
        away = 1.0 if luma[at] < rules.pitch else -1.0
        # over the next 3 frames (an encoder's noise moves a dark picture's grey level back a little at times)
        while reach < rules.span_reach and 0 <= at + 3 * step < n and _creeps(luma, at, step, away, rules):
            at, reach = at + step, reach + 1
    return at


def _creeps(luma: NDArray[Any], at: int, step: int, away: float, rules: Rules) -> bool:
    """Whether the grey level still moves away from black (white) after frame `at`: over the next frame, or by
    as much again over the next three."""
    next_one = away * (luma[at + step] - luma[at])
    return bool(
        next_one > rules.fade_creep
        or (next_one >= 0 and away * (luma[at + 3 * step] - luma[at]) > 3 * rules.fade_creep)
    )


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
    across = min(change(normalised, first - i, last + j) for i in (1, 2) for j in (1, 2))
    own = max(change(normalised, first - 1 - width, first - 1), change(normalised, last + 1, last + 1 + width))
    return across < rules.same_ratio * own + rules.flat_change
