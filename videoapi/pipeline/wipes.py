"""Wipes, found in PictureStats' 8x6 thumbnails: the model (trained on cuts and dissolves) barely sees them.

In a wipe each part of the frame changes from the outgoing picture to the incoming one at its own moment, along
an edge or a shape sweeping across; in a dissolve or a fade every part changes together, and in a cut all at
once. So, over a window of frames from picture A (before) to picture B (after): each thumbnail cell's share of the
way from A to B, frame by frame. A wipe: the cells are nearly all either A or B (few half way), they switch at
moments spread over the window, and the share of the frame that is B grows steadily.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.transition_rules import Rules, Transition, colour_change

# frames between the two pictures compared; a window longer than the wipe still holds it
WINDOWS = (6, 9, 13, 18, 25, 35, 50, 70, 95)


def wipe_transitions(
    thumbs: NDArray[Any], hists: NDArray[Any], diff: NDArray[Any], unexplained: NDArray[Any], taken: NDArray[Any],
    threshold: float, rules: Rules,
) -> list[Transition]:  # fmt: skip
    """Wipes whose frames hold nothing `taken` (cuts already found there): their spans, from the first frame in
    which the incoming picture shows to the last in which the outgoing one does. `hists`: PictureStats' colour
    histograms (scaled to 0..1 a bin); `diff` and `unexplained`: its frame change and the share of it no small shift
    of the frame before explains."""
    n = len(thumbs)
    cells = thumbs.reshape(n, -1, 3).astype(np.float32)
    found: list[tuple[float, int, int]] = []  # (score, frame before, frame after) of each window judged a wipe
    for length in WINDOWS:
        if n < length + 2:
            break
        starts = np.arange(0, n - length - 1, max(1, length // 6))
        towards = cells[starts + length + 1] - cells[starts]
        width = np.sqrt((towards**2).sum(axis=2))  # (windows, cells)
        informative = width > rules.wipe_cell
        free = np.concatenate(([0], np.cumsum(taken)))
        keep = (informative.mean(axis=1) >= rules.wipe_cells) & (free[starts + length + 1] == free[starts + 1])
        # the pictures before and after differ more than each shot moves by itself over as many frames (or 8)
        across = width.mean(axis=1)
        lag = min(length + 1, rules.wipe_own)
        own = np.maximum(_moved(cells, starts, -lag), _moved(cells, starts + length + 1, lag))
        keep &= across >= rules.wipe_ratio * own
        if not keep.any():
            continue
        starts, towards, width, informative = starts[keep], towards[keep], width[keep], informative[keep]
        # first the middle frame alone (cheap): a wipe's is part A and part B, few of its cells half way
        share, left = _shares(cells[starts + (length + 1) // 2][:, None] - cells[starts][:, None], towards, width)
        share, left, cells_in = share[:, 0], left[:, 0], informative.sum(axis=1)
        switched = ((share > 0.5) & informative).sum(axis=1) / cells_in
        halfway = (np.minimum(np.abs(share), np.abs(1 - share)) * informative).sum(axis=1) / cells_in
        keep = (switched > 0.05) & (switched < 0.95) & (halfway <= 2 * rules.wipe_halfway)
        keep &= ((left <= rules.wipe_left) & informative).sum(axis=1) >= 0.5 * cells_in
        if not keep.any():
            continue
        starts, towards, width, informative = starts[keep], towards[keep], width[keep], informative[keep]
        frames = cells[starts[:, None] + np.arange(length + 2)]  # (windows, frames, cells, 3)
        for score, start in zip(_wipe_scores(frames, towards, width, informative, rules).tolist(), starts.tolist()):
            if score > 0 and _not_a_move(diff, unexplained, start + 1, start + length, rules):
                found.append((score, start, start + length + 1))
    chosen: list[tuple[int, int]] = []
    for _, before_frame, after_frame in sorted(found, reverse=True):
        if not any(before_frame < b and a < after_frame for a, b in chosen):  # overlapping a better one: the same
            chosen.append((before_frame, after_frame))
    out: list[Transition] = []
    for before_frame, after_frame in sorted(chosen):
        first, last = _wipe_span(cells, before_frame, after_frame, rules)
        if last - first + 1 < rules.gradual_min or taken[first : last + 1].any():
            continue
        changes = diff[first : last + 1]
        if changes.max() > rules.wipe_spike * (float(np.median(changes)) + 0.1):
            continue  # one frame change stands out: a cut (with motion around it), which the rules for cuts judge
        if colour_change(hists, first - rules.wipe_outside, last + rules.wipe_outside) < rules.wipe_colours:
            # the pictures before and after have one scene's colours: a camera that pans, tilts or swings over a
            # scene slides its parts across the frame one after another as a wipe's edge would, but a wipe joins
            # two shots
            continue
        if out and first <= out[-1].end_frame + 1:  # two windows, one wipe (a long one seen in halves)
            first = out.pop().start_frame
        out.append(Transition("wipe", first, last, threshold))
    return out


def _not_a_move(diff: NDArray[Any], unexplained: NDArray[Any], first: int, last: int, rules: Rules) -> bool:
    """Whether most frame changes in first..last are more than a shift of the frame before (a camera move over a
    texture of hard edges switches its cells one after another too)."""
    changed = diff[first : last + 1] >= 1.0
    return not changed.any() or float(np.median(unexplained[first : last + 1][changed])) >= rules.wipe_unexplained


def _moved(cells: NDArray[Any], at: NDArray[Any], lag: int) -> NDArray[Any]:
    """The mean cell change from frames `at` to `at + lag` (0 where that runs off the video)."""
    other = at + lag
    inside = (other >= 0) & (other < len(cells))
    moved = np.sqrt(((cells[np.clip(other, 0, len(cells) - 1)] - cells[at]) ** 2).sum(axis=2)).mean(axis=1)
    return np.where(inside, moved, 0.0)


def _shares(moved: NDArray[Any], towards: NDArray[Any], width: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Each frame's cells' share of the way `towards` the picture after (`moved`: from the picture before), and
    the share of that way's length it leaves out (the rest of `moved`, at right angles to the way)."""
    along = np.einsum("wfck,wck->wfc", moved, towards)
    length = np.maximum(width, 1e-3)[:, None]
    share = along / length**2
    rest = np.maximum(np.einsum("wfck,wfck->wfc", moved, moved) - along * share, 0.0)
    return share, np.sqrt(rest) / length


