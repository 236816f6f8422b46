"""The Celery application: Redis broker and result backend, settings for long GPU jobs.

Run a worker with: celery -A workers.celery_app worker --concurrency 2
"""

from __future__ import annotations

import ctypes
from typing import Any

from celery import Celery
from celery.signals import worker_init

from videoapi.adapters.redis_client import redis_transport_options
from videoapi.settings import Settings, get_settings
from workers import observability  # noqa: F401  (connects the worker's metrics, traces and logs to its signals)
from workers.consumer_watchdog import ConsumerWatchdog

M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for this process and the pool processes it forks; False where it cannot.

    glibc gives each busy thread (S3 transfers, the decoder's, inference calls) an arena of its own, up to
    8 per core, and seldom returns their free memory: a long-lived worker's RSS then climbs with the
    number of tasks it has run. Two arenas kept a 60-minute job at 253 MiB instead of 364 (bench/memory.py).
    """
    if arenas <= 0:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to cap
        return False
    changed: int = libc.mallopt(M_ARENA_MAX, arenas)  # ctypes: a C int, 1 on success
    return changed == 1


def create_app(settings: Settings) -> Celery:
    app = Celery("videoapi", broker=settings.redis_url, backend=settings.redis_url, include=["workers.tasks"])
    network = redis_transport_options(settings)
    app.conf.update(
        task_acks_late=True,  # a job is acknowledged when it is done, not when it is taken
        task_reject_on_worker_lost=True,  # a killed worker's job goes back to the queue
        worker_prefetch_multiplier=1,  # long tasks: take one at a time
        # the broker's and the result backend's sockets: the same timeouts and keepalive as the job store's
        broker_transport_options={**network, "visibility_timeout": settings.visibility_timeout_s},
        result_backend_transport_options={**network, "visibility_timeout": settings.visibility_timeout_s},
        redis_socket_timeout=settings.redis_socket_timeout_s,
        redis_socket_connect_timeout=settings.redis_connect_timeout_s,
        redis_socket_keepalive=True,
        redis_retry_on_timeout=True,
        redis_backend_health_check_interval=settings.redis_health_check_s,
        result_expires=24 * 3600,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=max(1, settings.task_time_limit_s - 60),
        task_track_started=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # jobs are idempotent: a task running when Redis drops finishes (its store retries through the
        # outage) and the redelivered copy is skipped; cancelling it would throw the work away
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        task_default_queue="shots",
    )
    app.conf.videoapi_settings = settings
    app.steps["consumer"].add(ConsumerWatchdog)
    return app


app = create_app(get_settings())


@worker_init.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _cap_malloc_arenas(**_: Any) -> None:
    # in the worker's main process, before the pool forks: the children inherit the cap
    limit_malloc_arenas(app.conf.videoapi_settings.worker_malloc_arenas)
