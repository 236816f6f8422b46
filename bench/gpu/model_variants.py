"""TransNetV2 on the GPU, called directly, in the variants that could close the gap to 60,000 useful frames/s
(issue 19, part 3): fp16 autocast as served now; cuDNN autotuning; channels-last (3D); CUDA graphs (one capture
per batch size, static input); fp16 weights with the uint8->float cast left to the module; torch.compile.

Useful frames/s = 50 per 100-frame window; each point the median of 20 timed runs (CUDA events) after warm-up,
on random frames. Prints a table, writes $OUT/model_variants.json. Run: `python bench/gpu/model_variants.py`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "results"))
BATCHES = [int(b) for b in os.environ.get("BATCHES", "64,128,256").split(",")]
REPORT: dict = {}


def log(*args):
    print(*args, flush=True)


def timed(fn, x, runs: int = 20) -> float:
    """Median seconds per call, CUDA events."""
    import torch

    for _ in range(3):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return sorted(times)[len(times) // 2]


def autocast(m):
    """The module called under fp16 autocast, no gradients: how the GPU model runs."""
    import torch

    def run(x):
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            return m(x)

    return run


def main() -> None:
    import torch

    from videoapi.model.export import exportable_module

    module = exportable_module("cuda").cuda().eval()

    def graphed(m, b):
        static = torch.randint(0, 256, (b, 100, 27, 48, 3), dtype=torch.uint8, device="cuda")
        run = autocast(m)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                run(static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = run(static)

        def replay(x):
            static.copy_(x)
            graph.replay()
            return out

        return replay

    variants = {
        "autocast fp16 (served now)": lambda b: autocast(module),
        "autocast + cudnn.benchmark": lambda b: autocast(module),
        "autocast + channels_last_3d": lambda b: autocast(module.to(memory_format=torch.channels_last_3d)),
        "autocast + CUDA graph": lambda b: graphed(module.to(memory_format=torch.contiguous_format), b),
        "autocast + cudnn.benchmark + CUDA graph": lambda b: graphed(module, b),
        "torch.compile (max-autotune-no-cudagraphs)": lambda b: autocast(compiled),
    }
    compiled = None
    for name, make in variants.items():
        torch.backends.cudnn.benchmark = "benchmark" in name
        if name.startswith("torch.compile"):
            if os.environ.get("SKIP_COMPILE"):
                continue
            compiled = torch.compile(
                module.to(memory_format=torch.contiguous_format), mode="max-autotune-no-cudagraphs"
            )
        REPORT[name] = {}
        for b in BATCHES if compiled is None else BATCHES[-1:]:  # compiling is slow: the largest batch only
            try:
                t0 = time.perf_counter()
                fn = make(b)
                x = torch.randint(0, 256, (b, 100, 27, 48, 3), dtype=torch.uint8, device="cuda")
                seconds = timed(fn, x)
                REPORT[name][b] = b * 50 / seconds
                took = time.perf_counter() - t0
                log(f"{name:45s} batch {b:4d}: {REPORT[name][b]:>9,.0f} useful frames/s ({took:.0f} s)")
            except Exception as exc:  # noqa: BLE001 - a variant that fails is a row that says so
                REPORT[name][b] = f"failed: {exc!r}"[:300]
                log(f"{name} batch {b}: failed {exc!r}"[:300])
            save()
    # the outputs agree: the graph's and compile's against eager autocast, on one batch
    x = torch.randint(0, 256, (8, 100, 27, 48, 3), dtype=torch.uint8, device="cuda")
    ref = autocast(module)(x)[0].float()
    for name, fn in (("CUDA graph", graphed(module, 8)),) + (
        (("compile", autocast(compiled)),) if compiled is not None else ()
    ):
        got = fn(x)[0].float()
        REPORT[f"max |diff| {name}"] = float((got - ref).abs().max())
    log(json.dumps(REPORT))
    save()


def save() -> None:
    """$OUT/model_variants.json in bench/envelope.py's envelope (bench "gpu-model-variants")."""
    from envelope import write_result

    parameters = {"batches": BATCHES, "skip_compile": bool(os.environ.get("SKIP_COMPILE"))}
    write_result("gpu-model-variants", parameters, REPORT, out=OUT / "model_variants.json")


if __name__ == "__main__":
    main()
