"""The API under fuzzing: real Redis (a database of its own) and moto S3 from tests/conftest.py, no Triton.

One client, `fuzzer`, owns an upload and a job in each state, so that generated requests reach past "not found":
`known` holds their keys and ids for the tests to mix into what Hypothesis draws.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

from videoapi.domain import redis_keys
from videoapi.domain.jobs import JobStatus
from videoapi.domain.result import PROBABILITY_ARRAYS, RESULT_SCHEMA, ResultKeys, npz_bytes
from videoapi.domain.submission import SubmitRequest
from videoapi.pipeline.shots import ShotList
from videoapi.settings import Settings

CLIENT = "fuzzer"
FPS = 25.0


@dataclass(frozen=True)
class Known:
    """What the fuzzer's client owns: its keys, an uploaded object, and jobs queued, finished, failed."""

    key: str  # an API key without a rate limit
    tight_key: str  # the same client's key with a rate limit of 1/s and one active job: 429s
    upload: str  # an object key among the client's uploads
    queued: str
    succeeded: str
    failed: str

    @property
    def job_ids(self) -> tuple[str, ...]:
        return (self.queued, self.succeeded, self.failed)


@pytest.fixture(scope="session")
def fuzz_settings(redis_url, s3_endpoint) -> Settings:
    from videoapi.adapters.storage import Storage

    base = redis_url.rsplit("/", 1)[0]
    settings = Settings(
        redis_url=f"{base}/7",
        s3_endpoint_url=s3_endpoint,
        bucket="videoapi-fuzz",
        client_rate_limit=0,  # the valid key's requests are all served (the tight key has a limit of its own)
        direct_upload_max_bytes=64 * 1024,
        rekognition_at_root=True,
    )
    Storage.from_settings(settings).ensure_bucket()
    return settings


@pytest.fixture(scope="session")
def fuzz_services(fuzz_settings):
    from functions.deps import Services

    services = Services.from_settings(fuzz_settings)
    services.jobs.store.redis.flushdb()  # a session's database of its own: every job in it is the fuzzer's
    return services


