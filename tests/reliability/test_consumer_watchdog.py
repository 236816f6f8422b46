"""A worker whose consumer went deaf (connected, yet fetching nothing) is restarted by its watchdog.

The deafness is made on purpose in a real worker (tests/reliability/deaf_consumer.py), the way Celery's
reconnect bug leaves one; the control run, with the watchdog off, shows the job would wait forever.
"""

from __future__ import annotations

import time

import pytest

from local.redis_server import RedisServer
from local.synthetic import write_video
from local.worker_process import WorkerProcess
from videoapi.adapters.storage import Storage
from videoapi.domain.jobs import JobStatus, JobStore
from workers.celery_app import create_app as create_celery

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

STALL_S = 4.0


def run_job_on_a_deaf_worker(stack_settings, tmp_path, stall_s: float, wait_s: float) -> tuple[JobStatus, str]:
    """Deafen a fresh worker's consumer, queue one short job, wait; its status and the worker's log."""
    with RedisServer(data_dir=tmp_path / "redis") as server:
        settings = stack_settings.model_copy(update={"redis_url": server.url, "consumer_stall_s": stall_s})
        store, storage = JobStore.from_url(settings.redis_url), Storage.from_settings(settings)
        video = tmp_path / "short.mp4"
        write_video(video, [10, 12], fps=25, seed=5, width=64, height=36)
        key = f"incoming/deaf/{tmp_path.name}.mp4"
        storage.put_bytes(key, video.read_bytes(), "video/mp4")
        job = store.create(bucket=storage.bucket, key=key, threshold=0.5)
        celery, log = create_celery(settings), tmp_path / "worker.log"
        try:
            with WorkerProcess(
                settings, concurrency=1, name="deaf", log_path=log, include=["tests.reliability.deaf_consumer"]
            ):
                [reply] = celery.control.broadcast("test_deafen_consumer", reply=True, timeout=5)
                assert next(iter(reply.values())) == {"ok": ["shots"]}
                time.sleep(2)  # a fetch already waiting on the queue (kombu's BRPOP, 1 s) times out first
                celery.send_task("videoapi.detect_shots", args=[job.id])
                deadline = time.monotonic() + wait_s
                while time.monotonic() < deadline and store.get(job.id).status != JobStatus.succeeded:
                    time.sleep(0.2)
                return store.get(job.id).status, log.read_text()
        finally:
            celery.close()


def test_a_deaf_consumer_is_restarted_and_takes_the_waiting_job(stack_settings, tmp_path):
    status, log = run_job_on_a_deaf_worker(stack_settings, tmp_path, STALL_S, wait_s=60)
    assert status == JobStatus.succeeded, log[-3000:]
    assert "consumer took no task for 4s while 1 waited in shots and it had room: restarting it" in log


def test_without_the_watchdog_a_deaf_consumer_leaves_the_job_waiting(stack_settings, tmp_path):
    status, log = run_job_on_a_deaf_worker(stack_settings, tmp_path, 0, wait_s=4 * STALL_S)
    assert status == JobStatus.queued, log[-3000:]
    assert "restarting it" not in log
