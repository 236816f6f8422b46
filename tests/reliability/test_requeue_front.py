"""A lost worker's task, sent again by the reaper, goes first in line: not behind the whole queue."""

from __future__ import annotations

import json

import pytest

from videoapi.adapters.queue import QUEUE, move_to_front
from videoapi.adapters.redis_client import redis_client
from videoapi.settings import Settings
from workers.celery_app import create_app

pytestmark = [pytest.mark.reliability]


def test_the_task_sent_again_is_the_next_one_a_worker_takes(redis_url):
    base = redis_url.rsplit("/", 1)[0]
    settings = Settings(redis_url=f"{base}/12")
    client = redis_client(settings.redis_url)
    client.delete(QUEUE)
    app = create_app(settings)
    try:
        for n in range(5):
            app.send_task("videoapi.run_next_job", task_id=f"waiting-{n}", queue=QUEUE)
        app.send_task("videoapi.run_next_job", task_id="reaped", queue=QUEUE)  # the reaper's send
        assert move_to_front(client, "reaped")
        # kombu's Redis transport sends with LPUSH and workers take with BRPOP: the right end is next
        taken = [json.loads(client.rpop(QUEUE))["headers"]["id"] for _ in range(6)]
        assert taken == ["reaped", *(f"waiting-{n}" for n in range(5))]
        assert not move_to_front(client, "not-sent")  # a task not in the queue: nothing moves
    finally:
        client.delete(QUEUE)
        app.close()
