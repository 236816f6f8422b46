"""GPU node benchmark (run on the device machine): TransNetV2 throughput direct and through Triton, fp32 and
fp16, at batch sizes 1..256; OpenCV decode throughput with N parallel streams; end to end with N workers
decoding and one Triton on the GPU. Prints tables, writes JSON to $OUT (or bench/results/) in bench/envelope.py's
envelope (bench "gpu-run").
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "results"))
USEFUL = 50
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
TRITON_BATCHES = [1, 4, 16, 64, 128, 256]


def log(*args):
    print(*args, flush=True)


def error_text(limit: int) -> str:
    """The last `limit` characters of the traceback being handled, each file named from the repository, its
    site folder or the standard library as the import found it: no machine's folders in a result file."""
    import sysconfig
    import traceback

    text = traceback.format_exc()
    folders = {str(ROOT), sysconfig.get_paths()["stdlib"], *(entry for entry in sys.path if entry)}
    for folder in sorted(folders, key=len, reverse=True):
        text = text.replace(folder.rstrip("/") + "/", "")
    return text[-limit:]


def bench_direct(seconds: float) -> dict:
    import torch

    from videoapi.model.export import exportable_module

    module = exportable_module("cuda").cuda().eval()
    rows = {}
    for precision in ("fp32", "fp16"):
        rows[precision] = {}
        for b in BATCHES:
            x = torch.randint(0, 256, (b, 100, 27, 48, 3), dtype=torch.uint8, device="cuda")
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=precision == "fp16"):
                for _ in range(3):
                    module(x)
                torch.cuda.synchronize()
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    module(x)
                    n += b
                torch.cuda.synchronize()
            rows[precision][b] = n * USEFUL / (time.perf_counter() - t0)
            log(f"direct {precision} batch {b}: {rows[precision][b]:,.0f} useful frames/s")
    return rows


def make_model(
    root: Path,
    name: str,
    precision: str = "fp16",
    *,
    channels_last: bool = False,
    gpu_inputs: bool = False,
    instances: int = 1,
    max_batch: int = 256,
    queue_delay_us: int = 2000,
) -> Path:
    """One Python-backend model of bench/gpu/model.py in `root`; the options are its config's parameters."""
    model = root / name
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text((ROOT / "bench" / "gpu" / "model.py").read_text())
    # KIND_CPU keeps Triton's own copies in host memory; KIND_GPU with inputs left on the GPU lets a CUDA
    # shared-memory input reach the module without a copy
    kind = "KIND_GPU" if gpu_inputs else "KIND_CPU"
    (model / "config.pbtxt").write_text(f"""
name: "{name}"
backend: "python"
max_batch_size: {max_batch}
input {{ name: "frames" data_type: TYPE_UINT8 dims: [-1, 27, 48, 3] }}
output {{ name: "single_frame" data_type: TYPE_FP32 dims: [-1, 1] }}
output {{ name: "many_hot" data_type: TYPE_FP32 dims: [-1, 1] }}
instance_group {{ count: {instances} kind: {kind} }}
dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}
parameters {{ key: "precision" value {{ string_value: "{precision}" }} }}
parameters {{ key: "channels_last" value {{ string_value: "{"yes" if channels_last else "no"}" }} }}
parameters {{ key: "FORCE_CPU_ONLY_INPUT_TENSORS" value {{ string_value: "{"no" if gpu_inputs else "yes"}" }} }}
parameters {{ key: "python_path" value {{ string_value: "{os.environ.get("PYTHONPATH", "")}:{ROOT}" }} }}
parameters {{ key: "single_frame_output" value {{ string_value: "single_frame" }} }}
parameters {{ key: "many_hot_output" value {{ string_value: "many_hot" }} }}
parameters {{ key: "outputs" value {{ string_value: "probabilities" }} }}
""")
    return model


def start_triton(repo: Path):
    """tritonserver over `repo`, started; its backend stub embeds the Python of TRITON_PYTHON when set (the device's
    own python has numpy 2, and pytriton's stub needs numpy<2 there)."""
    from local.triton_server import TritonServer

    server = TritonServer(repo, startup_timeout_s=300)
    executable, sys.executable = sys.executable, os.environ.get("TRITON_PYTHON") or sys.executable
    try:
        server.start()
    finally:
        sys.executable = executable
    return server


def make_repository(root: Path, precisions=("fp32", "fp16")) -> Path:
    for precision in precisions:
        make_model(root, f"transnetv2_{precision}", precision)
    return root


