"""TransNetV2 served by Triton on the GPU, against the module called directly, in one call (issue 19, part 3).

Parts (BENCH_PARTS, comma-separated; all by default), each written to $OUT/serving.json as soon as it is done:
- direct: the module itself, fp16 autocast, per window length (100: the reference's; 200: margins of 25, so
  150 useful frames a window): eager, channels-last (3D) weights, channels-last plus torch.compile; useful
  frames/s from the median of timed calls (CUDA events) on random frames;
- triton: pytriton's tritonserver (Python backend, bench/gpu/model.py) with several models at once, the
  same module in each: as served before (host tensors, one instance), channels-last, inputs left on the GPU,
  two instances; clients in separate processes sending fixed batches of windows for SERVING_SECONDS after all
  have started, through the request (gRPC) or through CUDA shared memory (`ShotModelClient(shared_memory=
  "cuda")`) from host arrays or from CUDA tensors. Useful frames/s over all clients.

Useful frames = window - 50 per window (the kept middle). Run on the device (see bench/gpu/nvdec.py for what a
call carries): `python bench/gpu/serving.py`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "gpu"), str(ROOT / "bench")]
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "results"))
SECONDS = float(os.environ.get("SERVING_SECONDS", "8"))
CALL_CAP = 100_000  # every client loop is bounded by a call count as well as by time
REPORT: dict = {}


def log(*args):
    print(*args, flush=True)


def save():
    """$OUT/serving.json in bench/envelope.py's envelope (bench "gpu-serving")."""
    from envelope import write_result

    keys = ("BENCH_PARTS", "SERVING_SECONDS", "SERVING_PLAN", "SKIP_COMPILE")
    parameters = {"seconds": SECONDS, "call_cap": CALL_CAP} | {
        k.lower(): os.environ[k] for k in keys if k in os.environ
    }
    write_result("gpu-serving", parameters, REPORT, out=OUT / "serving.json")


def useful(window: int) -> int:
    return window - 50


