"""Job records in Redis: one hash per job, status that only moves forward, progress by frames."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis
import redis.asyncio

from videoapi.adapters.redis_client import redis_client, text, text_hash, texts
from videoapi.domain import redis_keys
from videoapi.errors import JobNotFound


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


# Status moves only forward (queued -> running -> succeeded|failed|cancelled), and a finished job never changes:
# a redelivered task cannot turn a success back into "running". A finished job leaves its client's active set.
_ADVANCE = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return -1 end
local rank = {queued=0, running=1, succeeded=2, failed=2, cancelled=2}
if rank[current] >= 2 or rank[ARGV[1]] < rank[current] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
if rank[ARGV[1]] >= 2 then
  -- a finished job no longer counts to its client's quota (videoapi.domain.fairness)
  local client = redis.call('HGET', KEYS[1], 'client_id') or ''
  redis.call('SREM', ACTIVE_JOBS_PREFIX .. client, redis.call('HGET', KEYS[1], 'id'))
end
return 1
""".replace("ACTIVE_JOBS_PREFIX", repr(redis_keys.ACTIVE_JOBS_PREFIX))


# Progress never moves back either: a redelivered job starts counting again from zero.
# Both progress scripts return the status, so a worker learns of a cancellation at no extra round trip. A record
# that is gone (a Redis that lost its data) is not made again with a count alone: the worker is told `cancelled`
# and stops, writing nothing.
_PROGRESS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'cancelled' end
local current = tonumber(redis.call('HGET', KEYS[1], 'frames_done') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'frames_done', ARGV[1]) end
return redis.call('HGET', KEYS[1], 'status')
"""

_ADD_PROGRESS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'cancelled' end
redis.call('HINCRBY', KEYS[1], 'frames_done', ARGV[1])
return redis.call('HGET', KEYS[1], 'status')
"""


POSTPROCESS_FIELD = "postprocess"  # a job's record: "1" or "0"; absent (older jobs): the setting


def new_job_id() -> str:
    """Unguessable: 128 random bits."""
    return "job_" + secrets.token_hex(16)


@dataclass
class Job:
    id: str
    status: JobStatus
    bucket: str
    key: str
    threshold: float
    created_at: float
    client_id: str = ""
    tag: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    frames_done: int = 0
    frames_total: int = 0
    error_code: str = ""
    error_message: str = ""
    result_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> float:
        if self.status == JobStatus.succeeded:
            return 100.0
        if not self.frames_total:
            return 0.0
        # 100 means done: a redelivered segment can count frames twice, so stay below until the job succeeds
        return round(min(99.9, 100.0 * self.frames_done / self.frames_total), 1)

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Job:
        def num(name: str) -> float | None:
            value = data.get(name)
            return float(value) if value not in (None, "") else None

        known = {
            "id",
            "status",
            "bucket",
            "key",
            "threshold",
            "created_at",
            "client_id",
            "tag",
            "started_at",
            "finished_at",
            "frames_done",
            "frames_total",
            "error_code",
            "error_message",
            "result_key",
        }
        return cls(
            id=data["id"],
            status=JobStatus(data["status"]),
            bucket=data.get("bucket", ""),
            key=data.get("key", ""),
            threshold=float(data.get("threshold", 0.5)),
            created_at=float(data["created_at"]),
            client_id=data.get("client_id", ""),
            tag=data.get("tag", ""),
            started_at=num("started_at"),
            finished_at=num("finished_at"),
            frames_done=int(data.get("frames_done") or 0),
            frames_total=int(data.get("frames_total") or 0),
            error_code=data.get("error_code", ""),
            error_message=data.get("error_message", ""),
            result_key=data.get("result_key", ""),
            extra={k: v for k, v in data.items() if k not in known},
        )


