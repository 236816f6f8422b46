"""A batch through the local stack: items/s and frames/s against the same clips as single jobs and PySceneDetect.

Generates N clips of 3 to 10 s (320x180, 25 fps, a cut every 1 to 3 s), starts `videoapi local up`'s stack on
free ports, uploads them, then times (1) one batch of the N, sampling the memory (RSS) of the API and of the
workers every second, (2) the N as single jobs submitted at once by one client and polled, (3) the submission
of a 100,000-row manifest (its 202; the rows are items that the feeder makes only as the quota frees),
(4) PySceneDetect's CLI (`scenedetect -i X detect-content list-scenes`) in a loop, one process per file.
The service's own work per item: the first `--serial-clips` clips as one batch through a stack of one worker
running one item at a time; from the items' records, the time from one item's end to the next one's less the
next one's decode and inference (both through Triton, as the worker timed them): Celery, Redis, the fetch from
S3, probing, post-processing, the result writes and the batch's bookkeeping. The same files through the
engine in this process are timed beside it, and the worker's processes' CPU seconds over the batch (decode
included) beside the wall figures. `--own-work-only --baseline DIR` measures the same clips through a stack run
from another checkout (a git worktree of an older commit), alternately with this one, `--rounds` times each.
Run: `python -m bench batch [--clips 1000]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from envelope import checkout_commit, write_result  # noqa: E402

from functions.deps import Services  # noqa: E402
from local.stack import LocalStack, StackPorts  # noqa: E402
from local.synthetic import write_video  # noqa: E402
from videoapi.client import VideoApiClient  # noqa: E402
from videoapi.domain.batches import BATCH_FIELD  # noqa: E402
from videoapi.domain.jobs import JobStore  # noqa: E402
from videoapi.pipeline.detection import STAGES_FIELD  # noqa: E402
from videoapi.pipeline.engine import Detector  # noqa: E402
from videoapi.settings import Settings  # noqa: E402


def make_clips(folder: Path, count: int, seed: int = 7) -> list[tuple[Path, int]]:
    rng = random.Random(seed)
    clips = []
    for index in range(count):
        seconds = rng.uniform(3, 10)
        shots, left = [], int(seconds * 25)
        while left > 0:
            shots.append(min(left, rng.randint(25, 75)))
            left -= shots[-1]
        path = folder / f"clip{index:04d}.mp4"
        write_video(path, shots, fps=25, seed=index)
        clips.append((path, sum(shots)))
    return clips


class MemorySampler:
    """RSS of the API process and of every Celery process of this stack, once a second, in a thread."""

    def __init__(self, stack: LocalStack):
        self.stack, self.samples = stack, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> tuple[float, float]:
        api = psutil.Process(self.stack.api_pid).memory_info().rss if self.stack.api_pid else 0
        workers = 0
        for child in psutil.Process().children(recursive=True):
            try:
                if "celery" in " ".join(child.cmdline()):
                    workers += child.memory_info().rss
            except psutil.Error:
                continue
        return api / 2**20, workers / 2**20

    def _run(self) -> None:
        start = time.perf_counter()
        while not self._stop.wait(1.0):
            self.samples.append((time.perf_counter() - start, *self._rss()))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        """Mean RSS (MiB) over the first and the last quarter of the samples, and the peak, for each."""
        quarter = max(1, len(self.samples) // 4)
        first, last = self.samples[:quarter], self.samples[-quarter:]
        figures: dict[str, float] = {"samples": len(self.samples)}
        for column, name in ((1, "api"), (2, "workers")):
            figures[f"{name}_first_quarter_mib"] = round(sum(s[column] for s in first) / len(first), 1)
            figures[f"{name}_last_quarter_mib"] = round(sum(s[column] for s in last) / len(last), 1)
            figures[f"{name}_peak_mib"] = round(max(s[column] for s in self.samples), 1)
        return figures


def celery_cpu_s() -> float:
    """User and system CPU seconds of this process's Celery descendants (the workers and their pool processes)."""
    seconds = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "celery" in " ".join(child.cmdline()):
                times = child.cpu_times()
                seconds += times.user + times.system
        except psutil.Error:
            continue
    return seconds


