"""The service itself on a GPU node (issue 39), against the GPU harness and NVDEC's decode-only limit, in one call.

One Triton on the GPU (bench/gpu/model.py, fp16, channels-last, inputs left on the GPU) serves every part:
- decode: NVDEC decode-only limit (bench/gpu/nvdec.py's streams, frames left in the decoder; DECODE_PLAN);
- harness: the GPU benches' own end to end (nvdec.py's streams through Triton; E2E_PLAN);
- service: the product. `LocalStack` (the API under uvicorn, Redis, moto's S3, Celery workers with
  VIDEOAPI_DECODER=nvdec) pointed at that Triton; SERVICE_JOBS copies of the 1080p clip uploaded to S3 through
  presigned PUTs (not timed), then submitted through `POST /v1/jobs` at once; frames/s from the first submission to
  the last job finished, and in steady state (the jobs that finished between the 10th and the 90th percentile of
  finish times). Per job: queue wait, run time, and the run time against a harness stream's time for the same
  frames (what the service path adds per job). SERVICE_PLAN: `w<workers>c<concurrency>[n<NVDEC slots>],...`; with
  n (issue 39 part 2) the pool's tasks past the slots decode on the CPU (VIDEOAPI_NVDEC_STREAMS), with q only
  while at least that many jobs are queued (VIDEOAPI_CPU_DECODE_MIN_BACKLOG: as the queue drains, NVDEC takes all);
- scaling (issue 40; BENCH_PARTS=...,scaling, last): the service on 1, 2, 4 and 8 of the node's GPUs (SERVICE_GPUS;
  the counts past the node's are listed as not run), a Triton and a stack narrowed to each count's GPUs, SCALING_PLAN
  workers per GPU: frames/s and the ratio to linear scaling from one GPU.

SERVICE_DRY=1 SERVICE_DECODER=pyav SERVICE_SHM=none runs the service part alone on a CPU (the stack's own
Triton), to try it here. Run on the device: `python bench/gpu/service.py DIR` (DIR from bench/gpu/make_inputs.py) after
bench/gpu/device_env.sh, with the service's Python packages on PYTHONPATH (bench/gpu/bundle_service.sh).
$OUT/service.json is in bench/envelope.py's envelope (bench "gpu-service").
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "bench" / "gpu")]
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "results"))
WINDOW = int(os.environ.setdefault("E2E_WINDOW", "150"))  # nvdec.py's streams read it at import, in every process
MODEL = "transnetv2_fp16"
JOBS = int(os.environ.get("SERVICE_JOBS", "200"))
JOB_TIMEOUT_S = float(os.environ.get("SERVICE_TIMEOUT_S", "240"))  # the whole burst, bounded
REPORT: dict = {}


def log(*args):
    print(*args, flush=True)


def save():
    from envelope import write_result

    keys = ("BENCH_PARTS", "BENCH_SECONDS", "E2E_SECONDS", "DECODE_PLAN", "E2E_PLAN", "SERVICE_PLAN", "SERVICE_JOBS")
    keys += ("SERVICE_GPUS", "SCALING_PLAN", "SCALING_JOBS_PER_GPU")
    parameters = {"window": WINDOW, "jobs": JOBS} | {k.lower(): os.environ[k] for k in keys if k in os.environ}
    write_result("gpu-service", parameters, REPORT, out=OUT / "service.json")


Plan = tuple[int, int, int, int | None, int, bool, int]


def parse_service_plan(text: str) -> list[Plan]:
    """'w6c4,w8c4n24t1p19q32b' to [(6, 4, 0, None, 0, False, 0), (8, 4, 24, 1, 19, True, 32)]: worker processes,
    tasks per worker, NVDEC slots (n: decoder auto with VIDEOAPI_NVDEC_STREAMS, the pool's other tasks decoding on
    the CPU; none: every task on NVDEC), the CPU decoder's threads a task (t: VIDEOAPI_DECODER_THREADS; none:
    SERVICE_DECODER_THREADS), the nice value added to the CPU decodes (p: VIDEOAPI_CPU_DECODE_NICE; none: 0), the
    queued jobs under which a task past the slots waits for one instead of the CPU (q:
    VIDEOAPI_CPU_DECODE_MIN_BACKLOG; none: 0, never waits) and whether waits on the GPU sleep instead of spinning
    (a trailing b: VIDEOAPI_CUDA_BLOCKING_SYNC)."""
    plan = []
    for item in text.split(","):
        item = item.strip()
        blocking = item.endswith("b")
        item, _, backlog = item.removesuffix("b").partition("q")
        workers, rest = item.lstrip("w").split("c")
        rest, _, nice = rest.partition("p")
        rest, _, threads = rest.partition("t")
        concurrency, _, slots = rest.partition("n")
        plan.append(
            (
                int(workers),
                int(concurrency),
                int(slots or 0),
                int(threads) if threads else None,
                int(nice or 0),
                blocking,
                int(backlog or 0),
            )
        )
    return plan


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_group(cmdline: list[str], pid: int) -> str:
    """Which part of the node a process is, from its command line (for the CPU sampler)."""
    text = " ".join(cmdline)
    if pid == os.getpid():
        return "bench"
    for group, marks in (
        ("triton_stub", ("triton_python_backend_stub",)),
        ("triton", ("tritonserver",)),
        ("workers", ("celery",)),
        ("api", ("uvicorn", "videoapi.api", "gunicorn")),
        ("s3", ("moto",)),
        ("redis", ("redis",)),
    ):
        if any(mark in text for mark in marks):
            return group
    return "other"


class CpuSampler(threading.Thread):
    """Samples every process's CPU time each `interval_s` while a burst runs: cores used by each part of the node
    (Triton, the workers, the API, S3, Redis, the bench), the node's busy share, and the threads each part runs."""

    def __init__(self, interval_s: float = 1.0):
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.stop_event = threading.Event()
        self.samples: list[dict] = []

    def run(self) -> None:
        import psutil

        last: dict[int, float] = {}
        groups: dict[int, str] = {}
        psutil.cpu_percent(None)
        t_last = time.monotonic()
        while not self.stop_event.wait(self.interval_s):
            now = time.monotonic()
            used: dict[str, float] = {}
            threads: dict[str, int] = {}
            for proc in psutil.process_iter(["pid", "cmdline", "cpu_times", "num_threads"]):
                info = proc.info
                times = info.get("cpu_times")
                if times is None:
                    continue
                pid = info["pid"]
                if pid not in groups:
                    groups[pid] = process_group(info.get("cmdline") or [], pid)
                group = groups[pid]
                total = times.user + times.system
                if pid in last:
                    used[group] = used.get(group, 0.0) + (total - last[pid]) / (now - t_last)
                last[pid] = total
                threads[group] = threads.get(group, 0) + (info.get("num_threads") or 0)
            busy = psutil.cpu_percent(None)
            self.samples.append(
                {"t": time.time(), "busy_pct": busy, "cores": {k: round(v, 2) for k, v in used.items()}}
                | {"threads": threads}
            )
            t_last = now

    def summary(self, t0: float, t1: float) -> dict:
        """Means over the samples between t0 and t1 (epoch seconds): cores by part, the node's busy share, and the
        share of samples with the node at least 95 % busy."""
        inside = [s for s in self.samples if t0 <= s["t"] <= t1]
        if not inside:
            return {}
        cores: dict[str, float] = {}
        for sample in inside:
            for group, value in sample["cores"].items():
                cores[group] = cores.get(group, 0.0) + value / len(inside)
        return {
            "samples": len(inside),
            "busy_pct_mean": sum(s["busy_pct"] for s in inside) / len(inside),
            "saturated_share": sum(s["busy_pct"] >= 95 for s in inside) / len(inside),
            "cores_mean": {k: round(v, 2) for k, v in sorted(cores.items(), key=lambda kv: -kv[1])},
            "threads_max": {k: max(s["threads"].get(k, 0) for s in inside) for k in inside[-1]["threads"]},
        }

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


