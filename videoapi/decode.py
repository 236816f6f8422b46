"""Decode a video with OpenCV, frame by frame, into TransNetV2's 48x27 RGB input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from videoapi.probe import VideoRejected

MODEL_WIDTH, MODEL_HEIGHT = 48, 27


def to_model_frame(bgr: np.ndarray) -> np.ndarray:
    """One decoded BGR frame to a 27x48x3 RGB uint8 frame (area averaging, closest to the reference's ffmpeg scale)."""
    small = cv2.resize(bgr, (MODEL_WIDTH, MODEL_HEIGHT), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def _seek(cap: cv2.VideoCapture, start: int) -> int:
    """Position the capture on frame `start`; returns the frame it is really on."""
    if start <= 0:
        return 0
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == start:
        return start
    # The container could not seek exactly: read through from the start instead.
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    index = 0
    while index < start and cap.grab():
        index += 1
    return index


def iter_model_frames(path: Path, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield frames start..stop-1 as 27x48x3 RGB uint8, holding one decoded frame at a time."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoRejected("not_a_video", f"{Path(path).name} is not a video OpenCV can open")
    try:
        index = _seek(cap, start)
        if index < start:
            return
        while stop is None or index < stop:
            ok, bgr = cap.read()
            if not ok:
                break
            yield to_model_frame(bgr)
            index += 1
    finally:
        cap.release()
