"""Client limits through the API on real Redis and moto S3: quotas, rate limits, priority, usage, 429 counters."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from functions.app import create_app
from functions.deps import Services
from functions.s3_trigger import handle_event
from local.synthetic import write_video
from tests.functions.test_lambda import s3_event
from tests.functions.test_rekognition_router import call
from videoapi.client import ApiClientError, VideoApiClient
from videoapi.domain.api_keys import ApiKeys
from videoapi.domain.fairness import record_frames


@pytest.fixture(scope="module")
def limited(api_settings):
    """The API with VIDEOAPI_CLIENT_MAX_ACTIVE_JOBS=5 and VIDEOAPI_CLIENT_RATE_LIMIT=5, on a database of its own.

    Keys are cached 0.2 s: a limit changed from outside (the CLI) takes effect that much later.
    """
    base = api_settings.redis_url.rsplit("/", 1)[0]
    settings = api_settings.model_copy(
        update={
            "redis_url": f"{base}/6",
            "client_max_active_jobs": 5,
            "client_rate_limit": 5.0,
            "api_key_cache_s": 0.2,
        }
    )
    services = Services.from_settings(settings)
    services.jobs.store.redis.flushdb()
    return services, TestClient(create_app(settings, services=services))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("limits") / "clip.mp4"
    write_video(path, [30, 30], fps=25)
    return path.read_bytes()


def refused(code: str) -> float:
    return REGISTRY.get_sample_value("videoapi_requests_refused_total", {"code": code}) or 0.0


def new_client(services: Services, **limits) -> tuple[str, dict]:
    client_id = f"c{uuid.uuid4().hex[:8]}"
    key = services.keys.create(client_id)
    if limits:
        services.keys.set_limits(key, **limits)
    return client_id, {"X-API-Key": key}


def put_source(services: Services, client_id: str, clip: bytes) -> str:
    key = f"uploads/{client_id}/{uuid.uuid4().hex}/clip.mp4"
    services.jobs.storage.put_bytes(key, clip, "video/mp4")
    return key


def test_sixth_job_is_429_quota_exceeded_until_one_finishes(limited, clip):
    services, http = limited
    client_id, auth = new_client(services, rate_limit=0)
    source = put_source(services, client_id, clip)
    ids = []
    for _ in range(5):
        response = http.post("/v1/jobs", json={"source": source}, headers=auth)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    before = refused("quota_exceeded")
    sixth = http.post("/v1/jobs", json={"source": source}, headers=auth)
    assert sixth.status_code == 429
    error = sixth.json()["error"]
    assert (error["code"], error["limit"], error["count"]) == ("quota_exceeded", 5, 5)
    assert "5" in error["message"]
    assert refused("quota_exceeded") == before + 1
    # an idempotent retry of the refused request is not stuck on a job that was never made
    keyed = {**auth, "Idempotency-Key": "retry-me"}
    assert http.post("/v1/jobs", json={"source": source}, headers=keyed).status_code == 429

    services.jobs.store.start(ids[0], 50)
    services.jobs.store.succeed(ids[0], "results/x.json")  # as a worker finishes it
    assert http.post("/v1/jobs", json={"source": source}, headers=keyed).status_code == 202
    assert http.post("/v1/jobs", json={"source": source}, headers=auth).status_code == 429
    assert http.post(f"/v1/jobs/{ids[1]}/cancel", headers=auth).status_code == 200  # cancelled: no longer active
    assert http.post("/v1/jobs", json={"source": source}, headers=auth).status_code == 202

    usage = http.get("/v1/usage", headers=auth).json()
    assert usage["active_jobs"] == 5 and usage["limits"]["max_active_jobs"] == 5


def test_a_keys_record_overrides_the_quota(limited, clip):
    services, http = limited
    client_id, auth = new_client(services, rate_limit=0, max_active_jobs=7)
    source = put_source(services, client_id, clip)
    codes = [http.post("/v1/jobs", json={"source": source}, headers=auth).status_code for _ in range(8)]
    assert codes == [202] * 7 + [429]


def test_50_requests_in_a_second_are_rate_limited_and_another_client_is_not(limited):
    services, http = limited
    _, busy = new_client(services)
    _, other = new_client(services)
    before = refused("rate_limited")
    started = time.monotonic()
    answers, others = [], []
    for i in range(50):
        answers.append(http.get("/v1/usage", headers=busy))
        if i % 10 == 0:
            others.append(http.get("/v1/usage", headers=other))
    elapsed = time.monotonic() - started
    allowed = [r for r in answers if r.status_code == 200]
    limited_ = [r for r in answers if r.status_code == 429]
    assert len(allowed) + len(limited_) == 50
    assert 10 <= len(allowed) <= 10 + math.ceil(5 * elapsed) + 1  # the burst (2 x 5) and the refill
    assert limited_ and refused("rate_limited") == before + len(limited_)
    for response in limited_:
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["RateLimit-Limit"] == "10" and response.headers["RateLimit-Remaining"] == "0"
        assert int(response.headers["RateLimit-Reset"]) >= 1
    assert allowed[0].headers["RateLimit-Limit"] == "10" and allowed[0].headers["RateLimit-Remaining"] == "9"
    assert [r.status_code for r in others] == [200] * 5  # the same second, another key: unaffected


def test_rekognition_calls_over_the_rate_are_throttled_as_aws_throttles(limited):
    services, http = limited
    pair = services.key_pairs.create(f"c{uuid.uuid4().hex[:8]}")
    before = refused("rate_limited")
    codes = [call(http, pair, "GetSegmentDetection", {"JobId": "job_missing"}, "/rekognition/") for _ in range(30)]
    kinds = Counter(r.json()["__type"] for r in codes)
    assert kinds["ResourceNotFoundException"] >= 10 and kinds["ThrottlingException"] >= 1, kinds
    assert set(kinds) == {"ResourceNotFoundException", "ThrottlingException"}
    assert refused("rate_limited") == before + kinds["ThrottlingException"]
    other = services.key_pairs.create(f"c{uuid.uuid4().hex[:8]}")  # another key pair: a bucket of its own
    answer = call(http, other, "GetSegmentDetection", {"JobId": "job_missing"}, "/rekognition/")
    assert answer.json()["__type"] == "ResourceNotFoundException"


def test_rate_limit_zero_disables_it(limited):
    services, http = limited
    _, auth = new_client(services, rate_limit=0)
    answers = [http.get("/v1/usage", headers=auth) for _ in range(40)]
    assert all(r.status_code == 200 for r in answers)
    assert "RateLimit-Limit" not in answers[0].headers


def test_the_python_client_honours_retry_after(limited):
    services, http = limited
    client_id, auth = new_client(services, rate_limit=1)  # bursts of 2
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with VideoApiClient("http://testserver", auth["X-API-Key"], sleep=sleep) as client:
        client.http = TestClient(http.app, headers=auth)
        usages = [client.usage() for _ in range(4)]
    assert [u["client_id"] for u in usages] == [client_id] * 4
    assert waits and all(w >= 1 for w in waits)  # it waited as told instead of failing

    with VideoApiClient("http://testserver", auth["X-API-Key"], rate_limit_retries=0) as client:
        client.http = TestClient(http.app, headers=auth)
        with pytest.raises(ApiClientError) as error:
            for _ in range(4):
                client.usage()
    assert (error.value.status, error.value.code) == (429, "rate_limited")


def test_priority_is_kept_on_the_job_and_checked(limited, clip):
    services, http = limited
    client_id, auth = new_client(services, rate_limit=0)
    source = put_source(services, client_id, clip)
    batch = http.post("/v1/jobs", json={"source": source, "priority": "batch"}, headers=auth).json()
    interactive = http.post("/v1/jobs", json={"source": source}, headers=auth).json()
    assert (batch["priority"], interactive["priority"]) == ("batch", "interactive")
    bad = http.post("/v1/jobs", json={"source": source, "priority": "urgent"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "priority"
    # the workers' next pop for this client takes the interactive job first, though it came second
    popped = []
    while (next_job := services.jobs.fair.pop(f"t-{uuid.uuid4().hex}")) is not None:
        popped.append(next_job.job_id)
    mine = [job_id for job_id in popped if job_id in (batch["id"], interactive["id"])]
    assert mine == [interactive["id"], batch["id"]]


def test_usage_shows_active_jobs_limits_and_frames_today(limited, clip):
    services, http = limited
    client_id, auth = new_client(services, rate_limit=0, weight=3)
    source = put_source(services, client_id, clip)
    http.post("/v1/jobs", json={"source": source}, headers=auth)
    record_frames(services.jobs.store.redis, client_id, 1234)  # as the worker does for each job it runs
    usage = http.get("/v1/usage", headers=auth).json()
    assert usage["client_id"] == client_id
    assert usage["active_jobs"] == 1 and usage["queued_jobs"] == 1 and usage["frames_today"] == 1234
    assert usage["limits"] == {"max_active_jobs": 5, "rate_limit_per_s": 0.0, "rate_limit_burst": 0, "weight": 3.0}


def test_s3_trigger_records_an_object_over_the_quota_as_a_failed_job(limited, clip):
    services, http = limited
    owner, auth = new_client(services, rate_limit=0)
    storage = services.jobs.storage
    outcomes = []
    before = refused("quota_exceeded")
    for n in range(6):
        key = f"incoming/{owner}/clip{n}.mp4"
        storage.put_bytes(key, clip, "video/mp4")
        outcomes += handle_event(s3_event(storage.bucket, key, len(clip), f"00{n:016d}"), services)
    assert [o.get("error") for o in outcomes] == [None] * 5 + ["quota_exceeded"]
    assert refused("quota_exceeded") == before + 1
    failed = http.get(f"/v1/jobs/{outcomes[5]['job_id']}", headers=auth).json()  # visible to the client
    assert failed["status"] == "failed" and failed["error"]["code"] == "quota_exceeded"
    assert failed["source"].endswith(f"incoming/{owner}/clip5.mp4")


def test_keys_limits_command_overrides_a_keys_limits(limited, monkeypatch):
    from typer.testing import CliRunner

    from videoapi.cli import app as cli
    from videoapi.settings import get_settings

    services, http = limited
    _, auth = new_client(services)
    monkeypatch.setenv("VIDEOAPI_REDIS_URL", services.settings.redis_url)
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(cli, ["keys", "limits", auth["X-API-Key"], "--rate-limit", "0", "--weight", "2"])
        assert done.exit_code == 0, done.output
        time.sleep(services.settings.api_key_cache_s)  # the CLI is another process: the API sees it within this
        assert http.get("/v1/usage", headers=auth).json()["limits"]["weight"] == 2.0
        assert all(http.get("/v1/usage", headers=auth).status_code == 200 for _ in range(30))  # no rate limit now
        reset = CliRunner().invoke(cli, ["keys", "limits", auth["X-API-Key"], "--reset"])
        assert reset.exit_code == 0
        time.sleep(services.settings.api_key_cache_s)
        assert http.get("/v1/usage", headers=auth).json()["limits"]["weight"] == 1.0
        assert CliRunner().invoke(cli, ["keys", "limits", "vapi_unknown", "--weight", "2"]).exit_code != 0
    finally:
        get_settings.cache_clear()


def test_a_key_record_is_reused_for_api_key_cache_s_and_a_revoked_key_stops_working_within_it(api_settings):
    """One lookup per key per api_key_cache_s in an API process; revoked elsewhere, refused once that has passed."""
    settings = api_settings.model_copy(update={"api_key_cache_s": 0.5, "client_rate_limit": 0.0})
    services = Services.from_settings(settings)
    http = TestClient(create_app(settings, services=services))
    elsewhere = ApiKeys(services.keys.redis)  # another API process, or the CLI
    key = elsewhere.create("cached-client")
    assert http.get("/v1/jobs", headers={"X-API-Key": key}).status_code == 200
    calls = Counter()
    original = services.keys.record_async  # the API's lookup (on the event loop)

    async def counted(aredis, k):
        calls["record"] += 1
        return await original(aredis, k)

    services.keys.record_async = counted
    for _ in range(20):
        assert http.get("/v1/jobs", headers={"X-API-Key": key}).status_code == 200
    assert calls["record"] == 0  # every one of them from the process's cache
    elsewhere.revoke(key)
    assert http.get("/v1/jobs", headers={"X-API-Key": key}).status_code == 200  # within api_key_cache_s
    time.sleep(0.6)
    refused_now = http.get("/v1/jobs", headers={"X-API-Key": key})
    assert refused_now.status_code == 401 and refused_now.json()["error"]["code"] == "unauthorized"
    assert calls["record"] == 1
    # revoked in this process: refused at once; an unknown key is never cached
    other = services.keys.create("cached-client")
    assert http.get("/v1/jobs", headers={"X-API-Key": other}).status_code == 200
    services.keys.revoke(other)
    assert http.get("/v1/jobs", headers={"X-API-Key": other}).status_code == 401
