"""The API's asyncio Redis client against the embedded Redis: one client per running event loop."""

from __future__ import annotations

import asyncio
import gc

import redis

from videoapi.adapters.redis_client import AsyncRedis
from videoapi.settings import Settings


def test_loops_that_ended_leave_no_connection_open(redis_url):
    """A loop a request (a TestClient outside `with`): the ended loops' clients are let go, their sockets closed."""
    aredis = AsyncRedis(Settings(redis_url=redis_url))
    watcher = redis.Redis.from_url(redis_url)
    before = watcher.info("clients")["connected_clients"]

    async def ping() -> bool:
        return bool(await aredis().ping())

    assert all(asyncio.run(ping()) for _ in range(300))
    gc.collect()
    assert watcher.info("clients")["connected_clients"] - before < 10  # was 300: one for each loop, for good
    watcher.close()
