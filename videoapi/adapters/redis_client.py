"""The one Redis client factory: the API, the workers, the CLI and the job store all connect through it."""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

if TYPE_CHECKING:
    from videoapi.settings import Settings


def keepalive_options(idle_s: int) -> dict[int, int]:
    """TCP keepalive for a socket: probe after `idle_s` idle, then every third of it; dead after 3 unanswered."""
    wanted = {"TCP_KEEPIDLE": idle_s, "TCP_KEEPINTVL": max(1, idle_s // 3), "TCP_KEEPCNT": 3}
    # Linux has all three; other systems name some differently: those are left at the system's default
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def redis_client(
    url: str,
    ride_out_s: float = 0.0,
    socket_timeout_s: float = 10.0,
    *,
    connect_timeout_s: float = 2.0,
    keepalive_s: int = 10,
    health_check_s: float = 15.0,
) -> redis.Redis:
    """A client that fails fast (API: answer 503) or, with ride_out_s, retries through a restart (workers)."""
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=int(ride_out_s / 2) + 1 if ride_out_s else 0)
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        socket_keepalive=True,
        socket_keepalive_options=keepalive_options(keepalive_s),
        health_check_interval=health_check_s,
        retry=retry,
        retry_on_error=[ConnectionError, TimeoutError],
    )


def redis_client_for(settings: Settings, *, api: bool = False) -> redis.Redis:
    """The settings' client: the API's fails fast (503), a worker's rides out redis_ride_out_s."""
    return redis_client(
        settings.redis_url,
        ride_out_s=0.0 if api else settings.redis_ride_out_s,
        socket_timeout_s=settings.api_redis_socket_timeout_s if api else settings.redis_socket_timeout_s,
        connect_timeout_s=settings.redis_connect_timeout_s,
        keepalive_s=settings.redis_keepalive_s,
        health_check_s=settings.redis_health_check_s,
    )


class AsyncRedis:
    """The API's client for reads on the event loop (no thread hop): one per running loop, from the same settings.

    Per loop because an asyncio connection belongs to the loop that opened it: a test's TestClient, a Lambda
    invocation or a restarted server runs another loop over the same services.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # forget the clients of loops that have ended: each holds its loop through its connections, so the weak
            # keys alone never let go, and every ended loop (a TestClient's request) kept a socket open to Redis
            for ended in [other for other in self._clients if other.is_closed()]:
                del self._clients[ended]
            settings = self.settings
            # as the API's sync client: fails fast (503), the same timeouts and keepalive
            client = self._clients[loop] = redis.asyncio.Redis.from_url(
                settings.redis_url,
                decode_responses=True,
                socket_timeout=settings.api_redis_socket_timeout_s,
                socket_connect_timeout=settings.redis_connect_timeout_s,
                socket_keepalive=True,
                socket_keepalive_options=keepalive_options(settings.redis_keepalive_s),
                health_check_interval=settings.redis_health_check_s,
                retry=AsyncRetry(NoBackoff(), 0),
            )
        return client


def redis_transport_options(settings: Settings, *, api: bool = False) -> dict[str, Any]:
    """Kombu's Redis transport options (the broker's sockets) from the same settings as redis_client_for."""
    return {
        "socket_timeout": settings.api_redis_socket_timeout_s if api else settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive_options(settings.redis_keepalive_s),
        "health_check_interval": settings.redis_health_check_s,
        "retry_on_timeout": True,
    }


def text(value: bytes | str | None) -> str | None:
    """A reply as text: the factory's clients decode replies; the typing of redis-py allows bytes too."""
    return value.decode() if isinstance(value, bytes) else value


def texts(values: Iterable[Any]) -> list[str]:
    """Members or keys (of a set, list or sorted set) as text."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def text_hash(mapping: Mapping[Any, Any]) -> dict[str, str]:
    """A hash (HGETALL) as text."""
    return {str(text(k)): str(text(v)) for k, v in mapping.items()}
