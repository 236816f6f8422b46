"""Fair share of the workers end to end: the API, real Redis, two Celery workers, Triton, tiny generated videos."""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from functions.app import create_app
from functions.deps import Services
from local.synthetic import write_video
from local.worker_process import WorkerProcess
from videoapi.adapters.queue import QUEUE
from videoapi.domain import redis_keys
from videoapi.domain.fairness import PRIORITIES
from videoapi.domain.jobs import Job, JobStatus
from workers.celery_app import create_app as create_celery

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fair_settings(stack_settings):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    # tiny clips of 50 frames run whole; a 300-frame one is split in segments
    return stack_settings.model_copy(update={"redis_url": f"{base}/14", "segment_frames": 120})


@pytest.fixture(scope="module")
def fair_services(fair_settings) -> Services:
    services = Services.from_settings(fair_settings)
    services.jobs.store.redis.flushdb()
    return services


@pytest.fixture(scope="module")
def workers(fair_settings, fair_services, tmp_path_factory):
    logs = tmp_path_factory.mktemp("fair-logs")
    with (
        WorkerProcess(fair_settings, concurrency=1, name="fair-a", log_path=logs / "a.log"),
        WorkerProcess(fair_settings, concurrency=1, name="fair-b", log_path=logs / "b.log"),
    ):
        yield


@pytest.fixture(scope="module")
def http(fair_settings, fair_services) -> TestClient:
    return TestClient(create_app(fair_settings, services=fair_services))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fair") / "tiny.mp4"
    write_video(path, [25, 25], fps=25, width=96, height=54)
    return path.read_bytes()


class Client:
    """One API client: its key (rate limit off, to submit bursts) and its uploaded tiny clip."""

    def __init__(self, services: Services, http: TestClient, clip: bytes, name: str):
        self.id = f"{name}-{uuid.uuid4().hex[:6]}"
        key = services.keys.create(self.id)
        services.keys.set_limits(key, rate_limit=0)
        self.auth, self.http, self.store = {"X-API-Key": key}, http, services.jobs.store
        self.source = f"uploads/{self.id}/{uuid.uuid4().hex}/tiny.mp4"
        services.jobs.storage.put_bytes(self.source, clip, "video/mp4")

    def submit(self, **body) -> str:
        response = self.http.post("/v1/jobs", json={"source": self.source, **body}, headers=self.auth)
        assert response.status_code == 202, response.text
        return response.json()["id"]


def wait_all(services: Services, ids: list[str], timeout_s: float = 240) -> dict[str, Job]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = {job_id: services.jobs.store.get(job_id) for job_id in ids}
        if all(job.status.finished for job in jobs.values()):
            return jobs
        time.sleep(0.2)
    pending = [j for j in ids if not services.jobs.store.get(j).status.finished]
    raise AssertionError(f"{len(pending)} jobs unfinished after {timeout_s}s")


def assert_ran_once_and_nothing_left(services: Services, jobs: dict[str, Job]) -> None:
    for job in jobs.values():
        assert job.status == JobStatus.succeeded, (job.id, job.error_code, job.error_message)
        assert job.extra["attempts"] == "1"  # run exactly once: one lease taken
    redis = services.jobs.store.redis
    assert redis.llen(QUEUE) == 0  # no token left over
    for client_id in {job.client_id for job in jobs.values()}:
        assert all(redis.llen(redis_keys.fair_queue(client_id, p)) == 0 for p in PRIORITIES)
        assert services.jobs.quotas.active(client_id) == 0


def test_one_job_behind_another_clients_burst_of_40(workers, fair_services, http, clip):
    services = fair_services
    a, b = Client(services, http, clip, "burst"), Client(services, http, clip, "single")
    wait_all(services, [a.submit(), a.submit()])  # both workers warm: B's time alone is a warm one
    alone_id = b.submit()
    alone = wait_all(services, [alone_id])[alone_id]
    alone_s = alone.finished_at - alone.created_at

    burst = [a.submit() for _ in range(40)]
    behind_id = b.submit()
    jobs = wait_all(services, [*burst, behind_id])
    behind = jobs[behind_id]
    behind_s = behind.finished_at - behind.created_at
    one_job_s = statistics.median(j.finished_at - j.started_at for j in jobs.values())
    burst_s = max(j.finished_at for j in jobs.values()) - min(jobs[i].created_at for i in burst)
    print(f"B alone {alone_s:.2f} s, behind A's 40 {behind_s:.2f} s; one job {one_job_s:.2f} s, A's 40 {burst_s:.1f} s")
    assert behind_s <= 2 * alone_s + one_job_s
    assert_ran_once_and_nothing_left(services, jobs)