def _wipe_scores(
    frames: NDArray[Any], towards: NDArray[Any], width: NDArray[Any], informative: NDArray[Any], rules: Rules
) -> NDArray[Any]:
    """How wipe-like each window's frames between its first and last are (0 where not a wipe)."""
    share, left = _shares(frames[:, 1:-1] - frames[:, :1], towards, width)  # (windows, frames, cells)
    weight = informative[:, None, :] * np.ones_like(share)
    total = weight.sum(axis=(1, 2))
    # the frames between are made of the two pictures (no motion, no third picture): most cells are
    explained = ((left <= rules.wipe_left) * weight).sum(axis=(1, 2)) >= rules.wipe_explained * total
    # the cells are seldom half way (a dissolve's or a fade's are, for long)
    halfway = (np.minimum(np.abs(share), np.abs(1 - share)) * weight).sum(axis=(1, 2)) / total
    # the cells switch at moments spread over the window (a cut's all at one)
    switched = (share > 0.5).mean(axis=1)  # per cell: the share of the frames after its switch
    cells = informative.sum(axis=1)
    mean = (switched * informative).sum(axis=1) / cells
    spread = np.sqrt((((switched - mean[:, None]) ** 2) * informative).sum(axis=1) / cells)
    # the share of the frame that is the incoming picture grows steadily, from under half to over half
    covered = (np.clip(share, 0, 1) * informative[:, None, :]).sum(axis=2) / cells[:, None]
    time = np.arange(covered.shape[1], dtype=np.float32) - (covered.shape[1] - 1) / 2
    centred = covered - covered.mean(axis=1, keepdims=True)
    steady = (centred @ time) / (np.sqrt((centred**2).sum(axis=1) * (time**2).sum()) + 1e-9)
    # ... without pausing half way (two transitions and the shot between them: that shot's frames hold still)
    middle = (covered > 0.15) & (covered < 0.85)
    pace = 0.7 / np.maximum(middle.sum(axis=1), 1)  # the share a frame, on average, over the middle of the wipe
    rises = np.where(middle[:, 6:] & middle[:, :-6], covered[:, 6:] - covered[:, :-6], np.inf)
    unpaused = rises.min(axis=1, initial=np.inf) >= rules.wipe_pace * 6 * pace
    wipe = (
        explained
        & unpaused
        & (halfway <= rules.wipe_halfway)
        & (spread >= rules.wipe_spread)
        & (steady >= rules.wipe_steady)
    )
    wipe &= (covered[:, 0] < 0.5) & (covered[:, -1] > 0.5) & (covered.shape[1] >= 3)
    return np.where(wipe, spread - halfway, 0.0)


