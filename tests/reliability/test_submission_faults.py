"""Redis or the broker failing in the middle of a submission: never a job stored but not queued, never a stale key."""

from __future__ import annotations

import time

import pytest
import redis
from kombu.exceptions import OperationalError

from functions.deps import Services
from videoapi.adapters.storage import Storage
from videoapi.domain import redis_keys
from videoapi.domain.submission import SubmitRequest
from videoapi.domain.uploads import upload_prefix
from videoapi.settings import Settings

pytestmark = [pytest.mark.reliability]

CLIENT = "faulty"


@pytest.fixture
def services(redis_url, s3_endpoint):
    base = redis_url.rsplit("/", 1)[0]
    settings = Settings(redis_url=f"{base}/11", s3_endpoint_url=s3_endpoint, bucket="videoapi-submission-faults")
    Storage.from_settings(settings).ensure_bucket()
    services = Services.from_settings(settings)
    services.jobs.store.redis.flushdb()
    services.jobs.storage.put_bytes(f"{upload_prefix(CLIENT)}a.mp4", b"x" * 64, "video/mp4")
    yield services
    services.jobs.store.redis.flushdb()


def request() -> SubmitRequest:
    return SubmitRequest(source=f"{upload_prefix(CLIENT)}a.mp4")


def nothing_left(services: Services) -> None:
    jobs = services.jobs
    assert jobs.store.list_for(CLIENT, 10) == []  # no record that says queued
    assert jobs.fair.queued(CLIENT) == 0
    assert jobs.quotas.active(CLIENT) == 0
    assert jobs.store.redis.get(redis_keys.idempotency(CLIENT, "k1")) is None  # the key may be used again


def test_redis_failing_while_the_job_is_stored_leaves_no_job_and_no_key(services, monkeypatch):
    real_execute = redis.client.Pipeline.execute
    failed = []

    def execute(pipe, *args, **kwargs):
        # the transaction that stores the job (its record and its place in the queue) dies on the wire
        if not failed and any(redis_keys.job("") in str(c) for c in pipe.command_stack):
            failed.append(True)
            pipe.reset()
            raise redis.ConnectionError("Connection reset by peer")
        return real_execute(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    with pytest.raises(redis.ConnectionError):
        services.jobs.submit(CLIENT, request(), idempotency_key="k1")
    assert failed
    nothing_left(services)
    started = time.monotonic()
    job, created = services.jobs.submit(CLIENT, request(), idempotency_key="k1")  # the client's retry
    assert created and time.monotonic() - started < 2  # not a 5 s wait for a job that was never made
    assert [j.id for j in services.jobs.store.list_for(CLIENT, 10)] == [job.id]
    assert services.jobs.fair.queued(CLIENT) == 1


def test_broker_failing_after_the_job_is_stored_withdraws_it(services, monkeypatch):
    def refuse() -> None:
        raise OperationalError("Error 111 connecting to redis: Connection refused")

    monkeypatch.setattr(services.jobs.queue, "enqueue_token", refuse)
    with pytest.raises(OperationalError):
        services.jobs.submit(CLIENT, request(), idempotency_key="k1")
    nothing_left(services)  # before: a record that said queued, in no queue a worker would look at
    monkeypatch.undo()
    job, created = services.jobs.submit(CLIENT, request(), idempotency_key="k1")
    assert created and services.jobs.fair.queued(CLIENT) == 1
    assert services.jobs.store.get(job.id).status.value == "queued"


def test_a_token_lost_after_a_worker_took_the_job_keeps_the_job(services, monkeypatch):
    """Tokens are interchangeable: when another token's worker already took the job, it is accepted, not withdrawn."""

    def refuse_after_a_worker_popped() -> None:
        assert services.jobs.fair.pop("another-token") is not None
        raise OperationalError("connection reset")

    monkeypatch.setattr(services.jobs.queue, "enqueue_token", refuse_after_a_worker_popped)
    job, created = services.jobs.submit(CLIENT, request(), idempotency_key="k1")
    assert created and services.jobs.store.get(job.id).status.value == "queued"
    assert services.jobs.quotas.active(CLIENT) == 1
