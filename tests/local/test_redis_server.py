"""The emulator's embedded Redis: started means loaded, so nothing written at once meets LOADING."""

from __future__ import annotations

import time

import redis

from local.redis_server import RedisServer


def test_a_restart_over_a_large_aof_is_ready_only_once_loaded(tmp_path):
    server = RedisServer(data_dir=tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        value = b"x" * 2000
        for start in range(0, 100_000, 10_000):  # about 200 MB of AOF: a fraction of a second to load
            with client.pipeline(transaction=False) as pipe:
                for n in range(start, start + 10_000):
                    pipe.set(f"k{n}", value)
                pipe.execute()
        client.close()
    finally:
        server.stop(keep_data=True)
    started = time.monotonic()
    server.start(timeout_s=120)
    try:
        waited_s = time.monotonic() - started
        client = redis.Redis.from_url(server.url)
        assert client.set("written-at-once", "1")  # BusyLoadingError before the fix
        assert client.dbsize() == 100_001
        print(f"ready after {waited_s:.2f} s")
        client.close()
    finally:
        server.stop()
