"""Task leases in Redis: a running task renews its lease; a reaper re-queues tasks whose lease lapsed.

Kombu's Redis transport redelivers an unacknowledged task only after the visibility timeout (hours, longer
than the longest job), so a worker lost mid-job would leave the job stuck that long. A lease lapses in
seconds instead. The visibility timeout stays as the last resort: it still redelivers a task if every
worker and its reaper were gone, and the job's forward-only status makes that late copy a no-op.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from videoapi.adapters.redis_client import text_hash, texts
from videoapi.domain import redis_keys
from videoapi.domain.jobs import JobStore

logger = logging.getLogger(__name__)

WORKER_LOST = "worker_lost"


class Drain:
    """Scale-in: a shutting-down worker marks itself draining; its tasks ask whether they still fit in the grace."""

    def __init__(self, client: redis.Redis, hostname: str):
        self.redis, self.hostname = client, hostname

    def begin(self, grace_s: float) -> None:
        """The worker got SIGTERM: its tasks have `grace_s` to finish."""
        self.redis.set(redis_keys.draining(self.hostname), repr(time.time() + grace_s), ex=int(grace_s) + 3600)

    def end(self) -> None:
        self.redis.delete(redis_keys.draining(self.hostname))

    def must_yield(self, eta_s: float) -> bool:
        """True when the worker is draining and `eta_s` more seconds of work would outlast its grace period."""
        deadline = self.redis.get(redis_keys.draining(self.hostname))
        return deadline is not None and time.time() + eta_s > float(deadline)


@dataclass(frozen=True)
class LeasedTask:
    """What the reaper needs to send a task again: its name, arguments and place in a chord."""

    task_id: str
    name: str
    job_id: str
    args: list[Any]
    options: dict[str, Any]

    @classmethod
    def from_record(cls, task_id: str, record: dict[str, str]) -> LeasedTask:
        return cls(task_id, record["name"], record["job_id"], json.loads(record["args"]), json.loads(record["options"]))


class LeaseBook:
    """Leases of running tasks, the count of workers each task has lost, and the reaper."""

    def __init__(self, store: JobStore, lease_s: float = 30.0, max_worker_losses: int = 3):
        self.store = store
        self.redis: redis.Redis = store.redis
        self.lease_s = lease_s
        self.max_worker_losses = max_worker_losses

    def acquire(self, task: LeasedTask, hostname: str, pid: int) -> bool:
        """Take the lease for a starting task; False when its workers died too often (the job is then failed).

        A record left behind by an earlier run that never released it means that run's worker died:
        that counts as a lost worker, like a lease the reaper found lapsed.
        """
        key = redis_keys.lease(task.task_id)
        left_running = self.redis.hget(key, "state") == "running"
        with self.redis.pipeline() as pipe:
            pipe.hset(
                key,
                mapping={
                    "name": task.name,
                    "job_id": task.job_id,
                    "args": json.dumps(task.args),
                    "options": json.dumps(task.options),
                    "state": "running",
                },
            )
            pipe.hincrby(key, "losses", 1 if left_running else 0)
            pipe.expire(key, 7 * 24 * 3600)
            pipe.zadd(redis_keys.LEASES, {task.task_id: time.time() + self.lease_s})
            pipe.hincrby(redis_keys.job(task.job_id), "attempts", 1)
            pipe.hset(redis_keys.job(task.job_id), "worker", json.dumps({"hostname": hostname, "pid": pid}))
            losses = pipe.execute()[1]
        if losses >= self.max_worker_losses:
            self.redis.hincrby(redis_keys.job(task.job_id), "attempts", -1)  # refused: this delivery never ran
            self.release(task.task_id)
            self.store.fail(
                task.job_id, WORKER_LOST, f"the worker running this job died {losses} times; the job is not retried"
            )
            return False
        return True

    def renew(self, task_id: str) -> bool:
        """Push the lease's expiry forward; False if it is no longer held (the reaper took it)."""
        return bool(self.redis.zadd(redis_keys.LEASES, {task_id: time.time() + self.lease_s}, xx=True, ch=True))

    def release(self, task_id: str) -> None:
        """The task ended (done, failed or retried by Celery): no one needs to re-queue it."""
        with self.redis.pipeline() as pipe:
            pipe.zrem(redis_keys.LEASES, task_id)
            pipe.delete(redis_keys.lease(task_id))
            pipe.execute()

    def reap(self, send: Callable[[LeasedTask], None]) -> list[LeasedTask]:
        """Re-queue (through `send`) every task whose lease lapsed; one reaper at a time, by a Redis lock."""
        lock = self.redis.lock(redis_keys.LEASES_REAPER_LOCK, timeout=max(5.0, self.lease_s), blocking=False)
        if not lock.acquire():
            return []
        requeued = []
        try:
            for task_id in texts(self.redis.zrangebyscore(redis_keys.LEASES, "-inf", time.time())):
                if not self.redis.zrem(redis_keys.LEASES, task_id):
                    continue  # renewed or released meanwhile
                record = text_hash(self.redis.hgetall(redis_keys.lease(task_id)))
                if not record:
                    continue
                task = LeasedTask.from_record(task_id, record)
                self.redis.hset(redis_keys.lease(task_id), "state", "requeued")
                losses = self.redis.hincrby(redis_keys.lease(task_id), "losses", 1)
                if losses >= self.max_worker_losses:
                    self.release(task_id)
                    self.store.fail(
                        task.job_id,
                        WORKER_LOST,
                        f"the worker running this job died {losses} times; the job is not retried",
                    )
                    logger.warning("job %s: its worker died %d times; failed as %s", task.job_id, losses, WORKER_LOST)
                    continue
                try:
                    send(task)
                except Exception:
                    # not sent (the broker unreachable): the lease goes back as lapsed, for the next beat
                    self.redis.hincrby(redis_keys.lease(task_id), "losses", -1)
                    self.redis.zadd(redis_keys.LEASES, {task_id: time.time()})
                    raise
                logger.info("job %s: task %s lost its worker; sent again", task.job_id, task_id)
                requeued.append(task)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                pass  # it expired while we reaped: harmless, reaping is idempotent
        return requeued


class Heartbeat:
    """A daemon thread that calls `beat` every `interval_s` until stopped; errors are left to the next beat."""

    def __init__(self, beat: Callable[[], object], interval_s: float):
        self._beat = beat
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lease-heartbeat")

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                self._beat()
            except redis.exceptions.RedisError as exc:  # Redis restarting: renewed at the next beat, before it lapses
                logger.info("lease heartbeat missed: %s", exc)
            except Exception:  # anything else (the broker refusing a re-send): the thread must outlive one beat
                logger.warning("lease heartbeat failed; trying again at the next beat", exc_info=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self._interval_s + 1)
