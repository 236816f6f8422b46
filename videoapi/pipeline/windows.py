"""Frame windows for TransNetV2, streamed: the reference's padding and overlap, bounded memory.

The reference pads the start with 25 copies of the first frame and the end with
copies of the last, takes 100-frame windows every 50 frames and keeps the middle
50 predictions of each. With a longer window the margins stay 25 frames and the
step grows, so fewer frames are computed twice. The video's last window is only as
long as its kept frames and margins need (`tail_window`): a short clip is not
computed over a long window of padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from torch import Tensor

MARGIN = 25


@dataclass(frozen=True)
class Window:
    """One model input: `frames` [window, 27, 48, 3]; its kept predictions are for frames first..first+count-1."""

    frames: NDArray[Any]
    first: int
    count: int


def step_for(window: int, margin: int = MARGIN) -> int:
    if window <= 2 * margin:
        raise ValueError(f"window must exceed twice the margin ({2 * margin}), got {window}")
    return window - 2 * margin


def tail_window(count: int, window: int, margin: int = MARGIN) -> int:
    """Frames in the video's last window when it keeps `count` frames: its kept frames and both margins, rounded
    up to a whole number of 2 * margin (a few recurring shapes) from the reference's 100, at most `window`.

    A 40-frame clip under a 200-frame window is computed over 100 frames, not 200 (half the inference), and
    those 100 are the reference's own last window: its frames past the kept ones are all copies of the last.
    """
    unit = 2 * margin
    return min(window, max(2 * unit, -(-(count + unit) // unit) * unit))


def window_count(frame_count: int, window: int = 100, margin: int = MARGIN) -> int:
    step = step_for(window, margin)
    return -(-frame_count // step)


def iter_windows(
    frames: Iterable[NDArray[Any]],
    window: int = 100,
    margin: int = MARGIN,
    *,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Window]:
    """Yield the windows the reference would build, holding at most `window` frames at a time.

    For a segment of a longer video, `frames` begins at frame start - margin
    (start a multiple of the step) and the windows whose kept frames begin
    before `stop` are yielded: exactly those of a single pass over the video.
    """
    step = step_for(window, margin)
    if start and (start % step or start < margin):
        raise ValueError(f"a segment must start on a multiple of the step ({step}), not {start}")
    buffer: list[NDArray[Any]] = []
    emitted = seen = 0
    last = None
    source_first = start - margin if start else 0  # global index of the first frame read

    def first_of(k: int) -> int:
        return start + k * step

    for frame in frames:
        if last is None and not start:
            buffer.extend([frame] * margin)
        buffer.append(frame)
        last, seen = frame, seen + 1
        if len(buffer) == window:
            yield Window(np.stack(buffer), first_of(emitted), step)
            emitted += 1
            del buffer[:step]
            if stop is not None and first_of(emitted) >= stop:
                return
    if last is None:
        return
    total = source_first + seen  # the video ended here
    while first_of(emitted) < total and (stop is None or first_of(emitted) < stop):
        count = min(step, total - first_of(emitted))
        size = tail_window(count, window, margin) if first_of(emitted) + step >= total else window
        buffer.extend([last] * (size - len(buffer)))
        yield Window(np.stack(buffer[:size]), first_of(emitted), count)
        emitted += 1
        del buffer[:step]


def kept(predictions: NDArray[Any], win: Window, margin: int = MARGIN) -> NDArray[Any]:
    """The predictions a window contributes: the middle, trimmed at the video's end."""
    return predictions[margin : margin + win.count]


def iter_tensor_windows(
    batches: Iterable[Tensor], window: int = 100, size: int = 16, margin: int = MARGIN
) -> Iterator[tuple[Tensor, list[int]]]:
    """iter_windows' windows from torch frame batches [n, 27, 48, 3], built where the frames are (on the GPU for
    NVDEC's): (up to `size` windows [k, window, 27, 48, 3], each one's count of kept frames); same padding, and the
    video's last window alone in its group, `tail_window` frames long."""
    import torch

    step = step_for(window, margin)
    buf: Tensor | None = None  # buf[0] is padded frame emitted * step
    emitted = total = 0
    for batch in batches:
        buf = torch.cat([batch[:1].expand(margin, *batch.shape[1:]) if buf is None else buf, batch])
        total += len(batch)
        while len(buf) >= (size - 1) * step + window:
            yield buf.unfold(0, window, step)[:size].permute(0, 4, 1, 2, 3).contiguous(), [step] * size
            buf, emitted = buf[size * step :], emitted + size
    left = -(-(total - emitted * step) // step)  # windows whose kept frames are still to come
    if buf is None or left <= 0:
        return
    need = (left - 1) * step + window
    if len(buf) < need:
        buf = torch.cat([buf, buf[-1:].expand(need - len(buf), *buf.shape[1:])])
    windows = buf[:need].unfold(0, window, step).permute(0, 4, 1, 2, 3).contiguous()
    counts = [min(step, total - (emitted + k) * step) for k in range(left)]
    for k in range(0, left - 1, size):
        end = min(k + size, left - 1)
        yield windows[k:end], counts[k:end]
    last = tail_window(counts[-1], window, margin)
    yield windows[-1:, :last].contiguous(), counts[-1:]
