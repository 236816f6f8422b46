"""Sending work to the Celery workers by task name: the API side never imports the workers."""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery

# the Celery task names and the queue, named once (workers/tasks.py registers them under these names)
DETECT_TASK = "videoapi.detect_shots"
SEGMENT_TASK = "videoapi.detect_segment"
STITCH_TASK = "videoapi.stitch_segments"
CLIPS_TASK = "videoapi.make_clips"
NEXT_JOB_TASK = "videoapi.run_next_job"  # a token: the worker running it pops the next job fairly
CALLBACK_TASK = "videoapi.deliver_callback"
REKOGNITION_NOTIFY_TASK = "videoapi.publish_rekognition_completion"
QUEUE = "shots"


class _Sent:
    """What send_task hands back here: the task's id alone. Celery's AsyncResult would look up the result backend,
    which Celery keeps per thread unless it is thread-safe (the API has none: a DisabledBackend): every new thread
    of the API's pool paid a scan of the installed packages' entry points, 15% of a submit's time."""

    def __init__(self, task_id: str, *args: object, **kwargs: object) -> None:
        self.id = task_id
        self.ignored = True


class TaskQueue:
    def __init__(self, redis_url: str, visibility_timeout_s: int, transport_options: dict[str, Any] | None = None):
        """`transport_options`: the broker sockets' timeouts and keepalive (redis_client.redis_transport_options)."""
        self.app = Celery("videoapi-api", broker=redis_url)
        self.app.conf.update(
            broker_transport_options={**(transport_options or {}), "visibility_timeout": visibility_timeout_s},
            broker_connection_retry_on_startup=False,
            broker_connection_max_retries=1,
            task_serializer="json",
            task_ignore_result=True,
        )
        # built now, not on the first submit: the producer pool imports the Redis transport (no connection yet)
        self.app.producer_pool  # noqa: B018

    def enqueue_detection(self, job_id: str) -> None:
        self._send(DETECT_TASK, job_id)

    def enqueue_clips(self, job_id: str) -> None:
        self._send(CLIPS_TASK, job_id)

    def enqueue_token(self) -> None:
        """One more job waits in the per-client lists (videoapi.domain.fairness): one more token for the workers."""
        self._send(NEXT_JOB_TASK)

    def _send(self, task: str, *args: str) -> None:
        self.app.send_task(
            task,
            args=list(args),
            queue=QUEUE,
            ignore_result=True,  # and no AsyncResult (_Sent): nothing here reads a result
            result_cls=_Sent,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )

    def close(self) -> None:
        self.app.close()


# KEYS: the queue's list; ARGV: a task id. Kombu's Redis transport LPUSHes what it sends and workers BRPOP the
# other end: the message found near the sending end moves to the taking end.
_TO_FRONT = """
local items = redis.call('LRANGE', KEYS[1], 0, 999)
for _, message in ipairs(items) do
  if string.find(message, ARGV[1], 1, true) then
    redis.call('LREM', KEYS[1], 1, message)
    redis.call('RPUSH', KEYS[1], message)
    return 1
  end
end
return 0
"""


def move_to_front(client: redis.Redis, task_id: str, queue: str = QUEUE) -> bool:
    """Put a task just sent to `queue` first in line (a lost worker's task: it had its turn already)."""
    return bool(client.eval(_TO_FRONT, 1, queue, f'"{task_id}"'))
