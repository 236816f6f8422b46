"""Idempotency markers: one job per Idempotency-Key (or ClientRequestToken), one job per S3 event."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from videoapi.adapters.redis_client import text
from videoapi.domain import redis_keys
from videoapi.errors import Conflict

T = TypeVar("T")


def wait_until_made(fetch: Callable[[], T], missing: type[Exception], timeout_s: float, poll_s: float) -> T:
    """What a concurrent request with the same key is still making: `fetch` again while it raises `missing`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fetch()
        except missing:
            if time.monotonic() > deadline:
                raise
            time.sleep(poll_s)


class IdempotencyMarkers:
    """Markers in Redis that live `ttl_s`: the first request claims a key, later ones find its job."""

    def __init__(self, client: redis.Redis, ttl_s: int):
        self.redis, self.ttl_s = client, ttl_s

    def claim(self, client_id: str, idempotency_key: str, made_id: str, fingerprint: str) -> str | None:
        """None when this request now holds the key; else the id (a job's or a batch's) made for the same request
        that came first. 409 idempotency_key_reused when that request was another one."""
        marker = redis_keys.idempotency(client_id, idempotency_key)
        if self.redis.set(marker, json.dumps({"job_id": made_id, "fingerprint": fingerprint}), nx=True, ex=self.ttl_s):
            return None
        existing = json.loads(self.redis.get(marker) or "{}")
        if existing.get("fingerprint", "") != fingerprint:
            raise Conflict(
                "idempotency_key_reused", "this Idempotency-Key was used with a different request", "Idempotency-Key"
            )
        return str(existing.get("job_id", ""))

    def release(self, client_id: str, idempotency_key: str) -> None:
        """Nothing was created under the key: the same key may be tried again."""
        self.redis.delete(redis_keys.idempotency(client_id, idempotency_key))

    def claim_event(self, bucket: str, key: str, sequencer: str, job_id: str) -> str | None:
        """None when this S3 event is new (now claimed for `job_id`); else the job made for it before."""
        marker = redis_keys.s3_event(bucket, key, sequencer)
        if self.redis.set(marker, job_id, nx=True, ex=self.ttl_s):
            return None
        return text(self.redis.get(marker))

    def release_event(self, bucket: str, key: str, sequencer: str) -> None:
        """No job was made for the event: its next delivery makes one."""
        self.redis.delete(redis_keys.s3_event(bucket, key, sequencer))