def part_direct() -> None:
    import torch
    from model_variants import autocast, timed

    from videoapi.model.export import exportable_module

    rows = REPORT.setdefault("direct", {})
    module = exportable_module("cuda").cuda().eval()

    plan = [("eager", 100, 256), ("channels_last", 100, 256), ("channels_last", 200, 128), ("eager", 200, 128)]
    if not os.environ.get("SKIP_COMPILE"):
        plan += [("channels_last+compile", 100, 256), ("channels_last+compile", 200, 128)]
    compiled = {}
    for name, window, batch in plan:
        t0 = time.perf_counter()
        try:
            m = module.to(memory_format=torch.channels_last_3d if "channels_last" in name else torch.contiguous_format)
            fn = autocast(m)
            if "compile" in name:
                compiled.setdefault(
                    window, torch.compile(m, mode=os.environ.get("COMPILE_MODE", "default"), dynamic=False)
                )
                fn = autocast(compiled[window])
            x = torch.randint(0, 256, (batch, window, 27, 48, 3), dtype=torch.uint8, device="cuda")
            rows[f"{name} T{window} b{batch}"] = value = batch * useful(window) / timed(fn, x)
            log(f"direct {name} window {window} batch {batch}: {value:,.0f} useful frames/s "
                f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a variant that fails is a row that says so
            rows[f"{name} T{window} b{batch}"] = f"failed: {exc!r}"[:300]
            log(f"direct {name} window {window}: failed {exc!r}"[:300])
        save()
    # window 200 against 100 on the frames both keep: how far the longer window moves the probabilities
    x = torch.randint(0, 256, (1, 250, 27, 48, 3), dtype=torch.uint8, device="cuda")
    with torch.no_grad():
        module.to(memory_format=torch.contiguous_format)
        short = torch.cat([module(x[:, s : s + 100])[0][0, 25:75] for s in (0, 50, 100)]).float()
        long = module(x[:, :200])[0][0, 25:175].float()
    rows["max |diff| window 200 vs 100, random frames"] = float((short - long).abs().max())
    save()


def _client(url, model, shm, batch, window, ready, go, queue):
    import numpy as np

    from videoapi.adapters.triton import ShotModelClient

    error = None
    calls = 0
    try:
        data = np.random.default_rng(os.getpid()).integers(0, 256, (batch, window, 27, 48, 3), dtype=np.uint8)
        if shm == "cuda-device":
            import torch

            data = torch.from_numpy(data).cuda()
        client = ShotModelClient(url, model=model, timeout_s=300, shared_memory="none" if shm == "none" else "cuda")
        client.predict(data)  # warm: the model, the connection and the shared-memory region
    except Exception as exc:  # noqa: BLE001 - reported, the others go on
        error = repr(exc)[:600]
    ready.put(1)
    go.wait()
    t0 = time.perf_counter()
    if error is None:
        try:
            while time.perf_counter() - t0 < SECONDS and calls < CALL_CAP:
                client.predict(data)
                calls += 1
        except Exception as exc:  # noqa: BLE001
            error = repr(exc)[:600]
        client.close()
    queue.put((calls * batch, time.perf_counter() - t0, error))


def run_point(url: str, model: str, shm: str, clients: int, batch: int, window: int) -> dict:
    ctx = mp.get_context("spawn")
    ready, queue, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_client, args=(url, model, shm, batch, window, ready, go, queue)) for _ in range(clients)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    go.set()
    results = [queue.get(timeout=SECONDS + 300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    wall = max(t for _, t, _ in results)
    windows = sum(n for n, _, _ in results)
    row = {"useful_frames_per_s": windows * useful(window) / wall, "windows": windows, "seconds": wall}
    errors = [e for *_, e in results if e]
    if errors:
        row["errors"] = errors[:2]
    return row


def triton_errors(log: str) -> list[str]:
    """Triton's error lines, each without the stub's Python traceback (paths of the machine it ran on)."""
    return [line.split("\\n\\nAt:")[0] for line in log.splitlines() if line.startswith("E")]


def part_triton() -> None:
    from run import make_model, start_triton

    rows = REPORT.setdefault("triton", {})
    models = {
        "as_before": {},
        "channels_last": {"channels_last": True},
        "channels_last_gpu_inputs": {"channels_last": True, "gpu_inputs": True},
        "channels_last_gpu_inputs_x2": {"channels_last": True, "gpu_inputs": True, "instances": 2},
    }
    # (label, model, shm, clients, windows a request, window length)
    plan = [
        ("as before: 4 clients x 64, request payload", "as_before", "none", 4, 64, 100),
        ("as before, 16 clients x 64", "as_before", "none", 16, 64, 100),
        ("channels-last, 16 x 64", "channels_last", "none", 16, 64, 100),
        ("channels-last, GPU inputs, 16 x 64, payload", "channels_last_gpu_inputs", "none", 16, 64, 100),
        ("channels-last, GPU inputs, 16 x 64, CUDA shm from host", "channels_last_gpu_inputs", "cuda", 16, 64, 100),
        ("channels-last, GPU inputs, 16 x 64, CUDA shm from GPU", "channels_last_gpu_inputs", "cuda-device", 16, 64,
         100),
        ("2 instances, 16 x 64, CUDA shm from GPU", "channels_last_gpu_inputs_x2", "cuda-device", 16, 64, 100),
        ("channels-last, GPU inputs, window 200, 16 x 32, CUDA shm from GPU", "channels_last_gpu_inputs",
         "cuda-device", 16, 32, 200),
        ("channels-last, GPU inputs, window 200, 16 x 32, payload", "channels_last_gpu_inputs", "none", 16, 32, 200),
        ("channels-last, GPU inputs, window 150, 16 x 48, CUDA shm from GPU", "channels_last_gpu_inputs",
         "cuda-device", 16, 48, 150),
        ("channels-last, GPU inputs, window 150, 16 x 48, payload", "channels_last_gpu_inputs", "none", 16, 48, 150),
    ]  # fmt: skip
    if os.environ.get("SERVING_PLAN"):  # indices into the plan, e.g. "0,5"
        plan = [plan[int(i)] for i in os.environ["SERVING_PLAN"].split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        for name, options in models.items():
            if any(m == name for _, m, *_ in plan):
                make_model(repo, name, "fp16", **options)
        server = start_triton(repo)
        try:
            for label, model, shm, clients, batch, window in plan:
                t0 = time.perf_counter()
                rows[label] = row = run_point(server.grpc_url, model, shm, clients, batch, window)
                took = time.perf_counter() - t0
                error = f" {row['errors'][0]}" if "errors" in row else ""
                log(f"triton {label}: {row['useful_frames_per_s']:,.0f} useful frames/s ({took:.0f} s){error}")
                save()
        finally:
            REPORT["triton_errors"] = triton_errors(server.log_tail(15))
            server.stop()


def main() -> None:
    import torch

    REPORT["info"] = {"gpu": torch.cuda.get_device_name(0), "cpus": os.cpu_count(), "torch": torch.__version__}
    for part in os.environ.get("BENCH_PARTS", "direct,triton").split(","):
        t0 = time.perf_counter()
        try:
            {"direct": part_direct, "triton": part_triton}[part]()
        except Exception as exc:  # noqa: BLE001 - the next part may still run
            from run import error_text

            REPORT.setdefault("errors", {})[part] = error_text(2000)
            log(f"part {part} failed: {exc!r}")
        log(f"part {part}: {time.perf_counter() - t0:.0f} s")
        save()


if __name__ == "__main__":
    main()