def _client_loop(url, model, b, seconds, queue):
    from videoapi.adapters.triton import ShotModelClient

    x = np.random.default_rng(0).integers(0, 256, (b, 100, 27, 48, 3), dtype=np.uint8)
    with ShotModelClient(url, model=model, timeout_s=120) as c:
        c.predict(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            c.predict(x)
            n += b
    queue.put((n, time.perf_counter() - t0))


def bench_triton(url: str, seconds: float, precision: str, clients: int = 4) -> dict:
    rows = {}
    ctx = mp.get_context("spawn")
    if True:
        rows[precision] = {}
        for b in TRITON_BATCHES:
            queue = ctx.Queue()
            procs = [
                ctx.Process(target=_client_loop, args=(url, f"transnetv2_{precision}", b, seconds, queue))
                for _ in range(clients)
            ]
            for p in procs:
                p.start()
            results = [queue.get(timeout=120) for _ in procs]
            for p in procs:
                p.join()
            rows[precision][b] = sum(n for n, _ in results) * USEFUL / max(t for _, t in results)
            log(f"triton {precision} batch {b} x{clients} clients: {rows[precision][b]:,.0f} useful frames/s")
    return rows


def _decode(path, queue):
    import cv2

    from videoapi.pipeline.decode import iter_model_frames

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    n = sum(1 for _ in iter_model_frames(Path(path)))
    queue.put((n, time.perf_counter() - t0))


def in_parallel_streams(label: str, target, args: tuple, streams_list) -> dict:
    """Run `target(*args, queue)` in N spawned processes at once for each N; frames/s over all and per stream."""
    ctx = mp.get_context("spawn")
    rows = {}
    for streams in streams_list:
        queue = ctx.Queue()
        t0 = time.perf_counter()
        procs = [ctx.Process(target=target, args=(*args, queue)) for _ in range(streams)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=300) for _ in procs]
        for p in procs:
            p.join()
        wall = time.perf_counter() - t0
        rows[streams] = {
            "frames_per_s": sum(n for n, _ in results) / wall,
            "per_stream": float(np.mean([n / t for n, t in results])),
        }
        log(
            f"{label} {streams} streams: {rows[streams]['frames_per_s']:,.0f} frames/s total, "
            f"{rows[streams]['per_stream']:,.0f} per stream"
        )
    return rows


def bench_decode(path: Path, streams_list=(1, 2, 4, 8, 16)) -> dict:
    return in_parallel_streams("decode", _decode, (str(path),), streams_list)


def _decode_pyav(path, skip_loop_filter, queue, keyframe_tiles=False):
    from videoapi.pipeline.decode import iter_model_frames_pyav
    from videoapi.pipeline.preview import KeyframeCandidates

    tiles = KeyframeCandidates.for_video(1920, 1080, 10**5) if keyframe_tiles else None
    t0 = time.perf_counter()
    n = sum(1 for _ in iter_model_frames_pyav(Path(path), skip_loop_filter=skip_loop_filter, threads=1, tiles=tiles))
    queue.put((n, time.perf_counter() - t0))


def _decode_pyav_tiles(path, queue):
    _decode_pyav(path, True, queue, keyframe_tiles=True)


def bench_decoders(path: Path, streams_list=(1, 16)) -> dict:
    """OpenCV (BGR at full size, then INTER_AREA) against PyAV scaling from YUV, with and without deblocking."""
    return {
        "opencv": in_parallel_streams("opencv", _decode, (str(path),), streams_list),
        "pyav": in_parallel_streams("pyav", _decode_pyav, (str(path), False), streams_list),
        "pyav_no_deblock": in_parallel_streams("pyav-no-deblock", _decode_pyav, (str(path), True), streams_list),
        # what a worker decodes: also the keyframe candidates' tiles (every 4th frame, 160x90 JPEG)
        "pyav_no_deblock_tiles": in_parallel_streams(
            "pyav-no-deblock+tiles", _decode_pyav_tiles, (str(path),), streams_list
        ),
    }


def _worker(path, url, model, decoder, queue):
    import cv2

    from videoapi.adapters.triton import ShotModelClient
    from videoapi.pipeline.decode import iter_model_frames, iter_model_frames_pyav
    from videoapi.pipeline.inference import predict_frames

    cv2.setNumThreads(1)
    if decoder == "pyav":
        frames = iter_model_frames_pyav(Path(path), skip_loop_filter=True, threads=1)
    else:
        frames = iter_model_frames(Path(path))
    with ShotModelClient(url, model=model, timeout_s=300) as c:
        t0 = time.perf_counter()
        result = predict_frames(frames, c, batch_windows=16, in_flight=3)
    queue.put((result.frame_count, time.perf_counter() - t0))


def bench_end_to_end(path: Path, url: str, streams_list=(1, 4, 8, 16), decoder: str = "opencv") -> dict:
    args = (str(path), url, "transnetv2_fp16", decoder)
    return in_parallel_streams(f"end-to-end ({decoder})", _worker, args, streams_list)


def main() -> None:
    import torch

    from local.triton_server import TritonServer

    seconds = float(os.environ.get("BENCH_SECONDS", "3"))
    clip = Path(sys.argv[1])
    report = {"gpu": torch.cuda.get_device_name(0), "cpus": os.cpu_count(), "clip": clip.name}
    log(report)
    parts = os.environ.get("BENCH_PARTS", "direct,decode,triton").split(",")
    if "direct" in parts:
        report["direct"] = bench_direct(seconds)
    if "decode" in parts:
        report["decode"] = bench_decode(clip)
    if "decoders" in parts:
        report["decoders"] = bench_decoders(clip)
    if "e2e_pyav" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            repo = make_repository(Path(tmp) / "repo", ["fp16"])
            with TritonServer(repo, startup_timeout_s=300) as server:
                report["end_to_end_pyav"] = bench_end_to_end(clip, server.grpc_url, (1, 8, 16, 32), "pyav")
    if "triton" in parts:
        report["triton"] = {}
        # one server per precision: PyTorch's caching allocator in one model instance would starve the other
        for precision in ("fp32", "fp16"):
            with tempfile.TemporaryDirectory() as tmp:
                repo = make_repository(Path(tmp) / "repo", [precision])
                with TritonServer(repo, startup_timeout_s=300) as server:
                    report["triton"].update(bench_triton(server.grpc_url, seconds, precision))
                    if precision == "fp16":
                        report["end_to_end"] = bench_end_to_end(clip, server.grpc_url)
    from envelope import write_result

    parameters = {"parts": parts, "seconds": seconds, "clip": clip.name}
    write_result("gpu-run", parameters, report, out=OUT / f"gpu-{'-'.join(parts)}.json")
    log(json.dumps(report))


if __name__ == "__main__":
    main()
