"""What post-processing works with: a typed transition, the rules' thresholds, and comparisons of PictureStats'
per-frame arrays (thumbnails with the exposure divided out, colour histograms) between frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

TRANSITION_TYPES = ("cut", "dissolve", "fade", "wipe", "fade_in", "fade_out")
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
    end_hold: float = 1.0  # a black (white) leader or tail: frames within this many grey levels of the first
    # (last) frame, itself pitch black (pure white); a fade reaching it is the first (last) shot's fade in (out)
    hold: int = 40  # frames of black (or white) between a fade out and a fade in, at most
    flat_std: float = 6.0  # a thumbnail with less spread than this is one flat colour
    black: float = 24.0  # mean grey levels under which a frame is black
    white: float = 232.0  # ... over which it is white
    pitch: float = 4.0  # mean grey levels under which (over 255 less which) a frame is pitch black (pure white)
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
    rapid_near: int = 7  # a cut this near another (rapid cutting): its change this many times the frames' either side
    rapid_clean: float = 3.0
    rapid_diff: float = 10.0  # ... and at least this many grey levels
    edge_fade_max: int = 60  # frames: a fade in from black at the start (out at the end) the model missed, at most
    edge_fade_rise: float = 10.0  # ... brightening by at least this many grey levels
    span_floor: float = 0.1  # a gradual transition's span: the frames around its run with many_hot over this
    span_reach: int = 45  # ... widened by at most this many frames either side
    fade_step: float = 2.0  # ... and a fade's where the mean grey level still moves this much a frame
    fade_creep: float = 0.25  # ... or, past black (white) frames held, where it still moves away from black (white)
    dissolve_across: float = 0.4  # a dissolve's pictures before and after differ at least this much (normalised)
    dissolve_ratio: float = 2.5  # ... and this many times the shots' own change over 5 frames
    blend_floor: float = 0.05  # a dissolve the model barely sees: many_hot over this for `blend_min` frames
    blend_min: int = 10
    blend_reach: int = 34  # ... its span found up to this many frames either side of where many_hot stirs
    blend_peak: float = 0.12  # ... reaching this
    blend_steady: float = 0.95  # ... its frames going steadily (correlation with time) from one picture
    blend_ends: float = 0.2  # ... near the one before to near the one after (share of the way)
    blend_dip: float = 0.9  # ... its contrast half way under this share of what the two pictures' would give
    blend_left: float = 0.3  # ... leaving this share of the difference of the two pictures unexplained
    blend_ratio: float = 3.0  # ... and the pictures differ this many times the shots' own change over 5 frames
    wipe_cell: float = 20.0  # a wipe: thumbnail cells whose colour differs this much (RGB distance) before and after
    wipe_cells: float = 0.6  # ... at least this share of the cells
    wipe_ratio: float = 2.0  # ... the pictures before and after differing this many times the shots' own change
    wipe_own: int = 16  # ... over as many frames as the window, at most this many
    wipe_left: float = 0.2  # ... each frame between made of the two pictures (a cell's share left out under this)
    wipe_explained: float = 0.8  # ... in this share of the cells and frames
    wipe_halfway: float = 0.18  # ... its cells seldom half way (mean distance to the nearer picture under this)
    wipe_spread: float = 0.12  # ... switching at moments spread over the window (std of their share)
    wipe_steady: float = 0.9  # ... the incoming picture's share of the frame growing steadily (correlation)
    wipe_unexplained: float = 0.3  # ... most of its frame changes no small shift of the frame before explains
    wipe_spike: float = 4.0  # ... and no frame change in its span over this many times their median (a cut)
    wipe_pace: float = 0.4  # ... over any 6 frames of its middle at least this share of its mean pace
    wipe_colours: float = 0.6  # ... its pictures before and after (`wipe_outside` frames out) differ in colours
    wipe_outside: int = 2  # ... at least this much (histograms, L1): one scene's colours are a camera's move
    wipe_creep: float = 0.01  # ... its span: the ramp fitting the incoming picture's share of the frame, widened
    # while that share still moves this much a frame
    overlay_same: float = 2.0  # no transition where this share of the picture's cells (not dark ones) stays within
    overlay_share: float = 0.5  # ... `overlay_same` grey levels in every channel: words or a graphic over it


DEFAULT_RULES = Rules()


def normalised_thumbs(thumbs: NDArray[Any]) -> NDArray[Any]:
    """Thumbnails with the exposure divided out: a brighter or darker copy of a picture matches it."""
    values = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    centred = values - values.mean(axis=1, keepdims=True)
    normalised: NDArray[Any] = centred / (centred.std(axis=1, keepdims=True) + 4.0)
    return normalised


def change(normalised: NDArray[Any], i: int, j: int) -> float:
    """Mean absolute difference of two frames' normalised thumbnails (indices clamped to the video)."""
    n = len(normalised)
    i, j = min(max(i, 0), n - 1), min(max(j, 0), n - 1)
    return float(np.abs(normalised[i] - normalised[j]).mean())


def colour_change(hists: NDArray[Any], i: int, j: int) -> float:
    """L1 distance between two frames' colour histograms (about 0 to 2)."""
    i, j = min(max(i, 0), len(hists) - 1), min(max(j, 0), len(hists) - 1)
    return float(np.abs(hists[i] - hists[j]).sum())


def held_extreme(extreme: NDArray[Any], start: int, step: int, most: int) -> int:
    """How many black or white frames run from `start` in direction `step` (at most `most`)."""
    count = 0
    while count < most and 0 <= start + step * count < len(extreme) and extreme[start + step * count]:
        count += 1
    return count


def overlaid(thumbs: NDArray[Any], i: int, j: int, rules: Rules) -> bool:
    """Whether frame j keeps most of frame i's picture exactly: words or a graphic appearing, changing or going away
    over a picture that goes on, no transition. Across a cut or a dissolve every part of the picture changes (a
    thumbnail cell averages a large area, so a camera's noise or motion moves it by more than a grey level or
    two). Cells dark in frame i (black bars, a black card's ground) are not counted as kept."""
    n = len(thumbs)
    i, j = min(max(i, 0), n - 1), min(max(j, 0), n - 1)
    a, b = thumbs[i].reshape(-1, 3).astype(np.float32), thumbs[j].reshape(-1, 3).astype(np.float32)
    kept = (np.abs(a - b).max(axis=1) <= rules.overlay_same) & (a.mean(axis=1) > rules.black)
    return bool(kept.mean() >= rules.overlay_share)


def across_and_own(normalised: NDArray[Any], first: int, last: int) -> tuple[float, float]:
    """The change across a run (frames just outside it) and the shots' own change over 5 frames around it."""
    across = min(change(normalised, first - i, last + j) for i in (1, 2) for j in (1, 2))
    steps = [change(normalised, first - 6 - 5 * i, first - 1 - 5 * i) for i in range(3)]
    steps += [change(normalised, last + 1 + 5 * i, last + 6 + 5 * i) for i in range(3)]
    return across, float(np.mean(steps))
