"""Transitions the model misses, found in the pictures (PictureStats' arrays): cuts it scores under the threshold,
long dissolves and fades it barely sees, fades in and out at the video's ends. Their confidence is the threshold's:
the model's own figure there says only that it missed them."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.shots import runs
from videoapi.pipeline.transition_rules import (
    Rules,
    Transition,
    across_and_own,
    change,
    colour_change,
    held_extreme,
    overlaid,
)


def frame_cuts(
    diff: NDArray[Any], luma: NDArray[Any], thumbs: NDArray[Any], normalised: NDArray[Any], hists: NDArray[Any],
    flat: NDArray[Any], extreme: NDArray[Any], taken: NDArray[Any], rules: Rules,
) -> list[int]:  # fmt: skip
    """Cuts the model scored under the threshold (very short shots, similar pictures): a frame change that stands
    far above the changes around it, after which the picture does not come back."""
    n = len(diff)
    if n < 4:
        return []
    found = []
    for t in _peaks(diff, flat, rules):
        if taken[t] or extreme[t - 1] or extreme[t] or overlaid(thumbs, t - 1, t, rules):
            continue
        around = np.concatenate((diff[max(1, t - 7) : max(1, t - 1)], diff[t + 2 : t + 8]))
        if len(around) < 3 or diff[t] < rules.frame_cut_iso * (np.sort(around)[-3] + 1.0):
            continue
        if _new_picture(t, diff, luma, thumbs, normalised, hists, flat, rules):
            found.append(t)
    return found


def rapid_cuts(
    diff: NDArray[Any], luma: NDArray[Any], thumbs: NDArray[Any], normalised: NDArray[Any], hists: NDArray[Any],
    flat: NDArray[Any], extreme: NDArray[Any], blocked: NDArray[Any], cuts: list[int], rules: Rules,
) -> list[int]:  # fmt: skip
    """Cuts a few frames from other cuts (rapid cutting: shots of two to six frames), which the model scores low
    and `frame_cuts` cannot tell apart, their neighbours' changes being as large: a clean jump (the frames either
    side of it steady: a change `rapid_clean` times theirs) to a new picture, beside another such jump or a cut found
    within `rapid_near` frames. A shot of one frame gives two jumps side by side, neither clean: one boundary."""
    n = len(diff)
    if n < 4:
        return []
    peaks = [t for t in _peaks(diff, flat, rules) if 2 <= t < n - 1]
    steady = np.maximum(diff[:-2], diff[2:])  # each frame's neighbours' larger change (frame t at index t - 1)
    clean = [t for t in peaks if diff[t] >= max(rules.rapid_clean * (steady[t - 1] + 1.0), rules.rapid_diff)]
    found = []
    for t in clean:
        neighbours = [c for c in cuts + clean if 2 <= abs(c - t) <= rules.rapid_near]
        if not neighbours or blocked[t] or extreme[t - 1] or extreme[t] or overlaid(thumbs, t - 1, t, rules):
            continue
        if _new_picture(t, diff, luma, thumbs, normalised, hists, flat, rules):
            found.append(t)
    return found


def _peaks(diff: NDArray[Any], flat: NDArray[Any], rules: Rules) -> list[int]:
    """Frames whose change from the one before is a local maximum over the least a cut's can be."""
    least = np.where(flat[1:-1] & flat[:-2], rules.frame_cut_flat_diff, rules.frame_cut_diff)
    peaks = (diff[1:-1] >= least) & (diff[1:-1] >= diff[:-2]) & (diff[1:-1] >= diff[2:])
    out: list[int] = (np.flatnonzero(peaks) + 1).tolist()
    return out


def _new_picture(
    t: int, diff: NDArray[Any], luma: NDArray[Any], thumbs: NDArray[Any], normalised: NDArray[Any],
    hists: NDArray[Any], flat: NDArray[Any], rules: Rules,
) -> bool:  # fmt: skip
    """Whether frame t shows a new picture: not a flash, another colour (between two flat ones) or another picture
    that does not come back within `frame_cut_reach` frames, with colours of its own unless it changes a lot."""
    if (luma[max(1, t - 3) : t + 1] - luma[max(0, t - 4) : t] > rules.frame_cut_flash).any():
        return False  # a flash (or its end): the picture jumped brighter; a cut between similar shots barely does
    if flat[t - 1] and flat[t]:  # one flat colour to another: nothing in the picture to compare, but its colour
        colours_of = thumbs[t - 1 : t + 1].reshape(2, -1, 3).mean(axis=1)
        # the same colour is a fine texture moving, averaged out at this size
        return bool(np.abs(colours_of[1] - colours_of[0]).max() >= rules.frame_cut_flat_diff)
    step = change(normalised, t - 1, t)
    back = min(change(normalised, t - i, t + j) for i in range(1, 5) for j in range(1, rules.frame_cut_reach + 1))
    if step < rules.frame_cut_step or back < rules.frame_cut_step:
        return False
    # colours change more than from one frame to the next around it, unless the picture changes a lot
    usual = float(np.median([colour_change(hists, k - 1, k) for k in range(max(1, t - 7), t + 8) if k != t]))
    colours = colour_change(hists, t - 1, t)
    # the same colours as the frames around: the camera moved (or jerked)
    return not (step < rules.frame_cut_big_step and colours < max(rules.frame_cut_colours, rules.colour_ratio * usual))


