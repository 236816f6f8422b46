"""The worker's metrics, traces and logs: Celery signal handlers and the job-level measurements."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from celery.signals import worker_init, worker_process_init, worker_process_shutdown

from videoapi.adapters.queue import DETECT_TASK, NEXT_JOB_TASK, QUEUE
from videoapi.domain.jobs import Job, JobStatus, JobStore
from videoapi.errors import VideoRejected
from videoapi.observability import metrics
from videoapi.observability.logging import configure_logging
from videoapi.observability.tracing import configure_tracing, shutdown_tracing
from videoapi.settings import Settings

log = logging.getLogger(__name__)
_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def remove_dead_processes_files(directory: str | Path) -> int:
    """Delete multiprocess files left by processes no longer alive (a previous run's); how many went."""
    removed = 0
    for path in Path(directory).glob("*.db"):
        match = _PID_IN_NAME.search(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_worker_observability(settings: Settings) -> int | None:
    """In the worker's main process, before the pool forks: logs, stale metric files, the /metrics server."""
    configure_logging(settings.log_format, settings.log_level)
    directory = os.environ.get(metrics.MULTIPROC_ENV)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        remove_dead_processes_files(directory)
    else:
        log.warning("%s is not set: pool processes' metrics will not be served", metrics.MULTIPROC_ENV)
    store = JobStore.from_url(settings.redis_url)
    try:
        port = metrics.serve(settings.worker_metrics_port, metrics.QueueDepthCollector(store.redis, QUEUE))
    except OSError as exc:  # the port is taken: the worker still works, unobserved, and says so
        log.error("worker metrics not served on port %d: %s", settings.worker_metrics_port, exc)
        return None
    log.info("worker metrics at http://0.0.0.0:%d/metrics", port)
    return port


def observe_task_start(store: JobStore, task_name: str, job_id: str, retries: int) -> None:
    """Queue wait, once per job: when the entry task first finds it queued."""
    log.info("task %s started (retries: %d)", task_name, retries)
    if task_name not in (DETECT_TASK, NEXT_JOB_TASK) or retries:  # a job's entry: direct or a token
        return
    try:
        job = store.get(job_id)
    except Exception:  # a missing job or Redis down: the task itself reports it; a metric never fails a job
        return
    if job.status == JobStatus.queued:
        metrics.QUEUE_WAIT.observe(max(0.0, time.time() - job.created_at))


def observe_task_error(exc: BaseException, code: str, transient: bool) -> None:
    metrics.TASK_ERRORS.labels(code, str(transient).lower()).inc()
    if isinstance(exc, VideoRejected) or isinstance(exc.__cause__, VideoRejected):
        metrics.DECODE_ERRORS.labels(code).inc()


def observe_frames(frames: int) -> None:
    """Frames this worker ran through the model (per node: frames/s on the dashboard)."""
    if frames > 0:
        metrics.FRAMES.inc(frames)


def observe_job_end(store: JobStore, job: Job) -> None:
    """Count a finished job exactly once across workers and redeliveries."""
    if not job.status.finished or not store.set_once(job.id, "metrics_counted"):
        return
    log.info(
        "job %s: %d frames in %.2fs",
        job.status.value if not job.error_code else f"{job.status.value} ({job.error_code})",
        job.frames_total,
        (job.finished_at or 0) - (job.started_at or job.finished_at or 0),
        extra={"job_id": job.id, "status": job.status.value, "error_code": job.error_code},
    )
    metrics.observe_job_finished(
        job.status.value, job.error_code, job.started_at, job.finished_at, job.frames_total if job.started_at else 0
    )


@worker_init.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _on_worker_init(sender: Any = None, **_: Any) -> None:  # sender: the WorkController
    start_worker_observability(sender.app.conf.videoapi_settings)


@worker_process_init.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _on_pool_process_init(**_: Any) -> None:
    # after the fork: the span exporter's thread must be started in the process that uses it
    configure_tracing("videoapi-worker")


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _on_pool_process_shutdown(pid: int | None = None, **_: Any) -> None:
    shutdown_tracing()
    metrics.mark_process_dead(pid or os.getpid())