class JobStore:
    """Jobs in Redis under `job:<id>`; safe to share between API handlers and workers."""

    def __init__(self, client: redis.Redis, ttl_s: int = 30 * 24 * 3600):
        self.redis = client
        self.ttl_s = ttl_s
        self._advance = client.register_script(_ADVANCE)
        self._progress = client.register_script(_PROGRESS)
        self._add_progress = client.register_script(_ADD_PROGRESS)

    @classmethod
    def from_url(cls, url: str, ride_out_s: float = 0.0) -> JobStore:
        """A store on its own connection pool; `ride_out_s` > 0 retries through a Redis restart that long."""
        return cls(redis_client(url, ride_out_s))

    def field(self, job_id: str, name: str) -> str | None:
        """One field of the job's record (None when absent)."""
        return text(self.redis.hget(redis_keys.job(job_id), name))

    def set_field(self, job_id: str, name: str, value: str) -> None:
        self.redis.hset(redis_keys.job(job_id), name, value)

    def set_once(self, job_id: str, name: str) -> bool:
        """Mark `name` on the job; True only for the first caller (to do something once per job)."""
        return bool(self.redis.hsetnx(redis_keys.job(job_id), name, "1"))

    def claim(self, job_id: str, name: str, owner: str) -> bool:
        """Mark `name` on the job as `owner`'s; True for the first owner and for that owner again (a retry)."""
        key = redis_keys.job(job_id)
        return bool(self.redis.hsetnx(key, name, owner)) or text(self.redis.hget(key, name)) == owner

    def add_to_field(self, job_id: str, name: str, amount: int) -> int:
        return int(self.redis.hincrby(redis_keys.job(job_id), name, amount))

    def create(
        self,
        *,
        bucket: str,
        key: str,
        threshold: float,
        client_id: str = "",
        tag: str = "",
        job_id: str | None = None,
        queue_with: Callable[[redis.client.Pipeline], object] | None = None,
        **extra: str,
    ) -> Job:
        """Store a queued job; `queue_with` adds its place in a queue to the same transaction (both or neither)."""
        job = Job(
            id=job_id or new_job_id(),
            status=JobStatus.queued,
            bucket=bucket,
            key=key,
            threshold=threshold,
            created_at=time.time(),
            client_id=client_id,
            tag=tag,
            extra={name: str(value) for name, value in extra.items()},
        )
        fields: dict[Any, str | float] = {  # Any keys: redis-py's mapping type is invariant in them
            "id": job.id,
            "status": job.status.value,
            "bucket": bucket,
            "key": key,
            "threshold": threshold,
            "created_at": job.created_at,
            "client_id": client_id,
            "tag": tag,
            **extra,
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(redis_keys.job(job.id), mapping=fields)
            pipe.expire(redis_keys.job(job.id), self.ttl_s)
            pipe.zadd(redis_keys.client_jobs(client_id), {job.id: job.created_at})
            if queue_with is not None:
                queue_with(pipe)
            pipe.execute()
        return job

    def delete(self, job_id: str, client_id: str) -> None:
        """Remove a job that was never accepted (its submission failed before it was queued)."""
        with self.redis.pipeline() as pipe:
            pipe.delete(redis_keys.job(job_id))
            pipe.zrem(redis_keys.client_jobs(client_id), job_id)
            pipe.execute()

    def list_for(self, client_id: str, limit: int = 50) -> list[Job]:
        """A client's jobs, newest first (those whose records have expired are skipped)."""
        ids = texts(self.redis.zrevrange(redis_keys.client_jobs(client_id), 0, limit - 1))
        with self.redis.pipeline() as pipe:
            for job_id in ids:
                pipe.hgetall(redis_keys.job(job_id))
            records = pipe.execute()
        return [Job.from_hash(text_hash(r)) for r in records if r]

    def get(self, job_id: str) -> Job:
        data = text_hash(self.redis.hgetall(redis_keys.job(job_id)))
        if not data:
            raise JobNotFound(job_id)
        return Job.from_hash(data)

    @staticmethod
    async def get_async(aredis: redis.asyncio.Redis, job_id: str) -> Job:
        """As `get`, on the event loop with an asyncio client (status polling: no thread hop)."""
        data = text_hash(await aredis.hgetall(redis_keys.job(job_id)))
        if not data:
            raise JobNotFound(job_id)
        return Job.from_hash(data)

    def _move(self, job_id: str, status: JobStatus, **fields: object) -> bool:
        args = [status.value]
        for name, value in fields.items():
            args += [name, "" if value is None else str(value)]
        result = int(self._advance(keys=[redis_keys.job(job_id)], args=args))
        if result == -1:
            raise JobNotFound(job_id)
        return result == 1

    def start(self, job_id: str, frames_total: int) -> bool:
        """queued|running -> running; False if the job already finished (a late redelivery)."""
        return self._move(job_id, JobStatus.running, started_at=time.time(), frames_total=frames_total)

    def set_progress(self, job_id: str, frames_done: int) -> JobStatus:
        """Raise frames_done to at least `frames_done`; returns the job's status."""
        return JobStatus(self._progress(keys=[redis_keys.job(job_id)], args=[frames_done]))

    def add_progress(self, job_id: str, frames: int) -> JobStatus:
        return JobStatus(self._add_progress(keys=[redis_keys.job(job_id)], args=[frames]))

    def succeed(self, job_id: str, result_key: str) -> bool:
        return self._move(job_id, JobStatus.succeeded, finished_at=time.time(), result_key=result_key)

    def fail(self, job_id: str, code: str, message: str) -> bool:
        return self._move(job_id, JobStatus.failed, finished_at=time.time(), error_code=code, error_message=message)

    def cancel(self, job_id: str) -> bool:
        """queued|running -> cancelled; False if the job had already finished."""
        return self._move(job_id, JobStatus.cancelled, finished_at=time.time())
