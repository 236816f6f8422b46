"""The one Redis client factory: the API, the workers, the CLI and the job store all connect through it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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


def text(value: bytes | str | None) -> str | None:
    """A reply as text: the factory's clients decode replies; the typing of redis-py allows bytes too."""
    return value.decode() if isinstance(value, bytes) else value


def texts(values: Iterable[Any]) -> list[str]:
    """Members or keys (of a set, list or sorted set) as text."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def text_hash(mapping: Mapping[Any, Any]) -> dict[str, str]:
    """A hash (HGETALL) as text."""
    return {str(text(k)): str(text(v)) for k, v in mapping.items()}
