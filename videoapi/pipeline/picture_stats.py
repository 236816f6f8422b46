"""What post-processing keeps of each 48x27 model frame during the one decode: ~225 bytes a frame."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

THUMB_WIDTH, THUMB_HEIGHT = 8, 6
HIST_LEVELS = 4  # per RGB channel (its top two bits): 64 bins
SHIFT = 2  # pixels (at 48x27) a frame may move against the last one and still be "the same picture moved"


class PictureStats:
    """Per frame: an 8x6 RGB thumbnail, a 64-bin colour histogram, mean luma, mean change from the last frame,
    and how much of that change no shift of the last frame by up to SHIFT pixels explains (0: a pure move)."""

    def __init__(self) -> None:
        self._thumbs: list[NDArray[Any]] = []
        self._hists: list[NDArray[Any]] = []
        self._luma: list[float] = []
        self._diff: list[float] = []
        self._unexplained: list[float] = []
        self._previous: NDArray[Any] | None = None
        self._previous_grey: NDArray[Any] | None = None

    def update(self, frame: NDArray[Any]) -> None:
        """Take one 27x48x3 RGB frame (uint8)."""
        # OpenCV for each figure: a frame costs ~15 us, not ~70 us as numpy's casts and bincount did
        self._thumbs.append(cv2.resize(frame, (THUMB_WIDTH, THUMB_HEIGHT), interpolation=cv2.INTER_AREA))
        counts = cv2.calcHist([frame], [0, 1, 2], None, [HIST_LEVELS] * 3, [0, 256] * 3).ravel()
        pixels = frame.shape[0] * frame.shape[1]
        self._hists.append(np.minimum(255, counts.astype(np.int64) * 255 // pixels + (counts > 0)).astype(np.uint8))
        self._luma.append(sum(cv2.mean(frame)[:3]) / 3)
        # the first frame of a segment has no predecessor here: 0, and the rules fall back on the thumbnails
        previous = self._previous
        self._diff.append(0.0 if previous is None else sum(cv2.mean(cv2.absdiff(frame, previous))[:3]) / 3)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if previous is not None and self._previous_grey is None:  # restored from a checkpoint
            self._previous_grey = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY).astype(np.float32)
        self._unexplained.append(1.0 if self._previous_grey is None else _unexplained(grey, self._previous_grey))
        self._previous, self._previous_grey = frame.copy(), grey  # a copy: the decoder may reuse its buffer

    def state(self) -> dict[str, NDArray[Any]]:
        """What the next frame's values depend on: a checkpoint carries it, so a resumed span goes on exactly."""
        return {} if self._previous is None else {"pp_previous": self._previous}

    def restore(self, state: dict[str, NDArray[Any]]) -> None:
        if "pp_previous" in state:
            self._previous, self._previous_grey = np.asarray(state["pp_previous"], np.uint8), None

    def arrays(self) -> dict[str, NDArray[Any]]:
        n = len(self._luma)
        return {
            "pp_thumb": np.asarray(self._thumbs, np.uint8).reshape(n, THUMB_HEIGHT, THUMB_WIDTH, 3),
            "pp_hist": np.asarray(self._hists, np.uint8).reshape(n, HIST_LEVELS**3),
            "pp_luma": np.asarray(self._luma, np.float32),
            "pp_diff": np.asarray(self._diff, np.float32),
            "pp_unexplained": np.asarray(self._unexplained, np.float32),
        }


def _unexplained(grey: NDArray[Any], previous: NDArray[Any]) -> float:
    """The least squared difference between the last frame's centre shifted by up to SHIFT pixels and this frame,
    as a share of the unshifted one: near 0 when the camera moved (or jerked), near 1 for a new picture."""
    centre = previous[SHIFT:-SHIFT, SHIFT:-SHIFT]
    squared = cv2.matchTemplate(grey, centre, cv2.TM_SQDIFF)  # (2 SHIFT + 1) x (2 SHIFT + 1) shifts
    unshifted = float(squared[SHIFT, SHIFT])
    # + one grey level per pixel: a still picture (both near 0) counts as unexplained, not as moved
    return (float(squared.min()) + centre.size) / (unshifted + centre.size)
