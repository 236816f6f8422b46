"""Frame windows for TransNetV2, streamed: the reference's padding and overlap, bounded memory.

The reference pads the start with 25 copies of the first frame and the end with
copies of the last, takes 100-frame windows every 50 frames and keeps the middle
50 predictions of each. With a longer window the margins stay 25 frames and the
step grows, so fewer frames are computed twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

MARGIN = 25


@dataclass(frozen=True)
class Window:
    """One model input: `frames` [window, 27, 48, 3]; its kept predictions are for frames first..first+count-1."""

    frames: np.ndarray
    first: int
    count: int


def step_for(window: int, margin: int = MARGIN) -> int:
    if window <= 2 * margin:
        raise ValueError(f"window must exceed twice the margin ({2 * margin}), got {window}")
    return window - 2 * margin


def window_count(frame_count: int, window: int = 100, margin: int = MARGIN) -> int:
    step = step_for(window, margin)
    return -(-frame_count // step)


def iter_windows(frames: Iterable[np.ndarray], window: int = 100, margin: int = MARGIN) -> Iterator[Window]:
    """Yield the windows the reference would build, holding at most `window` frames at a time."""
    step = step_for(window, margin)
    buffer: list[np.ndarray] = []
    emitted = seen = 0
    last = None
    for frame in frames:
        if last is None:
            buffer.extend([frame] * margin)
        buffer.append(frame)
        last, seen = frame, seen + 1
        if len(buffer) == window:
            yield Window(np.stack(buffer), emitted * step, step)
            emitted += 1
            del buffer[:step]
    if last is None:
        return
    while emitted * step < seen:
        buffer.extend([last] * (window - len(buffer)))
        yield Window(np.stack(buffer), emitted * step, min(step, seen - emitted * step))
        emitted += 1
        del buffer[:step]


def kept(predictions: np.ndarray, win: Window, margin: int = MARGIN) -> np.ndarray:
    """The predictions a window contributes: the middle, trimmed at the video's end."""
    return predictions[margin : margin + win.count]
