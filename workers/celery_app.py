"""The Celery application: Redis broker and result backend, settings for long GPU jobs.

Run a worker with: celery -A workers.celery_app worker --concurrency 2
"""

from __future__ import annotations

from celery import Celery

from videoapi.settings import Settings, get_settings


def create_app(settings: Settings) -> Celery:
    app = Celery("videoapi", broker=settings.redis_url, backend=settings.redis_url, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,  # a job is acknowledged when it is done, not when it is taken
        task_reject_on_worker_lost=True,  # a killed worker's job goes back to the queue
        worker_prefetch_multiplier=1,  # long tasks: take one at a time
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout_s},
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
    return app


app = create_app(get_settings())