def _resolve(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
    """getaddrinfo without a network: IDNA-encodes a name as the real one does (UnicodeError for a name it
    cannot encode) and answers a public address, so that callback URLs are checked the same on any machine."""
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        host.encode("idna")
        address = "93.184.215.14"
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


@pytest.fixture(scope="session")
def fuzz_app(fuzz_settings, fuzz_services):
    from functions.app import create_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("videoapi.domain.validation.socket.getaddrinfo", _resolve)
        yield create_app(fuzz_settings, services=fuzz_services)


def _result_document(job_id: str, source: str, keys: ResultKeys) -> dict:
    """A finished job's shots.json, in the shape the worker writes (cuts at frames 60 and 150 of 250)."""
    probabilities = np.zeros(250, np.float32)
    probabilities[[59, 60, 149]] = [0.7, 0.96, 0.55]
    shots = ShotList.from_predictions(probabilities, fps=FPS, threshold=0.5).to_dicts()
    return {
        "schema": RESULT_SCHEMA,
        "job_id": job_id,
        "video": {"source": source, "fps": FPS, "frame_count": 250, "duration": 10.0, "width": 64, "height": 36},
        "threshold": 0.5,
        "shot_count": len(shots),
        "postprocess": False,
        "shots": [{**shot, "keyframe": shot["start_frame"]} for shot in shots],
        "transitions": [],
        "probabilities": {"key": keys.probabilities, "format": "npz", "arrays": list(PROBABILITY_ARRAYS)},
        "previews": {
            "overview": {"key": keys.overview, "stride": 1, "columns": 1, "tiles": 1},
            "thumbnails": {"key": keys.thumbnails, "keyframes": [shot["start_frame"] for shot in shots]},
        },
    }


@pytest.fixture(scope="session")
def known(fuzz_services) -> Known:
    services = fuzz_services
    key, tight_key = services.keys.create(CLIENT), services.keys.create(CLIENT)
    services.keys.set_limits(tight_key, rate_limit=1, max_active_jobs=1)
    upload = services.uploads.direct_upload(CLIENT, "clip.mp4", "video/mp4", b"\x00" * 1024)["key"]
    storage, store = services.jobs.storage, services.jobs.store
    jobs = [services.jobs.submit(CLIENT, SubmitRequest(source=upload, tag=f"seed {i}"))[0].id for i in range(3)]
    queued, succeeded, failed = jobs
    keys = ResultKeys.under(f"results/{succeeded}/")
    document = _result_document(succeeded, f"s3://{storage.bucket}/{upload}", keys)
    single = np.zeros(250, np.float32)
    storage.put_bytes(keys.probabilities, npz_bytes(single_frame=single, many_hot=single), "application/octet-stream")
    storage.put_bytes(keys.overview, b"\x89PNG\r\n\x1a\n", "image/png")
    storage.put_bytes(keys.thumbnails, b"\xff\xd8\xff\xd9", "image/jpeg")
    storage.put_bytes(keys.shots, json.dumps(document).encode(), "application/json")
    store.start(succeeded, 250)
    store.succeed(succeeded, keys.shots)
    store.fail(failed, "not_a_video", "the file is not a video")
    return Known(key, tight_key, upload, queued, succeeded, failed)


def half_made_jobs(services) -> list[str]:
    """Every way a job can be left half made, as found in the fuzzer's Redis database ([] when none).

    A queued job is in its client's fair queue and quota; each fair-queue entry is a job with a worker token
    behind it; each quota place is an unfinished job; each idempotency marker names a job that exists.
    """
    redis = services.jobs.store.redis
    store = services.jobs.store
    problems = []
    jobs = {}
    for name in redis.scan_iter(match=f"{redis_keys.JOB_PREFIX}*"):
        job_id = name.removeprefix(redis_keys.JOB_PREFIX)
        jobs[job_id] = store.get(job_id)
    queued_entries: Counter[str] = Counter()
    for name in redis.scan_iter(match=f"{redis_keys.FAIR_QUEUE_PREFIX}*"):
        queued_entries.update(redis.lrange(name, 0, -1))
    active = {
        entry for name in redis.scan_iter(match=f"{redis_keys.ACTIVE_JOBS_PREFIX}*") for entry in redis.smembers(name)
    }
    for job_id, job in jobs.items():
        if job.status == JobStatus.queued and queued_entries[job_id] != 1:
            problems.append(f"{job_id} is queued but {queued_entries[job_id]} times in the fair queue")
        if job.status == JobStatus.queued and job_id not in active:
            problems.append(f"{job_id} is queued but holds no place in its client's quota")
    problems += [f"{job_id} is in the fair queue but has no record" for job_id in queued_entries if job_id not in jobs]
    problems += [
        f"{job_id} holds a quota place but is {jobs[job_id].status.value if job_id in jobs else 'missing'}"
        for job_id in active
        if job_id not in jobs or jobs[job_id].status.finished
    ]
    tokens = redis.llen("shots")  # videoapi.adapters.queue.QUEUE: one worker token per fair-queue entry
    if tokens != sum(queued_entries.values()):
        problems.append(f"{tokens} worker tokens for {sum(queued_entries.values())} fair-queue entries")
    for name in redis.scan_iter(match="idem:*"):
        marker = json.loads(redis.get(name) or "{}")
        named = marker.get("job_id") or ""
        # POST /v1/batches keeps its markers beside the jobs': theirs name a batch
        exists = redis.exists(redis_keys.batch(named)) if named.startswith("batch_") else named in jobs
        if not exists:
            problems.append(f"idempotency marker {name} names no job or batch ({named})")
    return problems


@pytest.fixture(scope="session")
def half_made(fuzz_services):
    """Call it after requests: the half-made jobs they left ([] when none)."""
    return lambda: half_made_jobs(fuzz_services)
