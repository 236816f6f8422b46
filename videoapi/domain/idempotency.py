"""Idempotency markers: one job per Idempotency-Key (or ClientRequestToken), one job per S3 event."""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from videoapi.adapters.redis_client import text
from videoapi.domain import redis_keys


@dataclass(frozen=True)
class Claim:
    """Who holds an idempotency key: the job made for it and the request's fingerprint."""

    job_id: str
    fingerprint: str


class IdempotencyMarkers:
    """Markers in Redis that live `ttl_s`: the first request claims a key, later ones find its job."""

    def __init__(self, client: redis.Redis, ttl_s: int):
        self.redis, self.ttl_s = client, ttl_s

    def claim(self, client_id: str, idempotency_key: str, job_id: str, fingerprint: str) -> Claim | None:
        """None when this request now holds the key; else the claim of the request that came first."""
        marker = redis_keys.idempotency(client_id, idempotency_key)
        if self.redis.set(marker, json.dumps({"job_id": job_id, "fingerprint": fingerprint}), nx=True, ex=self.ttl_s):
            return None
        existing = json.loads(self.redis.get(marker) or "{}")
        return Claim(existing.get("job_id", ""), existing.get("fingerprint", ""))

    def release(self, client_id: str, idempotency_key: str) -> None:
        """Nothing was created under the key: the same key may be tried again."""
        self.redis.delete(redis_keys.idempotency(client_id, idempotency_key))

    def claim_event(self, bucket: str, key: str, sequencer: str, job_id: str) -> str | None:
        """None when this S3 event is new (now claimed for `job_id`); else the job made for it before."""
        marker = redis_keys.s3_event(bucket, key, sequencer)
        if self.redis.set(marker, job_id, nx=True, ex=self.ttl_s):
            return None
        return text(self.redis.get(marker))
