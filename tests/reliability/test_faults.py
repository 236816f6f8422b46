"""Faults injected into the real stack: a worker killed mid-job, Redis crashing under the API."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from fastapi.testclient import TestClient

from functions.app import create_app
from functions.deps import Services
from local.redis_server import RedisServer
from local.synthetic import write_video
from local.worker_process import WorkerProcess
from videoapi.adapters.storage import Storage
from videoapi.domain.jobs import JobStatus, JobStore
from videoapi.pipeline.shots import score_transitions
from workers.celery_app import create_app as create_celery

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


def test_worker_killed_mid_job_is_redelivered_and_completes_once(stack_settings, tmp_path):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    # a short visibility timeout, so the lost job comes back within the test (production: longer than any job)
    settings = stack_settings.model_copy(update={"redis_url": f"{base}/7", "visibility_timeout_s": 8})
    store, storage = JobStore.from_url(settings.redis_url), Storage.from_settings(settings)
    video = tmp_path / "long.mp4"
    cuts = write_video(video, [300, 250, 400, 350, 300], fps=25, seed=3)  # 1600 frames, one segment (< 27000)
    settings = settings.model_copy(update={"segment_frames": 27_000})
    key = "incoming/victim/long.mp4"
    storage.put_bytes(key, video.read_bytes(), "video/mp4")
    job = store.create(bucket=storage.bucket, key=key, threshold=0.5)
    celery = create_celery(settings)
    seen = []
    scratch = tmp_path / "scratch"  # the workers' temporary directory, where a job's video is fetched to
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    with WorkerProcess(
        settings, concurrency=1, name="victim", log_path=tmp_path / "victim.log", extra_env=env
    ) as victim:
        celery.send_task("videoapi.detect_shots", args=[job.id])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = store.get(job.id)
            seen.append((state.status, state.frames_done))
            if state.status == JobStatus.running and state.frames_done >= 200:
                break
            time.sleep(0.1)
        assert store.get(job.id).status == JobStatus.running, seen[-1]
        [fetched] = [p / "video" for p in scratch.glob("videoapi-job-*")]
        assert fetched.stat().st_size == video.stat().st_size
        victim.kill()  # SIGKILL, main process and pool: no chance to clean up or requeue
    assert fetched.exists()  # left behind
    with WorkerProcess(settings, concurrency=1, name="rescuer", log_path=tmp_path / "rescuer.log", extra_env=env):
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state = store.get(job.id)
            seen.append((state.status, state.frames_done))
            if state.status in (JobStatus.succeeded, JobStatus.failed):
                break
            time.sleep(0.2)
    celery.close()
    assert state.status == JobStatus.succeeded, (state.error_code, state.error_message)
    # the victim's video swept by the rescuer, the rescuer's own removed (multiprocessing's pymp-* is not ours)
    assert list(scratch.glob("videoapi-job-*")) == []
    rank = {JobStatus.queued: 0, JobStatus.running: 1, JobStatus.succeeded: 2}
    assert [rank[s] for s, _ in seen] == sorted(rank[s] for s, _ in seen)  # status never went back
    assert [f for _, f in seen] == sorted(f for _, f in seen)  # nor did progress
    document = storage.get_json(state.result_key)
    found = [(a["end_frame"], b["start_frame"]) for a, b in zip(document["shots"], document["shots"][1:])]
    assert score_transitions(found, [(c - 1, c) for c in cuts]).f1 == 1.0
    assert "videoapi.detect_shots" in (tmp_path / "rescuer.log").read_text()  # the rescuer ran it


def test_redis_crash_gives_503_then_recovers_with_no_job_lost(stack_settings, tmp_path):
    server = RedisServer(data_dir=tmp_path / "redis").start()
    settings = stack_settings.model_copy(update={"redis_url": server.url})
    services = Services.from_settings(settings)
    http = TestClient(create_app(settings, services=services))
    auth = {"X-API-Key": services.keys.create("carol")}
    uploaded = http.put(
        "/v1/uploads/direct",
        params={"filename": "a.mp4"},
        content=b"x" * 64,
        headers={**auth, "Content-Type": "video/mp4"},
    ).json()
    job = http.post("/v1/jobs", json={"source": uploaded["key"]}, headers=auth).json()
    time.sleep(1.5)  # AOF is fsynced every second
    os.killpg(server._process.pid, signal.SIGKILL)  # a crash, not a clean shutdown
    server._process.wait()
    try:
        for method, path, body in (("GET", f"/v1/jobs/{job['id']}", None), ("POST", "/v1/jobs", {"source": "x"})):
            started = time.monotonic()
            response = http.request(method, path, json=body, headers=auth)
            assert response.status_code == 503 and time.monotonic() - started < 15
            assert response.json()["error"]["code"] == "service_unavailable"
        restarted = RedisServer(port=server.port, data_dir=tmp_path / "redis").start()
        try:
            status = http.get(f"/v1/jobs/{job['id']}", headers=auth)  # same API process: it reconnects by itself
            assert status.status_code == 200 and status.json()["status"] == "queued"
            assert services.jobs.store.redis.llen("shots") == 1  # the queued task survived too
        finally:
            restarted.stop()
    finally:
        server.stop()


def test_redis_restarted_under_a_running_worker_loses_no_job(stack_settings, tmp_path):
    """Redis is killed (no clean shutdown) while a job runs and two wait; it comes back from its AOF."""
    server = RedisServer(data_dir=tmp_path / "redis").start()
    settings = stack_settings.model_copy(
        update={"redis_url": server.url, "segment_frames": 27_000, "visibility_timeout_s": 20}
    )
    services = Services.from_settings(settings)
    http = TestClient(create_app(settings, services=services))
    auth = {"X-API-Key": services.keys.create("dave")}
    jobs = []
    for i, lengths in enumerate(([300, 300, 300, 300], [80, 70], [60, 90])):
        video = tmp_path / f"v{i}.mp4"
        write_video(video, lengths, fps=25, seed=i, width=160, height=90)
        uploaded = http.put(
            "/v1/uploads/direct",
            params={"filename": video.name},
            content=video.read_bytes(),
            headers={**auth, "Content-Type": "video/mp4"},
        ).json()
        jobs.append(http.post("/v1/jobs", json={"source": uploaded["key"]}, headers=auth).json()["id"])
    store = services.jobs.store
    restarted = None
    try:
        with WorkerProcess(settings, concurrency=1, name="steady", log_path=tmp_path / "worker.log"):
            deadline = time.monotonic() + 60
            while store.get(jobs[0]).frames_done < 100:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.5)  # AOF is fsynced every second
            os.killpg(server._process.pid, signal.SIGKILL)
            server._process.wait()
            down = http.get(f"/v1/jobs/{jobs[0]}", headers=auth)
            assert down.status_code == 503 and down.json()["error"]["code"] == "service_unavailable"
            time.sleep(4)
            restarted = RedisServer(port=server.port, data_dir=tmp_path / "redis").start()
            deadline = time.monotonic() + 180
            while not all(http.get(f"/v1/jobs/{j}", headers=auth).json()["status"] == "succeeded" for j in jobs):
                views = [http.get(f"/v1/jobs/{j}", headers=auth).json() for j in jobs]
                assert not [v for v in views if v["status"] == "failed"], views
                assert time.monotonic() < deadline, views
                time.sleep(0.5)
        for job_id in jobs:
            document = json.loads(http.get(f"/v1/jobs/{job_id}/result", headers=auth).content)
            assert document["video"]["frame_count"] == store.get(job_id).frames_total
        assert [
            len(s["shots"]) for s in [json.loads(http.get(f"/v1/jobs/{j}/result", headers=auth).content) for j in jobs]
        ] == [4, 2, 2]
    finally:
        for running in (restarted, server):
            if running is not None:
                running.stop()


def test_triton_that_comes_back_lets_the_retried_job_finish(stack_settings, model_repository, tmp_path):
    from local.netutil import free_port
    from local.triton_server import TritonServer

    base = stack_settings.redis_url.rsplit("/", 1)[0]
    port = free_port()
    settings = stack_settings.model_copy(
        update={
            "redis_url": f"{base}/8",
            "triton_url": f"127.0.0.1:{port}",
            "triton_timeout_s": 5.0,
            "task_max_retries": 8,
            "task_retry_backoff_max_s": 3,
        }
    )
    store, storage = JobStore.from_url(settings.redis_url), Storage.from_settings(settings)
    video = tmp_path / "v.mp4"
    write_video(video, [40, 40], fps=25)
    storage.put_bytes("incoming/t/v.mp4", video.read_bytes(), "video/mp4")
    job = store.create(bucket=storage.bucket, key="incoming/t/v.mp4", threshold=0.5)
    celery = create_celery(settings)
    log = tmp_path / "worker.log"
    with WorkerProcess(settings, concurrency=1, name="patient", log_path=log):
        celery.send_task("videoapi.detect_shots", args=[job.id])
        deadline = time.monotonic() + 60
        while "Retry in" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Retry in" in log.read_text()  # Triton is down: the task backs off
        with TritonServer(model_repository, grpc_port=port):
            deadline = time.monotonic() + 120
            while store.get(job.id).status not in (JobStatus.succeeded, JobStatus.failed):
                assert time.monotonic() < deadline
                time.sleep(0.2)
    celery.close()
    state = store.get(job.id)
    assert state.status == JobStatus.succeeded, (state.error_code, state.error_message)