def _wipe_span(cells: NDArray[Any], before: int, after: int, rules: Rules) -> tuple[int, int]:
    """A wipe's first and last frames, seen between the pictures at `before` and `after` (a window which may hold
    less or more than it): where the share of the frame that is the new picture, a straight line through its
    middle part, leaves 0 and reaches 1, widened while that share still moves; then once more, measured between
    frames outside that span."""
    n = len(cells)
    first, last = before + 1, after - 1
    # the window judged best may begin or end inside the wipe: the pictures compared are taken a little outside
    a, b = max(0, before - (after - before) // 3), min(n - 1, after + (after - before) // 3)
    for _ in range(2):
        length = max(last - first + 1, 1)
        lo, hi = max(0, first - length // 2 - 2), min(n - 1, last + length // 2 + 2)
        a, b = min(a, max(0, first - 2)), max(b, min(n - 1, last + 2))
        lo, hi = min(lo, a), max(hi, b)
        towards = (cells[b] - cells[a])[None]
        width = np.sqrt((towards**2).sum(axis=-1))
        informative = width[0] > rules.wipe_cell
        if not informative.any():
            break
        share, _ = _shares((cells[lo : hi + 1] - cells[a])[None], towards, width)
        covered = np.clip(share[0][:, informative], 0, 1).mean(axis=1)
        middle = np.flatnonzero((covered > 0.2) & (covered < 0.8))
        if len(middle) < 2:
            break
        slope, offset = np.polyfit(middle.astype(np.float64), covered[middle].astype(np.float64), 1)
        if slope <= 0:
            break
        first_at = int(np.clip(np.ceil(-offset / slope), 0, len(covered) - 1))
        last_at = int(np.clip(np.floor((1 - offset) / slope), first_at, len(covered) - 1))
        # the edge is soft and a cell only partly covered at first: on while the share still moves
        while first_at > 0 and _moving(covered[first_at::-1], rules.wipe_creep):
            first_at -= 1
        while last_at < len(covered) - 1 and _moving(1 - covered[last_at:], rules.wipe_creep):
            last_at += 1
        first, last = lo + first_at, lo + last_at
    # a fit gone astray (camera motion around it) reaches no further than half the window's length either side
    reach = (after - before) // 2
    return max(first, before - reach), min(last, after + reach)


def _moving(share: NDArray[Any], creep: float) -> bool:
    """Whether the share still falls from `share[0]`: by `creep` to the next frame, and on to the one after."""
    return bool(share[1] < share[0] - creep and (len(share) < 3 or share[2] < share[1]))
