"""A shot-boundary test set with exact ground truth: real photographs filmed by a synthetic camera.

Each shot is one photograph (scikit-image's bundled ones) seen through a moving camera: a pan and a
zoom from one crop to another, with hand-held shake. Shots are joined by hard cuts, dissolves or fades
through black; some shots carry distractors that are not transitions: flash frames and fast whip pans.

Truth is a list of transitions (last frame of the outgoing shot, first frame of the incoming one):
(c - 1, c) for a cut at c; for a gradual transition, the frames around the blended ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SETS = {
    "cuts": "hard cuts only",
    "gradual": "dissolves (8-20 frames) and fades through black",
    "distractors": "hard cuts; flash frames and whip pans inside shots",
}


def photographs() -> list[np.ndarray]:
    """The colour and grey photographs that ship inside scikit-image (no download), as RGB uint8."""
    from skimage import data

    names = [
        "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
        "camera", "moon", "coins", "page", "text", "clock", "grass", "gravel", "brick", "horse", "colorwheel",
    ]  # fmt: skip
    photos = []
    for name in names:
        try:
            image = getattr(data, name)()
        except Exception:  # a dataset this version would have to download
            continue
        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = (255 * (image.astype(np.float64) / max(1, image.max()))).astype(np.uint8)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(image[..., :3]))
    if len(photos) < 6:
        raise RuntimeError("scikit-image's bundled photographs are missing: pip install scikit-image")
    return photos


@dataclass
class Shot:
    photo: np.ndarray
    length: int
    tint: np.ndarray
    start: tuple[float, float, float]  # centre x, centre y (0..1 of the photo), zoom (share of the photo's width)
    end: tuple[float, float, float]
    shake: float
    flash_at: int | None = None
    whip_at: int | None = None


def _camera(shot: Shot, width: int, height: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    ph, pw = shot.photo.shape[:2]
    for t in range(shot.length):
        a = t / max(1, shot.length - 1)
        cx, cy, zoom = (s + (e - s) * a for s, e in zip(shot.start, shot.end))
        if shot.whip_at is not None and shot.whip_at <= t < shot.whip_at + 6:
            cx += 0.07 * (t - shot.whip_at)  # a whip pan: 40% of the photo in six frames
        elif shot.whip_at is not None and t >= shot.whip_at + 6:
            cx += 0.42
        crop_w = zoom * pw
        scale = width / crop_w
        jitter = rng.normal(0, shot.shake, 2)
        tx = width / 2 - scale * (cx % 1.0) * pw + jitter[0]
        ty = height / 2 - scale * np.clip(cy, 0.2, 0.8) * ph + jitter[1]
        matrix = np.float32([[scale, 0, tx], [0, scale, ty]])
        frame = cv2.warpAffine(
            shot.photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        frame = np.clip(frame.astype(np.float32) * shot.tint, 0, 255)
        if shot.flash_at is not None and shot.flash_at <= t < shot.flash_at + 2:
            frame = frame * 0.25 + 255 * 0.75  # a photographer's flash
        yield frame.astype(np.uint8)


def _shots(rng: np.random.Generator, photos: list[np.ndarray], count: int, distractors: bool) -> list[Shot]:
    shots, previous = [], -1
    for _ in range(count):
        choice = int(rng.integers(len(photos)))
        while choice == previous:
            choice = int(rng.integers(len(photos)))
        previous = choice
        length = int(rng.integers(40, 130))
        zoom0, zoom1 = rng.uniform(0.45, 0.9, 2)
        shot = Shot(
            photo=photos[choice],
            length=length,
            tint=rng.uniform(0.75, 1.2, 3).astype(np.float32),
            start=(rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.65), zoom0),
            end=(rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.65), zoom1),
            shake=float(rng.choice([0.0, 1.0, 3.0])),
        )
        if distractors and rng.random() < 0.5:
            shot.flash_at = int(rng.integers(10, length - 10))
        if distractors and rng.random() < 0.4:
            shot.whip_at = int(rng.integers(8, length - 14))
        shots.append(shot)
    return shots


def render(kind: str, seed: int, shots: int, width: int, height: int) -> tuple[Iterator[np.ndarray], list]:
    """Frames of one test video and its transitions (filled in as the frames are drawn)."""
    rng = np.random.default_rng(seed)
    plan = _shots(rng, photographs(), shots, distractors=kind == "distractors")
    truth: list[tuple[int, int]] = []

    def frames() -> Iterator[np.ndarray]:
        index = 0  # frames yielded so far
        tail: list[np.ndarray] = []  # the outgoing shot, held back for a gradual transition
        for number, shot in enumerate(plan):
            incoming = list(_camera(shot, width, height, rng))
            if number and kind != "gradual":
                truth.append((index + len(tail) - 1, index + len(tail)))
            elif number and number % 2:  # a dissolve: the outgoing shot's end blends into the incoming one's start
                length = int(rng.integers(8, 21))
                for i in range(length):
                    a = (i + 1) / (length + 1)
                    incoming[i] = (tail[-length + i] * (1 - a) + incoming[i] * a).astype(np.uint8)
                tail = tail[:-length]
                first = index + len(tail)
                truth.append((first - 1, first + length))
            elif number:  # a fade out to black, a few black frames, a fade in
                out, black, fade_in = int(rng.integers(6, 13)), int(rng.integers(0, 6)), int(rng.integers(6, 13))
                faded = [(tail[-out + i] * (1 - (i + 1) / (out + 1))).astype(np.uint8) for i in range(out)]
                faded += [np.zeros_like(incoming[0])] * black
                for i in range(fade_in):
                    incoming[i] = (incoming[i] * ((i + 1) / (fade_in + 1))).astype(np.uint8)
                tail = tail[:-out]
                first = index + len(tail)
                truth.append((first - 1, first + out + black + fade_in))
                incoming = faded + incoming
            yield from tail
            index += len(tail)
            tail = incoming
        yield from tail

    return frames(), truth


def write_testset_video(path: Path, kind: str, seed: int, shots: int = 24, width: int = 480, height: int = 270,
                        fps: int = 25) -> list[tuple[int, int]]:  # fmt: skip
    """Write one generated video (H.264, yuv420p) and return its true transitions."""
    import av

    frames, truth = render(kind, seed, shots, width, height)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    path.with_suffix(".truth.json").write_text(json.dumps(truth))
    return truth