def blended_transitions(
    many: NDArray[Any], thumbs: NDArray[Any], normalised: NDArray[Any], extreme: NDArray[Any], taken: NDArray[Any],
    threshold: float, rules: Rules,
) -> list[Transition]:  # fmt: skip
    """Long dissolves and fades the model barely sees (many_hot rising a little): frames that are one picture
    blending steadily into another (or into black or white), found where many_hot stirs."""
    n = len(many)
    values = thumbs.reshape(n, -1).astype(np.float32)
    found = []
    for first, last in runs(many > rules.blend_floor):
        if last - first + 1 < rules.blend_min or first < 3 or last > n - 4 or taken[first : last + 1].any():
            continue
        if many[first : last + 1].max() < rules.blend_peak:
            continue
        before, after = values[first - 2], values[last + 2]
        towards = after - before
        # how far along from the picture before to the one after each frame is, and what that leaves unexplained
        along = (values[first : last + 1] - before) @ towards / (float(towards @ towards) + 1e-6)
        left = np.abs(values[first : last + 1] - before - along[:, None] * towards).mean() / (
            np.abs(towards).mean() + 1e-6
        )
        steady = np.corrcoef(along, np.arange(len(along)))[0, 1] >= rules.blend_steady
        if not steady or along.min() > rules.blend_ends or along.max() < 1 - rules.blend_ends:
            continue
        if left > rules.blend_left:
            continue
        start, end = _blend_span(values, towards, first, last, rules.blend_reach)
        if overlaid(thumbs, start - 1, end + 1, rules):
            continue  # words or a graphic fading in or out over a picture that goes on
        kind = _blend_kind(extreme, start, end)
        if kind == "dissolve":
            # half of one picture over half of another has less contrast than the two pictures' (a picture that
            # pans, brightens or darkens keeps a contrast between theirs); the pictures are those just outside
            # the blend's span (a long dissolve's many_hot stirs over its middle only, between two blends)
            outer_before, outer_after = values[max(0, start - 1)], values[min(n - 1, end + 1)]
            outward = outer_after - outer_before
            share = (values[start - 1 : end + 2] - outer_before) @ outward / (float(outward @ outward) + 1e-6)
            contrast, middle = values[start - 1 : end + 2].std(axis=1), (share >= 0.3) & (share <= 0.7)
            expected = (1 - share) * contrast[0] + share * contrast[-1]
            if not middle.any() or (contrast / (expected + 1e-6))[middle].min() > rules.blend_dip:
                continue
            across, own = across_and_own(normalised, start, end)
            if across < rules.dissolve_across or across < rules.blend_ratio * own:
                continue
        if kind == "fade":  # through black (white) and back: past the frames held there, another picture
            lead = held_extreme(extreme, start - 1, -1, rules.hold)
            trail = held_extreme(extreme, end + 1, 1, rules.hold)
            back = change(normalised, start - lead - 1, end + trail + 1)
            distance = end + trail - start + lead + 2  # ... more than the shot itself moves in as many frames
            if back < rules.dissolve_across or back < rules.same_ratio * change(
                normalised, start - lead - 1 - distance, start - lead - 1
            ):
                continue
        found.append(Transition(kind, start, end, threshold))
    return found


def _blend_kind(extreme: NDArray[Any], first: int, last: int) -> str:
    """A blend from or into black (white) is a fade; a fade out at the very end, a fade in at the very start."""
    if extreme[last + 1 :].all():
        return "fade_out"
    if extreme[:first].all():
        return "fade_in"
    return "fade" if extreme[first - 1] or extreme[last + 1] else "dissolve"


def _blend_span(values: NDArray[Any], towards: NDArray[Any], first: int, last: int, reach: int) -> tuple[int, int]:
    """The first and last frames of the blend around `first`..`last`, each end moved out by up to `reach`: the
    widest of the best fit of the picture before, a steady blend and the picture after (which a moving camera
    pulls inwards) and of the frames where the picture still moves (`towards`: from the picture before to the
    one after) at half its pace inside."""
    n = len(values)
    lo, hi = max(1, first - reach - 2), min(n - 2, last + reach + 2)
    window, frames = values[lo : hi + 1], np.arange(lo, hi + 1)
    fit = (np.inf, first, last)
    for start in range(max(lo + 1, first - reach), first + 1):
        for end in range(last, min(hi - 1, last + reach) + 1):
            share = np.clip((frames - start + 1) / (end - start + 2), 0.0, 1.0)[:, None]
            error = float(np.abs(window - values[start - 1] * (1 - share) - values[end + 1] * share).mean())
            if error < fit[0]:
                fit = (error, start, end)
    scale = float(towards @ towards) + 1e-6

    def pace(a: int, b: int) -> NDArray[Any]:  # how far each of frames a..b-1 moves towards the picture after
        moved: NDArray[Any] = (values[a:b] - values[a - 1 : b - 1]) @ towards / scale
        return moved

    usual = float(np.median(pace(first, last + 1)))
    start, end = first, last
    while first - start < reach and start > 2 and float(pace(start - 2, start + 1).mean()) >= usual / 2:
        start -= 1
    while end - last < reach and end + 3 < n and float(pace(end, end + 3).mean()) >= usual / 2:
        end += 1
    return min(start, fit[1]), max(end, fit[2])


def edge_fades(luma: NDArray[Any], found: list[Transition], threshold: float, rules: Rules) -> list[Transition]:
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