def test_three_clients_of_30_jobs_get_equal_medians(workers, fair_services, http, clip):
    services = fair_services
    clients = [Client(services, http, clip, name) for name in ("c1", "c2", "c3")]
    started = time.time()
    with ThreadPoolExecutor(3) as pool:  # all three submit their 30 at once
        ids = list(pool.map(lambda c: [c.submit(priority="batch") for _ in range(30)], clients))
    jobs = wait_all(services, [i for client_ids in ids for i in client_ids], timeout_s=400)
    medians = [statistics.median(jobs[i].finished_at - started for i in client_ids) for client_ids in ids]
    print("median completion per client: " + ", ".join(f"{m:.1f} s" for m in medians))
    assert max(medians) <= 1.25 * min(medians)
    assert_ran_once_and_nothing_left(services, jobs)


def test_quota_frees_a_place_when_a_worker_finishes_a_job(workers, fair_settings, fair_services, clip):
    services = fair_services
    quota_settings = fair_settings.model_copy(update={"client_max_active_jobs": 5})
    http = TestClient(create_app(quota_settings, services=Services.from_settings(quota_settings)))
    client = Client(services, http, clip, "quota")
    celery = create_celery(fair_settings)
    names = [next(iter(r)) for r in celery.control.ping(timeout=1.0) or []]
    celery.control.cancel_consumer(QUEUE, destination=names, reply=True)  # the workers hold off a moment
    try:
        ids = [client.submit() for _ in range(5)]
        sixth = http.post("/v1/jobs", json={"source": client.source}, headers=client.auth)
    finally:
        celery.control.add_consumer(QUEUE, destination=names, reply=True)
        celery.close()
    assert sixth.status_code == 429
    assert sixth.json()["error"] | {"message": ""} == {"code": "quota_exceeded", "limit": 5, "count": 5, "message": ""}
    first_done = None
    while first_done is None:
        first_done = next((i for i in ids if services.jobs.store.get(i).status.finished), None)
        time.sleep(0.05)
    ids.append(client.submit())  # accepted once a worker finished one
    jobs = wait_all(services, ids)
    assert_ran_once_and_nothing_left(services, jobs)
    usage = http.get("/v1/usage", headers=client.auth).json()
    assert usage["active_jobs"] == 0 and usage["frames_today"] == 6 * 50


def test_a_split_job_from_a_token_runs_its_segments_and_counts_its_frames(workers, fair_services, http, tmp_path):
    services = fair_services
    path = tmp_path / "long.mp4"
    write_video(path, [100, 100, 100], fps=25, width=96, height=54)
    client = Client(services, http, path.read_bytes(), "split")
    job_id = client.submit()
    job = wait_all(services, [job_id])[job_id]
    assert job.status == JobStatus.succeeded, (job.error_code, job.error_message)
    assert job.extra.get("segments_sent") == "1"
    document = services.jobs.storage.get_json(job.result_key)
    assert document["video"]["frame_count"] == 300
    usage = http.get("/v1/usage", headers=client.auth).json()
    assert usage["frames_today"] == 300 and usage["active_jobs"] == 0


def test_a_job_cancelled_while_queued_is_skipped_and_the_next_one_runs(workers, fair_settings, fair_services, clip):
    services = fair_services
    http = TestClient(create_app(fair_settings, services=services))
    client = Client(services, http, clip, "cancel")
    celery = create_celery(fair_settings)
    names = [next(iter(r)) for r in celery.control.ping(timeout=1.0) or []]
    celery.control.cancel_consumer(QUEUE, destination=names, reply=True)
    try:
        cancelled, kept = client.submit(), client.submit()
        assert http.post(f"/v1/jobs/{cancelled}/cancel", headers=client.auth).json()["status"] == "cancelled"
    finally:
        celery.control.add_consumer(QUEUE, destination=names, reply=True)
        celery.close()
    jobs = wait_all(services, [kept])
    assert jobs[kept].status == JobStatus.succeeded
    deadline = time.monotonic() + 30
    while services.jobs.store.redis.llen(QUEUE) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert services.jobs.store.get(cancelled).status == JobStatus.cancelled  # its token found it cancelled
    assert services.jobs.store.get(cancelled).started_at is None
    assert services.jobs.quotas.active(client.id) == 0 and services.jobs.fair.queued(client.id) == 0


def test_a_clips_job_runs_under_a_token_too(workers, fair_services, http, clip):
    services = fair_services
    client = Client(services, http, clip, "clips")
    job_id = client.submit()
    assert wait_all(services, [job_id])[job_id].status == JobStatus.succeeded
    response = http.post(f"/v1/jobs/{job_id}/clips", json={"mode": "copy"}, headers=client.auth)
    assert response.status_code == 202, response.text
    clips_id = response.json()["id"]
    clips = wait_all(services, [clips_id])[clips_id]
    assert clips.status == JobStatus.succeeded, (clips.error_code, clips.error_message)
    assert clips.extra["attempts"] == "1" and services.jobs.quotas.active(client.id) == 0
    manifest = http.get(f"/v1/jobs/{clips_id}/result", headers=client.auth).json()
    assert manifest["clips"] and manifest["zip"]["url"]
