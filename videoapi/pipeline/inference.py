"""Frames in, per-frame probabilities out: windows batched to the model, decode and inference overlapped."""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.windows import MARGIN, Window, iter_windows, kept


class FrameModel(Protocol):
    """Anything that maps windows [n, time, 27, 48, 3] to (single_frame, many_hot) [n, time]."""

    def predict(self, windows: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any] | None]: ...


@dataclass(frozen=True)
class Predictions:
    single_frame: NDArray[Any]  # float32 [frames]
    many_hot: NDArray[Any]  # float32 [frames]

    @property
    def frame_count(self) -> int:
        return len(self.single_frame)


def _batches(windows: Iterator[Window], size: int) -> Iterator[list[Window]]:
    """Up to `size` windows of one length a batch: the video's last window may be shorter (tail_window)."""
    batch: list[Window] = []
    for win in windows:
        if batch and len(win.frames) != len(batch[0].frames):
            yield batch
            batch = []
        batch.append(win)
        if len(batch) == size:  # at once, not when the next window is decoded: checkpoints and preemption count on it
            yield batch
            batch = []
    if batch:
        yield batch


def predict_frames(
    frames: Iterable[NDArray[Any]],
    model: FrameModel,
    *,
    window: int = 100,
    batch_windows: int = 16,
    in_flight: int = 2,
    on_progress: Callable[[int], None] | None = None,
    start: int = 0,
    stop: int | None = None,
    on_predictions: Callable[[NDArray[Any]], None] | None = None,
) -> Predictions:
    """Run TransNetV2 over a frame stream; at most `in_flight` batches wait on the model while decoding goes on.

    Memory holds one window being filled plus `in_flight` batches, whatever the length.
    With start/stop, `frames` begins at frame start - 25 and the predictions are
    those of frames start..stop-1 of a single pass (see iter_windows).
    `on_predictions` gets each batch's single-frame probabilities, in frame order, as they come.
    """
    singles: list[NDArray[Any]] = []
    manys: list[NDArray[Any]] = []
    done = 0
    pending: deque[tuple[list[Window], Future[Any]]] = deque()

    def collect() -> None:
        nonlocal done
        batch, future = pending.popleft()
        single, many = future.result()
        first = len(singles)
        for k, win in enumerate(batch):
            singles.append(kept(single[k], win, MARGIN))
            manys.append(kept(many[k], win, MARGIN) if many is not None else np.zeros(win.count, np.float32))
            done += win.count
        if on_predictions is not None and len(singles) > first:
            on_predictions(np.concatenate(singles[first:]))
        if on_progress is not None:
            on_progress(done)

    with ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix="infer") as pool:
        try:
            for batch in _batches(iter_windows(frames, window, MARGIN, start=start, stop=stop), batch_windows):
                stacked = np.stack([w.frames for w in batch])
                # in the caller's context: the job's trace and log fields reach the inference calls
                pending.append((batch, pool.submit(contextvars.copy_context().run, model.predict, stacked)))
                while len(pending) >= max(1, in_flight):
                    collect()
            while pending:
                collect()
        finally:
            for _, future in pending:
                future.cancel()
    if not singles:
        return Predictions(np.zeros(0, np.float32), np.zeros(0, np.float32))
    return Predictions(np.concatenate(singles).astype(np.float32), np.concatenate(manys).astype(np.float32))