def time_batch(client: VideoApiClient, keys: list[str], stack: LocalStack | None = None) -> dict[str, Any]:
    sampler = MemorySampler(stack) if stack is not None else None
    start = time.perf_counter()
    with sampler or contextlib.nullcontext():
        batch = client.submit_batch([{"source": key, "id": key} for key in keys])
        batch = client.wait_batch(batch["id"], poll_s=0.5)
    wall = time.perf_counter() - start
    assert batch["counts"]["succeeded"] == len(keys), batch
    figures: dict[str, Any] = {"wall_s": round(wall, 2), "frames": batch["frames_done"]}
    if sampler is not None and sampler.samples:
        figures["memory"] = sampler.summary()
    return figures


def time_engine(paths: list[Path]) -> dict[str, float]:
    """The same files through the engine in this process, one at a time, the model loaded once (not timed)."""
    detector = Detector(Settings())
    list(detector.detect_many(paths[:1]))  # warm: the model's first call
    start = time.perf_counter()
    results = list(detector.detect_many(paths))
    wall = time.perf_counter() - start
    assert not any(isinstance(result, Exception) for _, result in results)
    return {"wall_s": round(wall, 2), "per_item_ms": round(1000 * wall / len(paths), 1)}


def cpu_1080p(folder: Path) -> dict[str, Any]:
    """The GPU benches' 1080p clip (bench/gpu/make_inputs.py) through the engine on this CPU: for the cost page."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "gpu"))
    from make_inputs import write_1080p

    path = folder / "clip1080.mp4"
    write_1080p(path, 6)
    detector = Detector(Settings())
    list(detector.detect_many([path]))  # warm
    start = time.perf_counter()
    ((_, result),) = list(detector.detect_many([path]))
    wall = time.perf_counter() - start
    frames = result.document["video"]["frame_count"]
    fps = float(result.document["video"]["fps"])
    return {"frames": frames, "fps": fps, "wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 1)}


def service_work_per_item(clips: list[tuple[Path, int]], with_engine: bool = True) -> dict[str, Any]:
    """One worker running one item at a time, its items' own records: the time between one item's end and the
    next one's, less the next one's decode and inference (its `stage_s`), is what the service spent on it
    (Celery, Redis, the fetch from S3, probing, post-processing, the result writes, the batch's bookkeeping);
    beside it the same files through the engine in process."""
    paths = [path for path, _ in clips]
    # a folder of its own: the stack's Redis keeps its AOF in the log folder (one per process by default), and a
    # second measurement in this process would read the first one's items back as its own
    logs = Path(tempfile.mkdtemp(prefix="videoapi-own-work-"))
    stack = LocalStack(Settings(), StackPorts(api=0), workers=1, worker_concurrency=1, write_state=False, log_dir=logs)
    stack.on_status = lambda line: None
    with stack.start():
        with VideoApiClient(stack.api_url, stack.api_key) as client:
            keys = [client.upload(path) for path in paths]
            client.wait(client.submit(keys[0])["id"])  # warm
            cpu_before = celery_cpu_s()
            serial = time_batch(client, keys)
            serial["worker_cpu_per_item_ms"] = round(1000 * (celery_cpu_s() - cpu_before) / len(paths), 1)
        store = JobStore.from_url(stack.settings.redis_url)
        client_id = Services.from_settings(stack.settings).keys.client_for(stack.api_key) or ""
        items = [job for job in store.list_for(client_id, len(paths) + 10) if job.extra.get(BATCH_FIELD)]
    items.sort(key=lambda job: job.finished_at or 0.0)
    stages = [json.loads(job.extra[STAGES_FIELD]) for job in items]
    own = [
        (job.finished_at or 0.0) - (before.finished_at or 0.0) - stage["predict"]
        for before, job, stage in zip(items, items[1:], stages[1:])
    ]
    parts = {name: sum(stage[name] for stage in stages[1:]) / len(own) for name in ("fetch", "probe", "publish")}
    own_ms = 1000 * sum(own) / len(own)
    breakdown = {f"{name}_ms": round(1000 * value, 1) for name, value in parts.items()}
    breakdown["celery_redis_and_batch_ms"] = round(own_ms - sum(breakdown.values()), 1)
    engine = time_engine(paths) if with_engine else None
    serial["per_item_ms"] = round(1000 * serial["wall_s"] / len(paths), 1)
    return {
        "items": len(own),
        "own_work_per_item_ms": round(own_ms, 1),
        "own_work_breakdown": breakdown,
        "predict_per_item_ms": round(1000 * sum(stage["predict"] for stage in stages[1:]) / len(own), 1),
        "service_serial": serial,
        "engine_in_process": engine,
    }


# Run in another checkout by `baseline_work_per_item`: that checkout's own bench/batch.py, stack and workers
_BASELINE_RUN = """
import json, sys
from pathlib import Path
sys.path[:0] = [".", "bench"]
import batch
count, scratch, out = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
scratch.mkdir(parents=True, exist_ok=True)
batch.time_engine = lambda paths: None  # the engine's figure is this checkout's alone
if not hasattr(batch, "celery_cpu_s"):  # an older bench: its workers' CPU taken around its timed batch
    import psutil
    def celery_cpu_s():
        found = [p for p in psutil.Process().children(recursive=True) if "celery" in " ".join(p.cmdline())]
        return sum(p.cpu_times().user + p.cpu_times().system for p in found)
    timed = batch.time_batch
    def time_batch(client, keys, stack=None):
        before = celery_cpu_s()
        figures = timed(client, keys, stack)
        figures["worker_cpu_per_item_ms"] = round(1000 * (celery_cpu_s() - before) / len(keys), 1)
        return figures
    batch.time_batch = time_batch
out.write_text(json.dumps(batch.service_work_per_item(batch.make_clips(scratch, count))))
"""


def baseline_work_per_item(checkout: Path, count: int, scratch: Path) -> dict[str, Any]:
    """The service's own work per item through a stack run from `checkout` (its code, workers and bench), the
    same clips (make_clips' seed); its model repository is this checkout's (the built model is not in git)."""
    out = scratch / "baseline.json"
    env = {**os.environ, "VIDEOAPI_MODEL_REPOSITORY": str(Settings().model_repository)}
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "-c", _BASELINE_RUN, str(count), str(scratch), str(out)]
    subprocess.run(command, cwd=checkout, env=env, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def own_work_side_by_side(count: int, baseline: Path, rounds: int) -> dict[str, Any]:
    """This checkout's and the baseline's own work per item, alternately (baseline first), `rounds` times each."""
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this": []}
    with tempfile.TemporaryDirectory() as scratch:
        clips = make_clips(Path(scratch), count)
        for round_ in range(rounds):
            runs["baseline"].append(baseline_work_per_item(baseline, count, Path(scratch) / f"b{round_}"))
            runs["this"].append(service_work_per_item(clips, with_engine=round_ == rounds - 1))

    def best(found: list[dict[str, Any]]) -> dict[str, Any]:  # the run least disturbed by the machine's load
        return min(found, key=lambda run: run["own_work_per_item_ms"])

    this, old = best(runs["this"]), best(runs["baseline"])
    figures = {**this, "engine_in_process": runs["this"][-1]["engine_in_process"]}
    figures |= {"rounds": runs, "baseline_commit": checkout_commit(baseline)}
    figures["baseline_own_work_per_item_ms"] = old["own_work_per_item_ms"]
    figures["baseline_own_work_breakdown"] = old["own_work_breakdown"]
    figures["own_work_ratio"] = round(old["own_work_per_item_ms"] / this["own_work_per_item_ms"], 2)
    return figures


def time_singles(client: VideoApiClient, keys: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    ids = [client.submit(key, priority="batch")["id"] for key in keys]
    frames = 0
    for job_id in ids:
        job = client.wait(job_id, poll_s=0.2)
        assert job["status"] == "succeeded", job
        frames += job["frames_total"]
    return {"wall_s": round(time.perf_counter() - start, 2), "frames": frames}


def time_scenedetect(paths: list[Path]) -> dict[str, float] | None:
    exe = shutil.which("scenedetect") or str(Path(sys.executable).with_name("scenedetect"))
    if not Path(exe).exists():
        return None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        for path in paths:
            command = [exe, "-q", "-i", str(path), "-o", out, "detect-content", "list-scenes", "-q"]
            subprocess.run(command, check=True, capture_output=True)
    return {"wall_s": round(time.perf_counter() - start, 2)}


def time_manifest_submit(client: VideoApiClient, folder: Path, rows: int, key: str) -> dict[str, float]:
    manifest = folder / "manifest.jsonl"
    with manifest.open("w") as file:
        for row in range(rows):
            file.write(json.dumps({"source": key, "id": f"row{row}"}) + "\n")
    manifest_key = client.upload(manifest, content_type="application/x-ndjson")
    start = time.perf_counter()
    batch = client.submit_batch({"manifest": manifest_key})
    submit_s = time.perf_counter() - start
    client.cancel_batch(batch["id"])
    return {"rows": batch["items"], "submit_s": round(submit_s, 3), "manifest_bytes": manifest.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--serial-clips", type=int, default=50, help="clips for the service's own work per item")
    parser.add_argument("--manifest-rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--own-work-only", action="store_true", help="only the service's own work per item")
    parser.add_argument("--manifest-only", action="store_true", help="only the manifest's submission, 3 times")
    parser.add_argument("--baseline", type=Path, default=None, help="with --own-work-only: another checkout beside")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: runs of each, alternately")
    args = parser.parse_args()
    if args.manifest_only:  # the API and storage alone (no model): bench batch_manifest
        stack = LocalStack(Settings(), StackPorts(api=0), write_state=False, with_inference=False)
        stack.on_status = lambda line: None
        with stack.start(), VideoApiClient(stack.api_url, stack.api_key) as client:
            with tempfile.TemporaryDirectory() as scratch:
                (Path(scratch) / "v.mp4").write_bytes(b"a source the rows name; never run")
                key = client.upload(Path(scratch) / "v.mp4")
                tries = [time_manifest_submit(client, Path(scratch), args.manifest_rows, key) for _ in range(3)]
        print(json.dumps(tries, indent=1))
        write_result("batch_manifest", {"manifest_rows": args.manifest_rows}, {"tries": tries}, out=args.out)
        return
    if args.own_work_only:  # a result of its own (bench batch_own_work), for the batch section beside the batch's
        parameters: dict[str, Any] = {"serial_clips": args.serial_clips, "size": "320x180"}
        if args.baseline is not None:
            own_work = own_work_side_by_side(args.serial_clips, args.baseline.resolve(), args.rounds)
            parameters |= {"baseline": own_work["baseline_commit"], "rounds": args.rounds}
        else:
            with tempfile.TemporaryDirectory() as scratch:
                own_work = service_work_per_item(make_clips(Path(scratch), args.serial_clips))
        parameters["load_average"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(own_work, indent=1))
        write_result("batch_own_work", parameters, own_work, out=args.out)
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        clips = make_clips(folder, args.clips)
        frames = sum(n for _, n in clips)
        stack = LocalStack(Settings(), StackPorts(api=0), write_state=False, on_status=lambda line: None).start()
        try:
            with VideoApiClient(stack.api_url, stack.api_key) as client:
                keys = [client.upload(path) for path, _ in clips]
                client.wait(client.submit(keys[0])["id"])  # warm: Triton's first request, the workers' clients
                batch = time_batch(client, keys, stack)
                singles = time_singles(client, keys)
                manifest = time_manifest_submit(client, folder, args.manifest_rows, keys[0])
        finally:
            stack.stop()
        own_work = service_work_per_item(clips[: args.serial_clips])
        hd = cpu_1080p(folder)
        scenedetect = time_scenedetect([path for path, _ in clips])

    def rates(wall_s: float) -> dict[str, float]:
        return {"items_per_s": round(len(clips) / wall_s, 3), "frames_per_s": round(frames / wall_s, 1)}

    figures = {
        "clips": len(clips),
        "frames": frames,
        "batch": {**batch, **rates(batch["wall_s"])},
        "single_jobs": {**singles, **rates(singles["wall_s"])},
        "scenedetect_cli_loop": {**scenedetect, **rates(scenedetect["wall_s"])} if scenedetect else None,
        "manifest_submit": manifest,
        "service_work_per_item": own_work,
        "cpu_1080p": hd,
    }
    print(json.dumps(figures, indent=1))
    parameters = {
        "clips": len(clips),
        "clip_seconds": "3-10",
        "size": "320x180",
        "manifest_rows": args.manifest_rows,
        "serial_clips": args.serial_clips,
        "stack": "workers=1 x concurrency=2 (videoapi local up's default)",
    }
    write_result("batch", parameters, figures, out=args.out)


if __name__ == "__main__":
    main()
