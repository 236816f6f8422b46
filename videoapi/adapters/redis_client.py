"""The one Redis client factory: the API, the workers, the CLI and the job store all connect through it."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry


def redis_client(url: str, ride_out_s: float = 0.0, socket_timeout_s: float = 10.0) -> redis.Redis:
    """A client that fails fast (API: answer 503) or, with ride_out_s, retries through a restart (workers)."""
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=int(ride_out_s / 2) + 1 if ride_out_s else 0)
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=2,
        retry=retry,
        retry_on_error=[ConnectionError, TimeoutError],
    )