def worker_pids() -> list[int]:
    """The node's Celery processes (worker main processes and their pool children)."""
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"]) if "celery" in " ".join(p.info.get("cmdline") or [])]


def thread_times(pids: list[int]) -> dict[tuple[int, int], tuple[str, float]]:
    """Every thread of `pids`: (pid, tid) to (name, CPU seconds); a process's own first thread is named main."""
    ticks = os.sysconf("SC_CLK_TCK")
    times = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            name = "main" if int(tid) == pid else stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            times[(pid, int(tid))] = (name, (int(fields[11]) + int(fields[12])) / ticks)  # utime + stime
    return times


def profile_workers(seconds: float, label: str) -> dict:
    """Where the workers' CPU goes over `seconds` of a burst: cores by thread name (summed over every worker
    process; a digit run in a name counts as one name) and, where py-spy is on PATH, one worker's Python stacks
    (--subprocesses, nonblocking: no pauses) as collapsed stacks in $OUT/pyspy-<label>.txt."""
    import re
    import shutil
    import subprocess

    pids = worker_pids()
    spy = None
    import psutil

    parents = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).ppid() not in pids]
    if shutil.which("py-spy") and parents:
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(parents[0]), "--subprocesses", "--nonblocking", "--threads"]
            + ["--duration", str(int(seconds)), "--rate", "67", "--format", "raw"]
            + ["--output", str(OUT / f"pyspy-{label}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    t0, before = time.monotonic(), thread_times(pids)
    time.sleep(seconds)
    elapsed, after = time.monotonic() - t0, thread_times(pids)
    cores: dict[str, float] = {}
    for key, (name, cpu) in after.items():
        name = re.sub(r"\d+", "N", name)
        cores[name] = cores.get(name, 0.0) + (cpu - before.get(key, (name, 0.0))[1]) / elapsed
    if spy is not None:
        try:
            spy.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
    top = sorted(cores.items(), key=lambda kv: -kv[1])
    return {"seconds": elapsed, "processes": len(pids), "cores_by_thread": {k: round(v, 3) for k, v in top[:25]}}


def decoder_split(logs: Path) -> dict[str, int]:
    """Jobs decoded on NVDEC and on the CPU, from the workers' logs (claim_decoder's line, one a job)."""
    counts = {"nvdec": 0, "pyav": 0}
    for path in logs.glob("worker*.log"):
        for line in path.read_text(errors="replace").splitlines():
            for decoder in counts:
                if f"decoding on {decoder} (" in line:
                    counts[decoder] += 1
    return counts


def slot_waits(logs: Path) -> dict[str, float]:
    """The jobs that waited for an NVDEC slot (the tail rule, q) and their waits in seconds, from the same lines."""
    import re

    waits = [
        float(m.group(1))
        for path in logs.glob("worker*.log")
        for m in re.finditer(r"decoding on \w+ \(.*; waited ([\d.]+) s for a slot\)", path.read_text(errors="replace"))
    ]
    waited = [w for w in waits if w > 0]
    return {"jobs": len(waited), "seconds_total": round(sum(waited), 2), "seconds_max": max(waited, default=0.0)}


def summarise(jobs: list[dict], per_stream_fps: float | None) -> dict:
    """Throughput and per-job times from the jobs' own records (created, started, finished, frames)."""
    from datetime import datetime

    def ts(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    done = [j for j in jobs if j["status"] == "succeeded"]
    row: dict = {"jobs": len(jobs), "succeeded": len(done), "statuses": {}}
    for job in jobs:
        row["statuses"][job["status"]] = row["statuses"].get(job["status"], 0) + 1
    if not done:
        row["errors"] = [j.get("error") for j in jobs[:3]]
        return row
    created = [ts(j["created_at"]) for j in done]
    started = [ts(j["started_at"]) for j in done]
    finished = [ts(j["finished_at"]) for j in done]
    frames = [j["frames_total"] or 0 for j in done]
    wall = max(finished) - min(created)
    row |= {"frames": sum(frames), "seconds": wall, "frames_per_s": sum(frames) / wall}
    lo, hi = _percentile(finished, 0.1), _percentile(finished, 0.9)
    steady = sum(f for f, t in zip(frames, finished, strict=True) if lo < t <= hi)
    row["steady_frames_per_s"] = steady / (hi - lo) if hi > lo else None
    run = [f - s for s, f in zip(started, finished, strict=True)]
    wait = [s - c for c, s in zip(created, started, strict=True)]
    row |= {
        "run_s_median": _percentile(run, 0.5),
        "run_s_p90": _percentile(run, 0.9),
        "queue_wait_s_median": _percentile(wait, 0.5),
        "submit_span_s": max(created) - min(created),
    }
    if per_stream_fps:
        # a harness stream's time for the same frames: what decode and inference alone take at that load
        model_s = frames[0] / per_stream_fps
        row["harness_stream_s_per_job"] = model_s
        row["added_s_per_job_median"] = row["run_s_median"] - model_s
    return row


def run_service(
    clip: Path,
    triton_url: str | None,
    per_stream_fps: float | None,
    plan: Plan,
    jobs: int = JOBS,
) -> dict:
    """One burst of `jobs` through a LocalStack of plan's (workers, concurrency, NVDEC slots, CPU decoder threads,
    nice, blocking sync): its summary row. With the plan's label in SERVICE_PROFILE, `profile_workers` runs from
    SERVICE_PROFILE_AT_S seconds after the submissions for SERVICE_PROFILE_S seconds."""
    from local.stack import LocalStack, StackPorts
    from videoapi.client import VideoApiClient
    from videoapi.settings import Settings

    workers, concurrency, slots, threads, nice, blocking, backlog = plan
    label = f"w{workers}c{concurrency}" + (f"n{slots}" if slots else "")
    label += (f"t{threads}" if threads is not None else "") + (f"p{nice}" if nice else "")
    label += (f"q{backlog}" if backlog else "") + ("b" if blocking else "")
    if threads is None:
        threads = int(os.environ.get("SERVICE_DECODER_THREADS", "2"))
    settings = Settings(
        decoder="auto" if slots else os.environ.get("SERVICE_DECODER", "nvdec"),  # type: ignore[arg-type]
        nvdec_streams=slots,
        decoder_threads=threads,
        cpu_decode_nice=nice,
        cpu_decode_min_backlog=backlog,
        cuda_blocking_sync=blocking,
        window=WINDOW,
        model_name=MODEL if triton_url else "transnetv2",
        triton_shared_memory=os.environ.get("SERVICE_SHM", "cuda"),  # type: ignore[arg-type]
        batch_windows=int(os.environ.get("SERVICE_BATCH_WINDOWS", "4")),
        client_max_active_jobs=jobs + 10,
        client_rate_limit=0,
    )
    t0 = time.perf_counter()
    logs = Path(tempfile.mkdtemp(prefix=f"service-{label}-"))
    stack = LocalStack(
        settings,
        StackPorts(api=0),
        workers=workers,
        worker_concurrency=concurrency,
        triton_url=triton_url,
        write_state=False,
        log_dir=logs,
        on_status=lambda line: log("  " + line),
    )
    with stack:
        log(f"{label}: stack up in {time.perf_counter() - t0:.1f} s")
        with VideoApiClient(stack.api_url, stack.api_key, timeout_s=120) as client:
            with ThreadPoolExecutor(16) as pool:
                keys = list(pool.map(lambda _: client.upload(clip), range(jobs)))
            log(f"{label}: {jobs} uploads in {time.perf_counter() - t0:.1f} s since start")
            sampler = CpuSampler()
            sampler.start()
            t_submit = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                ids = list(pool.map(lambda key, tag=label: client.submit(key, tag=tag)["id"], keys))
            submit_s = time.perf_counter() - t_submit
            profile: dict = {}
            profile_thread = None
            if label in os.environ.get("SERVICE_PROFILE", "").split(","):
                at_s = float(os.environ.get("SERVICE_PROFILE_AT_S", "10"))
                seconds = float(os.environ.get("SERVICE_PROFILE_S", "10"))

                def take(at_s: float = at_s, seconds: float = seconds) -> None:
                    time.sleep(max(0.0, at_s - (time.perf_counter() - t_submit)))
                    profile.update(profile_workers(seconds, label))

                profile_thread = threading.Thread(target=take, daemon=True)
                profile_thread.start()
            deadline = time.monotonic() + JOB_TIMEOUT_S
            pending = set(ids)
            finished: dict[str, dict] = {}
            while pending and time.monotonic() < deadline:
                time.sleep(1.0)
                with ThreadPoolExecutor(8) as pool:
                    for job in pool.map(client.status, list(pending)):
                        if job["status"] in ("succeeded", "failed", "cancelled"):
                            finished[job["id"]] = job
                            pending.discard(job["id"])
            sampler.stop()
            if profile_thread is not None:
                profile_thread.join(60)
            for job_id in pending:
                finished[job_id] = client.status(job_id)
    row = summarise(list(finished.values()), per_stream_fps) | {"submit_s": submit_s, "plan": label}
    row["unfinished"] = len(pending)
    if profile:
        row["worker_profile"] = profile
    row["decoders"] = split = decoder_split(logs)
    if backlog:
        row["slot_waits"] = slot_waits(logs)
    if slots and row.get("frames") and sum(split.values()):
        # every job is the same clip: the frames split as the jobs do
        row["cpu_frames_per_s"] = row["frames_per_s"] * split["pyav"] / sum(split.values())
    row["cpu"] = cpu_use(sampler, list(finished.values()))
    log(f"{label}: " + json.dumps({k: v for k, v in row.items() if k != "statuses"}, default=str))
    return row


def cpu_use(sampler: CpuSampler, jobs: list[dict]) -> dict:
    """The sampler's means over the whole burst and over its steady state (the 10th to 90th percentile of the
    finish times, as summarise's steady frames/s)."""
    from datetime import datetime

    done = [j for j in jobs if j.get("finished_at")]
    if not done:
        return {}
    ts = sorted(datetime.fromisoformat(j["finished_at"].replace("Z", "+00:00")).timestamp() for j in done)
    first = min(datetime.fromisoformat(j["created_at"].replace("Z", "+00:00")).timestamp() for j in done)
    return {
        "burst": sampler.summary(first, ts[-1]),
        "steady": sampler.summary(_percentile(ts, 0.1), _percentile(ts, 0.9)),
    }


def part_service(clip: Path, triton_url: str | None, per_stream_fps: float | None) -> None:
    rows = REPORT.setdefault("service", {})
    for plan in parse_service_plan(os.environ.get("SERVICE_PLAN", "w6c4")):
        row = run_service(clip, triton_url, per_stream_fps, plan)
        rows[row["plan"]] = row
        save()


def gpu_counts(text: str, available: int) -> tuple[list[int], list[int]]:
    """SERVICE_GPUS ('1,2,4,8') split into the counts this node can run and those it cannot."""
    wanted = [int(g) for g in text.split(",") if g.strip()]
    return [g for g in wanted if g <= available], [g for g in wanted if g > available]


def part_scaling(clip: Path, repo: Path) -> None:
    """The service path on 1, 2, 4 and 8 of the node's GPUs (issue 40): for each count a Triton and a stack that see
    only those GPUs (CUDA_VISIBLE_DEVICES), SCALING_PLAN's workers per GPU, SCALING_JOBS_PER_GPU jobs per GPU;
    frames/s and its ratio to linear scaling from one GPU."""
    import torch
    from run import start_triton

    available = torch.cuda.device_count()
    counts, not_run = gpu_counts(os.environ.get("SERVICE_GPUS", "1,2,4,8"), available)
    report = REPORT.setdefault("scaling", {"gpus_seen": available, "not_run": not_run, "rows": {}})
    workers, concurrency, slots, threads, nice, blocking, backlog = parse_service_plan(
        os.environ.get("SCALING_PLAN", "w6c4")
    )[0]
    per_gpu_jobs = int(os.environ.get("SCALING_JOBS_PER_GPU", "100"))
    one_gpu = None
    for count in counts:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(count))  # Triton's and the workers'
        server = start_triton(repo)
        try:
            row = run_service(
                clip,
                server.grpc_url,
                None,
                (workers * count, concurrency, slots, threads, nice, blocking, backlog),
                per_gpu_jobs * count,
            )
        finally:
            server.stop()
            del os.environ["CUDA_VISIBLE_DEVICES"]
        one_gpu = one_gpu or row.get("frames_per_s")
        if one_gpu and row.get("frames_per_s"):
            row["linear_ratio"] = row["frames_per_s"] / (count * one_gpu)
        report["rows"][str(count)] = row
        save()


def main() -> None:
    from nvdec import REPORT as NVDEC_REPORT
    from nvdec import parse_plan, run_streams
    from run import error_text, make_model, start_triton

    # `timeout` ends a call with SIGTERM: leave through the stacks' and Triton's exits, so that no worker keeps its
    # GPU memory into the next call (a killed run left 42 processes holding the H100's memory, and the next run's
    # workers failed with CUDA out of memory)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    inputs = Path(sys.argv[1])
    clip = inputs / "clip1080.mp4"
    parts = os.environ.get("BENCH_PARTS", "decode,harness,service").split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    if os.environ.get("SERVICE_DRY"):  # a dry run of the service part on a CPU: the stack's own Triton
        part_service(clip, None, None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        make_model(repo, MODEL, "fp16", channels_last=True, gpu_inputs=True)
        server = start_triton(repo)
        try:
            per_stream = None
            for part in parts:
                t0 = time.perf_counter()
                try:
                    if part == "decode":
                        plan = os.environ.get("DECODE_PLAN", "raw_small_8x4=nvdec:8x4")
                        for label, mix, mode in parse_plan(plan, "decode"):
                            REPORT.setdefault("decode", {})[label] = run_streams(label, mix, str(clip), mode)
                    elif part == "harness":
                        plan = os.environ.get("E2E_PLAN", "shm_nvdec_6x4=nvdec:6x4")
                        for label, mix, mode in parse_plan(plan, "e2e"):
                            row = run_streams(label, mix, str(clip), mode, url=server.grpc_url)
                            REPORT.setdefault("harness", {})[label] = row
                            per_stream = per_stream or row.get("nvdec_per_stream")
                    elif part == "service":
                        part_service(clip, server.grpc_url, per_stream)
                    elif part == "scaling":
                        server.stop()  # each GPU count starts its own, narrowed to those GPUs
                        part_scaling(clip, repo)
                except Exception as exc:  # noqa: BLE001 - the next part may still run
                    REPORT.setdefault("errors", {})[part] = error_text(2000)
                    log(f"part {part} failed: {exc!r}")
                    import traceback

                    traceback.print_exc()
                log(f"part {part}: {time.perf_counter() - t0:.0f} s")
                save()
        finally:
            server.stop()
    REPORT.update({k: v for k, v in NVDEC_REPORT.items() if k not in REPORT})
    save()


if __name__ == "__main__":
    main()
