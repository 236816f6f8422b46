"""500 jobs in bursts through the API to 2 workers: all complete, none lost, none with a wrong result."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from functions.app import create_app
from functions.deps import Services
from local.synthetic import write_video
from local.worker_process import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

JOBS = int(os.environ.get("VIDEOAPI_LOAD_JOBS", "500"))
BURST = 100


def _videos(folder: Path, count: int) -> list[tuple[Path, int]]:
    """`count` clips, (path, frames): each of count/2 distinct two-shot clips under two names."""
    rng = np.random.default_rng(11)
    clips = []
    for i in range(count // 2):
        lengths = [int(x) for x in rng.integers(10, 26, 2)]  # under 50 frames: one model window each
        path = folder / f"clip {i:03d}.mp4"
        write_video(path, lengths, fps=25, width=96, height=54, seed=i)
        twin = folder / f"clip {i:03d} (again).mp4"
        twin.write_bytes(path.read_bytes())
        clips.append((path, sum(lengths)))
    return clips + [(folder / f"{p.stem} (again).mp4", n) for p, n in clips]


@pytest.fixture
def load_api(stack_settings):
    """(settings, services, the API's client) over a Redis database of the test's own."""
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    settings = stack_settings.model_copy(update={"redis_url": f"{base}/9", "segment_frames": 27_000})
    services = Services.from_settings(settings)
    services.jobs.store.redis.flushdb()
    # one event loop for every request, as the server runs them: outside `with`, a TestClient runs each request on
    # a loop of its own, and the API's asyncio Redis client (one per loop) connects again for each status poll
    with TestClient(create_app(settings, services=services)) as http:
        yield settings, services, http


def test_500_jobs_in_bursts_to_two_workers(load_api, tmp_path, record_property):
    settings, services, http = load_api
    key = services.keys.create("loadtest")
    services.keys.set_limits(key, rate_limit=0)  # the server's throughput is measured, not the key's rate limit
    auth = {"X-API-Key": key}
    clips = _videos(tmp_path, JOBS)

    def submit(clip: tuple[Path, int]) -> str:
        path = clip[0]
        uploaded = http.put(
            "/v1/uploads/direct",
            params={"filename": path.name},
            content=path.read_bytes(),
            headers={**auth, "Content-Type": "video/mp4"},
        )
        assert uploaded.status_code == 201, uploaded.text
        job = http.post("/v1/jobs", json={"source": uploaded.json()["key"], "tag": path.name}, headers=auth)
        assert job.status_code == 202, job.text
        return job.json()["id"]

    latencies: list[float] = []
    errors: list[int] = []
    probing = threading.Event()
    probe_id: list[str] = []

    def probe_status() -> None:
        """A client polling one job's status all through the burst, as dashboards do."""
        while not probing.is_set():
            if probe_id:
                started = time.perf_counter()
                response = http.get(f"/v1/jobs/{probe_id[0]}", headers=auth)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors.append(response.status_code)
            time.sleep(0.02)

    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    started = time.monotonic()
    with (
        WorkerProcess(settings, concurrency=1, name="load-a", log_path=logs[0]),
        WorkerProcess(settings, concurrency=1, name="load-b", log_path=logs[1]),
        ThreadPoolExecutor(8) as pool,
    ):
        prober = threading.Thread(target=probe_status, daemon=True)
        prober.start()
        ids: list[str] = []
        for burst in range(0, JOBS, BURST):
            ids += list(pool.map(submit, clips[burst : burst + BURST]))
            probe_id[:] = [ids[-1]]
            time.sleep(2)  # the next burst lands while the workers are busy with this one
        submitted_s = time.monotonic() - started
        deadline = time.monotonic() + 900
        while True:
            states = Counter(job.status.value for job in services.jobs.store.list_for("loadtest", limit=JOBS + 10))
            if states["succeeded"] + states["failed"] == JOBS or time.monotonic() > deadline:
                break
            time.sleep(1)
        probing.set()
        prober.join()
    elapsed = time.monotonic() - started

    assert len(set(ids)) == JOBS and states == {"succeeded": JOBS}, states
    shots = {}
    for job_id, (path, frames) in zip(ids, clips):
        job = services.jobs.store.get(job_id)
        assert job.tag == path.name and job.key.endswith(path.name)  # each job kept its own video
        document = json.loads(http.get(f"/v1/jobs/{job_id}/result", headers=auth).content)
        assert document["video"]["frame_count"] == frames, (path.name, document["video"])
        spans = [(shot["start_frame"], shot["end_frame"]) for shot in document["shots"]]
        assert spans[0][0] == 0 and spans[-1][1] == frames - 1
        shots[path.name] = spans
    for name, spans in shots.items():
        if name.endswith(" (again).mp4"):  # the same video, processed by whichever worker: the same shots
            assert spans == shots[name.replace(" (again)", "")], name

    worker_logs = "".join(p.read_text() for p in logs)
    runs = Counter(re.findall(r"'job_id': '(job_[0-9a-f]+)', 'status': 'succeeded'", worker_logs))
    processed_twice = sum(1 for n in runs.values() if n > 1)
    # API jobs run under fair-share tokens (videoapi.run_next_job); jobs sent straight as detect_shots
    per_worker = [len(re.findall(r"(?:detect_shots|run_next_job)\[.*\] succeeded", p.read_text())) for p in logs]
    p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
    figures = {
        "jobs": JOBS,
        "bursts": -(-JOBS // BURST),
        "succeeded": states["succeeded"],
        "lost": JOBS - len(runs),
        "processed_twice": processed_twice,
        "jobs_per_worker": per_worker,
        "submit_s": round(submitted_s, 1),
        "all_done_s": round(elapsed, 1),
        "status_polls": len(latencies),
        "status_errors": len(errors),
        "status_p50_ms": round(p50, 1),
        "status_p99_ms": round(p99, 1),
    }
    print("\nload:", json.dumps(figures))
    record_property("load", figures)
    (Path(os.environ.get("VIDEOAPI_FIGURES_DIR", tmp_path)) / "load.json").write_text(json.dumps(figures, indent=2))
    assert len(runs) == JOBS and not errors and min(per_worker) > 0
    assert auth["X-API-Key"] not in worker_logs and settings.callback_secret not in worker_logs  # no secret logged
