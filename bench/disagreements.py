"""Contact sheets of the frames around each place where two methods disagree, to look at and judge."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

WIDTH, HEIGHT = 192, 108


def frames_at(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """RGB frames (WIDTH x HEIGHT) of the video at these display-order indices, in one pass."""
    found: dict[int, np.ndarray] = {}
    last = max(wanted, default=-1)
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index > last:  # bounded by the frames wanted, not by the end of the stream
                break
            if index in wanted:
                found[index] = frame.to_ndarray(format="rgb24", width=WIDTH, height=HEIGHT)
    return found


def contact_sheet(
    frames: dict[int, np.ndarray], around: int, span: int, title: str, curves: dict[str, np.ndarray]
) -> np.ndarray:
    """One row of frames around-span..around+span, each labelled with its index and the curves' values there."""
    tiles = []
    for index in range(around - span, around + span + 1):
        tile = np.zeros((HEIGHT + 34, WIDTH, 3), np.uint8)
        if index in frames:
            tile[:HEIGHT] = frames[index]
        labels = [f"{index}"] + [
            f"{name} {values[index]:.2f}" for name, values in curves.items() if 0 <= index < len(values)
        ]
        cv2.putText(tile, labels[0], (4, HEIGHT + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
        cv2.putText(tile, "  ".join(labels[1:]), (4, HEIGHT + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1)
        tiles.append(tile)
    row = np.concatenate(tiles, axis=1)
    header = np.zeros((20, row.shape[1], 3), np.uint8)
    cv2.putText(header, title, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return np.concatenate((header, row), axis=0)


def write_sheets(
    path: Path, places: list[tuple[int, str]], out: Path, curves: dict[str, np.ndarray], span: int = 4
) -> list[Path]:
    """A PNG per (frame, title) under out/, frames around it from the video; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    wanted = {i for at, _ in places for i in range(at - span, at + span + 1) if i >= 0}
    frames = frames_at(path, wanted)
    written = []
    for number, (at, title) in enumerate(places):
        sheet = contact_sheet(frames, at, span, title, curves)
        target = out / f"{number:02d}-frame{at}.png"
        cv2.imwrite(str(target), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        written.append(target)
    return written
