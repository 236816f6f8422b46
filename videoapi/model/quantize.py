"""INT8 TransNetV2 for CPUs without bf16: NNCF post-training quantization, calibrated on generated windows.

`videoapi model build` calls `quantize_int8` (with the `int8` extra installed) and writes two builds beside
model.onnx, one for VNNI and AMX kernels and one for AVX2's (`runtime.int8_model_path` picks); the runtime's
precision `auto` takes INT8 where the CPU has INT8 kernels but no bf16. The calibration frames are generated
here, deterministic for a seed, at the model's 48x27: photograph-like pictures (colour noise over octaves,
shapes with sharp edges) filmed by a moving camera (pans, zooms, shake, a whip pan now and then), in shots
joined by cuts, dissolves and fades through black, with flashes inside shots. Nothing of the accuracy bench's
videos goes into it, so its figures stay measured on data the model was not tuned on. nncf and OpenVINO are
imported lazily.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.errors import ModelFileError
from videoapi.model.runtime import _import_openvino

HEIGHT, WIDTH = 27, 48
CALIBRATION_WINDOWS = 48  # 100-frame windows: about half a minute of NNCF's statistics on 2 cores
CALIBRATION_SEED = 19
# The build for AVX2's kernels (runtime.int8_adds_in_pairs) keeps the first block (8 convolutions of 48, their
# concatenation, batch norm and ReLU) in f32: it reads the frames and their first features, where AVX2's pairwise
# int16 sums saturate (bench/int8_avx2.py; docs: How we measured, Speed).
AVX2_FLOAT_BLOCK = r".*/SDDCNN\.0/DDCNN\.0/.*"
AVX2_FLOAT_CONVOLUTIONS = 8


def nncf_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


def _import_nncf() -> Any:
    """`import nncf` with its usage telemetry off (NNCF_CI is the switch nncf reads, once, at import)."""
    previous = os.environ.get("NNCF_CI")
    os.environ["NNCF_CI"] = "1"
    try:
        import nncf
    finally:
        if previous is None:
            del os.environ["NNCF_CI"]
        else:
            os.environ["NNCF_CI"] = previous
    return nncf


def _upsample(grid: NDArray[np.float32], height: int, width: int) -> NDArray[np.float32]:
    """Bilinear enlargement of grid [h, w, c] to [height, width, c]."""
    ys = np.linspace(0, grid.shape[0] - 1, height, dtype=np.float32)
    xs = np.linspace(0, grid.shape[1] - 1, width, dtype=np.float32)
    return _sample(grid, ys[:, None], xs[None, :])


def _sample(picture: NDArray[np.float32], ys: NDArray[Any], xs: NDArray[Any]) -> NDArray[np.float32]:
    """picture at fractional coordinates (broadcast ys, xs), bilinear, clamped to its edges."""
    h, w = picture.shape[:2]
    ys, xs = np.broadcast_arrays(np.clip(ys, 0, h - 1.001), np.clip(xs, 0, w - 1.001))
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    top = picture[y0, x0] * (1 - fx) + picture[y0, x0 + 1] * fx
    bottom = picture[y0 + 1, x0] * (1 - fx) + picture[y0 + 1, x0 + 1] * fx
    out: NDArray[np.float32] = (top * (1 - fy) + bottom * fy).astype(np.float32)
    return out


def _picture(rng: np.random.Generator, height: int, width: int) -> NDArray[np.float32]:
    """A photograph-like RGB picture: colour noise over octaves (coarse ones strongest) plus shapes with edges."""
    picture = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((2, 1.0), (4, 0.7), (8, 0.45), (16, 0.25), (32, 0.12)):
        shape = (cells + 1, cells * width // height + 1)
        grid = rng.normal(0, 0.6, (*shape, 3)).astype(np.float32)  # colour
        grid += rng.normal(0, 1.5, (*shape, 1)).astype(np.float32)  # luminance
        picture += weight * _upsample(grid, height, width)
    picture = (picture - picture.mean()) / (picture.std() + 1e-6)
    tint = rng.uniform(40, 210) + rng.normal(0, 25, 3).astype(np.float32)  # a grey level, a colour cast
    picture = picture * rng.uniform(15, 70) + tint
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(0, 7))):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.03, 0.25) * height, rng.uniform(0.03, 0.25) * width
        if rng.random() < 0.5:
            mask = (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
        else:
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        picture[mask] = 0.3 * picture[mask] + 0.7 * colour
    clipped: NDArray[np.float32] = np.clip(picture, 0, 255)
    return clipped


def _shot(rng: np.random.Generator, length: int) -> NDArray[np.float32]:
    """length frames [length, 27, 48, 3] of one picture seen by a moving camera, sometimes with a flash."""
    scale = 3  # the picture is 3x the frame: room to pan and zoom
    picture = _picture(rng, HEIGHT * scale, WIDTH * scale)
    t = np.arange(length, dtype=np.float32)
    zoom = rng.uniform(0.35, 0.7) * (1 + rng.choice([0, 0, 1, -1]) * rng.uniform(0, 0.006) * t)
    vy, vx = rng.normal(0, 0.3), rng.normal(0, 0.8)
    cy = HEIGHT * scale / 2 + vy * (t - length / 2) + rng.normal(0, 0.4, length).cumsum() * 0.3
    cx = WIDTH * scale / 2 + vx * (t - length / 2) + rng.normal(0, 0.4, length).cumsum() * 0.3
    if length > 12 and rng.random() < 0.15:  # a whip pan: a few frames moving fast
        start = int(rng.integers(0, length - 6))
        cx[start:] += np.minimum(t[start:] - start, 6) * rng.choice([-1, 1]) * rng.uniform(4, 10)
    # the camera stays over the picture
    cy = np.clip(cy, HEIGHT * scale * zoom / 2, HEIGHT * scale * (1 - zoom / 2))
    cx = np.clip(cx, WIDTH * scale * zoom / 2, WIDTH * scale * (1 - zoom / 2))
    iy = (np.arange(HEIGHT, dtype=np.float32) - HEIGHT / 2) * scale
    ix = (np.arange(WIDTH, dtype=np.float32) - WIDTH / 2) * scale
    frames = np.stack(
        [_sample(picture, cy[k] + iy[:, None] * zoom[k], cx[k] + ix[None, :] * zoom[k]) for k in range(length)]
    )
    if rng.random() < 0.1:  # a flash: one or two frames far brighter
        flash = slice(start := int(rng.integers(0, length)), start + int(rng.integers(1, 3)))
        frames[flash] = frames[flash] * 1.6 + 80
    return frames


def _window(rng: np.random.Generator, time: int) -> NDArray[np.uint8]:
    """time frames of shots joined by cuts (most), dissolves and fades through black; some windows hold one shot."""
    frames = _shot(rng, int(rng.integers(10, 3 * time // 2)))
    while len(frames) < time:
        following = _shot(rng, int(rng.integers(12, time)))
        kind = rng.choice(["cut", "cut", "cut", "dissolve", "fade"])
        span = int(min(rng.integers(4, 21), len(frames), len(following)))
        if kind == "dissolve":
            alpha = np.linspace(0, 1, span + 2, dtype=np.float32)[1:-1, None, None, None]
            mixed = frames[-span:] * (1 - alpha) + following[:span] * alpha
            frames = np.concatenate([frames[:-span], mixed, following[span:]])
        elif kind == "fade":
            ramp = np.linspace(1, 0, span, dtype=np.float32)[:, None, None, None]
            frames = np.concatenate(
                [frames[:-span], frames[-span:] * ramp, following[:span] * ramp[::-1], following[span:]]
            )
        else:
            frames = np.concatenate([frames, following])
    start = int(rng.integers(0, len(frames) - time + 1))
    window = frames[start : start + time] + rng.normal(0, 1.5, (time, HEIGHT, WIDTH, 3)).astype(np.float32)
    frames_u8: NDArray[np.uint8] = np.clip(np.rint(window), 0, 255).astype(np.uint8)
    return frames_u8


def calibration_windows(
    count: int = CALIBRATION_WINDOWS, *, seed: int = CALIBRATION_SEED, time: int = 100
) -> NDArray[np.uint8]:
    """count generated windows, uint8 [count, time, 27, 48, 3]; the same for the same seed."""
    rng = np.random.default_rng(seed)
    return np.stack([_window(rng, time) for _ in range(count)])


def quantize_int8(
    onnx_path: Path,
    target: Path,
    *,
    windows: int = CALIBRATION_WINDOWS,
    seed: int = CALIBRATION_SEED,
    for_avx2: bool = False,
) -> Path:
    """Write the INT8 OpenVINO model of the ONNX file (target.xml and its .bin), calibrated on generated windows.

    NNCF's mixed preset (weights symmetric, activations asymmetric) with its fast bias correction, as the
    probe (bench/int8_probe.py) measured it. The 3D convolutions, where the time goes, run in INT8; the matrix
    products (the similarity layers, the fully connected ones) stay f32: quantized, OpenVINO 2026.4 cannot
    compile the fully connected ones for a CPU with AVX2 alone (seen with ONEDNN_MAX_CPU_ISA=AVX2); keeping
    them f32 costs 7% of INT8's speed on an AMX Xeon. The weights are saved unrounded (no fp16).

    `for_avx2`: the build for AVX2's kernels, its first block in f32 and without NNCF's overflow fix (7-bit
    weights in the first quantized layer, which would then be the next block's and cost precision there).
    """
    ov = _import_openvino()
    nncf = _import_nncf()
    # errors only (its progress bars stay); nncf.set_log_level would also set the level of every handler on its
    # logger, pytest's capture among them
    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.Core().read_model(str(onnx_path))
    float_input = model.inputs[0].get_element_type() == ov.Type.f32
    ops = model.get_ordered_ops() if for_avx2 else []
    float_block = [op for op in ops if re.fullmatch(AVX2_FLOAT_BLOCK, op.get_friendly_name())]
    convolutions = [op.get_friendly_name() for op in float_block if op.get_type_name() == "Convolution"]
    if for_avx2 and len(convolutions) != AVX2_FLOAT_CONVOLUTIONS:  # a renamed export: say so, not quantize it all
        raise ModelFileError(f"expected {AVX2_FLOAT_CONVOLUTIONS} convolutions in the first block: {convolutions}")
    overflow_fix = nncf.OverflowFix.DISABLE if for_avx2 else nncf.OverflowFix.FIRST_LAYER
    data = calibration_windows(windows, seed=seed)
    items = [(w[None].astype(np.float32) if float_input else w[None]) for w in data]
    quantized = nncf.quantize(
        model,
        nncf.Dataset(items),
        subset_size=len(items),
        preset=nncf.QuantizationPreset.MIXED,
        ignored_scope=nncf.IgnoredScope(
            names=[op.get_friendly_name() for op in float_block], types=["MatMul"], validate=False
        ),
        advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=overflow_fix),
    )
    staging = target.with_name(target.stem + ".new.xml")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        ov.save_model(quantized, str(staging), compress_to_fp16=False)
        staging.with_suffix(".bin").replace(target.with_suffix(".bin"))
        staging.replace(target)  # last: the .xml present means its .bin is
    finally:
        staging.unlink(missing_ok=True)
        staging.with_suffix(".bin").unlink(missing_ok=True)
    return target
