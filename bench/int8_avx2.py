"""The two INT8 builds under each kind of INT8 kernel (issue 19): how far each strays from f32, and its speed.

`videoapi model build` writes the main INT8 model (every convolution quantized) and a build for AVX2's kernels
(the first block in f32: `videoapi.model.quantize.AVX2_FLOAT_BLOCK`), which the runtime picks where AVX2's
kernels are the ones that run (`runtime.int8_adds_in_pairs`). Per kernel kind, stood in for on this CPU with
oneDNN's cap (a process each: the cap is read once), per build: the mean and largest difference from f32 of
both outputs on generated windows the builds were not calibrated on (seed 202) and on test.mp4's windows, the
frames whose single-frame probability crosses 0.5, and useful frames/s of a static batch of 4 windows of 150.

Run: `python bench/int8_avx2.py [--out FILE]` (needs the INT8 builds: `videoapi model build` with the int8
extra). Writes bench/results/int8_avx2-<machine>-<date>.json (bench/envelope.py), or FILE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from static_shapes import test_windows  # noqa: E402

from videoapi.model.quantize import calibration_windows  # noqa: E402
from videoapi.model.repository import int8_files  # noqa: E402

ONNX = ROOT / "model_repository/transnetv2/1/model.onnx"
KERNELS = {"this CPU's": "", "AVX-512 VNNI": "AVX512_CORE_VNNI", "AVX2": "AVX2"}
OUTPUTS = ("single_frame", "many_hot")
WINDOW, BATCH, SECONDS = 150, 4, 3.0


def _outputs(compiled, windows: np.ndarray) -> np.ndarray:
    """[window, output, frame] of both outputs, one window per call (the dynamic model)."""
    return np.stack(
        [np.stack([compiled(w[None])[compiled.output(name)].reshape(-1) for name in OUTPUTS]) for w in windows]
    )


def _useful_fps(core, xml: str) -> float:
    """Useful frames/s (window - 50 per window) of the model fixed to BATCH windows of WINDOW, best of 3."""
    model = core.read_model(xml)
    model.reshape({model.inputs[0].get_any_name(): [BATCH, WINDOW, 27, 48, 3]})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
    batch = np.random.default_rng(0).integers(0, 256, (BATCH, WINDOW, 27, 48, 3), dtype=np.uint8)
    compiled(batch)
    best = 0.0
    for _ in range(3):
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < SECONDS:
            compiled(batch)
            calls += 1
        best = max(best, calls * BATCH * (WINDOW - 50) / (time.perf_counter() - started))
    return best


def worker(folder: Path) -> None:
    """In a process with oneDNN's cap set: each build's outputs on both window sets, and its speed."""
    import openvino as ov

    core = ov.Core()
    xml, _, avx2_xml, _ = int8_files(ONNX)
    speeds = {}
    for name, path in (("main", xml), ("AVX2", avx2_xml)):
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        for windows in ("generated", "test.mp4"):
            np.save(folder / f"{name}-{windows}.npy", _outputs(compiled, np.load(folder / f"{windows}.npy")))
        speeds[name] = _useful_fps(core, str(path))
    (folder / "speeds.json").write_text(json.dumps(speeds))


def main(out: Path | None = None) -> None:
    import tempfile

    import openvino as ov

    if not int8_files(ONNX)[2].is_file():
        sys.exit("no AVX2 INT8 build: run `videoapi model build` with the int8 extra installed")
    sets = {"generated": calibration_windows(16, seed=202, time=WINDOW), "test.mp4": test_windows(16)}
    f32 = ov.Core().compile_model(str(ONNX), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    reference = {name: _outputs(f32, windows) for name, windows in sets.items()}
    rows = []
    header = f"{'kernels':14} {'build':5} {'generated: mean / max':>22} {'test.mp4: mean / max':>21}"
    print(f"{header} {'flips':>6} {'fps':>6}")
    for kernels, cap in KERNELS.items():
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            for name, windows in sets.items():
                np.save(folder / f"{name}.npy", windows)
            env = {**os.environ, "ONEDNN_MAX_CPU_ISA": cap} if cap else dict(os.environ)
            subprocess.run([sys.executable, __file__, "--worker", str(folder)], env=env, check=True)
            speeds = json.loads((folder / "speeds.json").read_text())
            for build in ("main", "AVX2"):
                row: dict = {"kernels": kernels, "onednn_cap": cap, "build": build, "useful_fps": speeds[build]}
                flips = 0
                for name in sets:
                    got = np.load(folder / f"{build}-{name}.npy")
                    difference = np.abs(got - reference[name])
                    row[name] = {"mean": float(difference.mean()), "max": float(difference.max())}
                    flips += int(((got[:, 0] > 0.5) != (reference[name][:, 0] > 0.5)).sum())
                row["single_frame_flips"] = flips
                rows.append(row)
                g, t = row["generated"], row["test.mp4"]
                print(
                    f"{kernels:14} {build:5} {g['mean']:>13.5f} / {g['max']:.3f} {t['mean']:>12.5f} / {t['max']:.3f}"
                    f" {flips:>6} {speeds[build]:>6.0f}"
                )
    from envelope import write_result

    parameters = {"window": WINDOW, "batch": BATCH, "seconds": SECONDS, "kernels": KERNELS, "windows_per_set": 16}
    write_result("int8_avx2", parameters, {"rows": rows}, out=out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]))
    else:
        main(Path(sys.argv[2]) if sys.argv[1:2] == ["--out"] else None)
