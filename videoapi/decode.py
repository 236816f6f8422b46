"""Decode a video with OpenCV, frame by frame, into TransNetV2's 48x27 RGB input."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MODEL_WIDTH, MODEL_HEIGHT = 48, 27


class VideoDecodeError(ValueError):
    """The file cannot be decoded as a video; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video stream (frame_count may be an estimate)."""

    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def _open(path: Path) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise VideoDecodeError("not_found", f"no such file: {path}")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoDecodeError("not_a_video", f"{Path(path).name} is not a video OpenCV can open")
    return cap


def probe_video(path: Path) -> VideoInfo:
    cap = _open(path)
    try:
        return VideoInfo(
            fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        cap.release()


def to_model_frame(bgr: np.ndarray) -> np.ndarray:
    """One decoded BGR frame to a 27x48x3 RGB uint8 frame (area averaging, as a downscale wants)."""
    small = cv2.resize(bgr, (MODEL_WIDTH, MODEL_HEIGHT), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def iter_model_frames(path: Path, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield frames start..stop-1 as 27x48x3 RGB uint8; one frame in memory at a time."""
    cap = _open(path)
    try:
        index = 0
        if start > 0:
            # Seeking by frame index is not exact for every codec: read through instead.
            while index < start and cap.grab():
                index += 1
        while stop is None or index < stop:
            ok, bgr = cap.read()
            if not ok:
                break
            yield to_model_frame(bgr)
            index += 1
    finally:
        cap.release()
