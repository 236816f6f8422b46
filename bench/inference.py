"""Inference throughput of TransNetV2, side by side in one run: Triton, ONNX Runtime and OpenVINO (f32, bf16,
INT8 where `videoapi model build` wrote the INT8 model) called directly, reference PyTorch.

Useful frames/s counts 50 frames per 100-frame window (the reference keeps the
middle half of each window). Run: `python bench/inference.py [--batches 1,2,4,8] [--seconds 5]`.
A CPU with fewer instruction sets can be stood in for with oneDNN's cap, e.g. AVX2 alone:
`ONEDNN_MAX_CPU_ISA=AVX2 python bench/inference.py --no-triton --no-torch-reference` (bf16 then has no
kernels and is left out; Triton's `auto` would still read bf16 off /proc/cpuinfo, hence --no-triton).
Writes bench/results/inference-<machine>-<date>.json (bench/envelope.py; `--out` elsewhere).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local.triton_server import TritonServer
from videoapi.adapters.triton import ShotModelClient
from videoapi.model.runtime import int8_model_path
from videoapi.settings import Settings

USEFUL_PER_WINDOW = 50


def measure(fn, batch: int, seconds: float) -> float:
    """Useful frames/s of fn over batches of `batch` windows, after one warm-up call."""
    fn()
    windows, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        fn()
        windows += batch
    return windows * USEFUL_PER_WINDOW / elapsed


def main(
    batches: Annotated[str, typer.Option(help="comma-separated batch sizes (windows per call)")] = "1,2,4,8",
    seconds: Annotated[float, typer.Option(help="seconds per measurement")] = 5.0,
    torch_reference: Annotated[bool, typer.Option(help="also measure the reference PyTorch module")] = True,
    triton: Annotated[bool, typer.Option(help="also measure Triton serving the repository")] = True,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    settings = Settings()
    sizes = [int(b) for b in batches.split(",")]
    onnx_path = settings.model_repository / settings.model_name / "1" / "model.onnx"
    rng = np.random.default_rng(0)
    inputs = {b: rng.integers(0, 256, (b, 100, 27, 48, 3), dtype=np.uint8) for b in sizes}
    rows: dict[str, dict[int, float]] = {}

    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rows["ONNX Runtime (direct)"] = {
        b: measure(lambda b=b: session.run(None, {"frames": inputs[b]}), b, seconds) for b in sizes
    }

    import openvino as ov

    core = ov.Core()
    int8_path = Path(int8_model_path(str(onnx_path)))
    variants = [("f32", onnx_path, "f32"), ("bf16", onnx_path, "bf16")]
    variants += [("int8", int8_path, "f32")] if int8_path.is_file() else []  # the runtime's INT8: the rest in f32
    for name, path, hint in variants:
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        try:
            compiled = core.compile_model(str(path), "CPU", config)
            rows[f"OpenVINO {name} (direct)"] = {
                b: measure(lambda b=b, c=compiled: c({"frames": inputs[b]}), b, seconds) for b in sizes
            }
        except RuntimeError as exc:  # no kernels for it on this CPU (or under ONEDNN_MAX_CPU_ISA)
            print(f"OpenVINO {name}: left out, {str(exc).strip().splitlines()[-1][:160]}")

    if triton:
        with TritonServer(settings.model_repository) as server:
            for protocol, url in (("grpc", server.grpc_url), ("http", server.http_url)):
                with ShotModelClient(url, protocol=protocol, timeout_s=600) as client:
                    rows[f"Triton ({protocol})"] = {
                        b: measure(lambda b=b: client.predict(inputs[b]), b, seconds) for b in sizes
                    }

    if torch_reference:
        import torch

        from videoapi.model.export import load_reference

        model = load_reference("cpu")
        tensors = {b: torch.from_numpy(inputs[b]) for b in sizes}

        def run_torch(b):
            with torch.no_grad():
                model.predict_raw(tensors[b])

        rows["reference PyTorch"] = {b: measure(lambda b=b: run_torch(b), b, seconds) for b in sizes}

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}"
    table = Table(title=f"TransNetV2 useful frames/s by batch size (windows per call) - {machine}")
    table.add_column("backend")
    for b in sizes:
        table.add_column(f"batch {b}", justify="right")
    for name, by_batch in rows.items():
        table.add_row(name, *[f"{by_batch[b]:,.0f}" for b in sizes])
    Console().print(table)
    from envelope import write_result

    parameters = {"batches": sizes, "seconds": seconds, "torch_reference": torch_reference, "triton": triton}
    parameters |= {"useful_frames_per_window": USEFUL_PER_WINDOW, "window": 100}
    write_result("inference", parameters, {"useful_frames_per_s": rows}, out=out)


if __name__ == "__main__":
    typer.run(main)
