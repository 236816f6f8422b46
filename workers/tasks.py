"""Celery tasks: each a few lines over ShotDetector; retry and failure policy live here.

Over 300 lines because Celery's signals (worker start, drain, shutdown) and the tasks share the worker's
one detector and lease book; each task stays a few lines.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import Any, cast

import redis
from botocore.exceptions import BotoCoreError, ClientError
from celery import Task, chord
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutting_down

from videoapi.adapters.queue import (
    CALLBACK_TASK,
    CLIPS_TASK,
    DETECT_TASK,
    NEXT_JOB_TASK,
    QUEUE,
    REKOGNITION_NOTIFY_TASK,
    SEGMENT_TASK,
    STITCH_TASK,
    TaskQueue,
    move_to_front,
)
from videoapi.adapters.redis_client import redis_client_for
from videoapi.adapters.storage import Storage
from videoapi.adapters.triton import ShotModelClient
from videoapi.domain import callbacks
from videoapi.domain.batches import BatchService
from videoapi.domain.fairness import FairQueue, record_frames
from videoapi.domain.jobs import Job, JobStore
from videoapi.domain.leases import WORKER_LOST, Drain, Heartbeat, LeaseBook, LeasedTask
from videoapi.domain.rekognition_api import NOTIFICATION_FIELD, publish_completion
from videoapi.domain.submission import JobService
from videoapi.errors import CallbackFailed, ClipError, JobError, Preempted
from videoapi.observability.logging import job_context
from videoapi.pipeline.clips import ClipMaker, is_clips_job
from videoapi.pipeline.detection import Preempt, Segment, ShotDetector, as_job_error
from videoapi.pipeline.gpus import place_on_gpu, process_gpu
from videoapi.pipeline.scratch import sweep_scratch
from videoapi.settings import Settings
from workers import observability
from workers.celery_app import app

logger = logging.getLogger(__name__)


@cache
def detector() -> ShotDetector:
    """One per worker process: Redis, S3 and Triton connections are reused across tasks."""
    settings = app.conf.videoapi_settings

    def model() -> ShotModelClient:
        return ShotModelClient(
            settings.triton_url,
            model=settings.model_name,
            protocol=settings.triton_protocol,
            timeout_s=settings.triton_timeout_s,
            keepalive_s=settings.triton_keepalive_s,
            batch_windows=settings.batch_windows,
            shared_memory=settings.triton_shared_memory,
            gpu=process_gpu(),
        )

    store = JobStore(redis_client_for(settings))
    return ShotDetector(settings, store, Storage.from_settings(settings), model)


@cache
def fair_queue() -> FairQueue:
    return FairQueue(detector().store.redis)


def count_frames(job_id: str, frames: int) -> None:
    """This worker's frames counter, and the job's client's frames today (GET /v1/usage)."""
    observability.observe_frames(frames)
    client_id = detector().store.field(job_id, "client_id")
    if client_id is not None:
        record_frames(detector().store.redis, client_id, frames)


@cache
def batch_service() -> BatchService:
    """Counts a batch's items as they end and feeds the client's batches the room they free."""
    settings = app.conf.videoapi_settings
    queue = TaskQueue(settings.redis_url, settings.visibility_timeout_s)
    return BatchService(JobService(settings, detector().store, detector().storage, queue))


def batch_job_ended(job: Job, document: dict[str, Any] | None = None) -> None:
    """A job ended: its batch (if an item) counts it, and the client's batches feed the room it frees."""
    try:
        batch_service().job_ended(job, document)
    except Exception:  # GET /v1/batches/{id} counts an item whose end was missed, and feeds its batch
        logger.warning("job %s: its batch was not told of its end", job.id, exc_info=True)


# One thread per pool process tells the batches of its jobs' ends, in order, while the process takes its next task:
# the item's part of the table (an S3 PUT), its count and the feeding were ~30 ms of Redis and S3 round trips
# between one item and the next (bench/batch.py's own work per item). An end this thread never told (the process
# killed first) is what GET /v1/batches/{id} already counts and feeds.
_BATCH_ENDS = ThreadPoolExecutor(1, thread_name_prefix="batch-end")


def tell_batch(job: Job, in_worker: bool) -> None:
    """Hand the ended job to its batch: in the background in a worker, at once in process (eager)."""
    published = detector().last_published
    document = published[1] if published and published[0] == job.id else None  # saves reading it back from S3
    if in_worker:
        _BATCH_ENDS.submit(batch_job_ended, job, document)
    else:
        batch_job_ended(job, document)


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _tell_batches_before_exit(**_: Any) -> None:
    # a pool process leaving (scale-in, max tasks, shutdown) tells the ends it holds first; os._exit follows
    _BATCH_ENDS.shutdown(wait=True)


@cache
def lease_book() -> LeaseBook:
    settings = app.conf.videoapi_settings
    return LeaseBook(detector().store, lease_s=settings.lease_s, max_worker_losses=settings.max_worker_losses)


def requeue(task: LeasedTask) -> None:
    """Send a task whose worker was lost again, under its own id and in its own chord."""
    options = {k: v for k, v in task.options.items() if v is not None}
    app.send_task(task.name, args=task.args, task_id=task.task_id, queue=QUEUE, **options)
    # first in line, not behind the whole queue: it was taken in its turn, and a lost host should cost the job
    # the lease's seconds, not the queue's length (tests/hosts: a worker host lost under a burst)
    move_to_front(lease_book().redis, task.task_id)


@worker_process_init.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _start_reaper(**_: Any) -> None:
    # every pool process reaps; the lease book's lock lets one at a time do it
    Heartbeat(lambda: lease_book().reap(requeue), app.conf.videoapi_settings.reaper_interval_s).start()


@worker_process_init.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _sweep_scratch(**_: Any) -> None:
    # a pool process starting may replace one killed mid-job, whose video would otherwise stay on disk
    sweep_scratch()


@worker_process_init.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _take_a_gpu(**_: Any) -> None:
    # before the warm-up builds the Triton client (its CUDA shared memory is on this process's GPU)
    place_on_gpu(app.conf.videoapi_settings)


@worker_process_init.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _warm_up(**_: Any) -> None:
    # what the process's first job would otherwise build on its clock: the S3 client (botocore reads S3's service
    # model), the Triton client and the decoder's modules, ~0.2 s of the first job on a 2-core machine
    try:
        detector().model  # noqa: B018  # the property builds the Triton client (no call to Triton yet)
        importlib.import_module("av")
    except Exception:  # the first job builds them again, and reports what fails
        logger.warning("warm-up failed; the first job builds its clients itself", exc_info=True)


@cache
def _main_redis() -> redis.Redis:
    """The worker's main process's own Redis client (the pool processes have their detector's)."""
    return JobStore.from_url(app.conf.videoapi_settings.redis_url).redis


@worker_ready.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _not_draining(sender: Any = None, **_: Any) -> None:  # sender: the worker's consumer
    # a worker restarted under the same name is not leaving
    Drain(_main_redis(), sender.hostname).end()


@worker_shutting_down.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _drain(sender: Any = None, sig: str | None = None, how: str | None = None, **_: Any) -> None:
    """SIGTERM (warm shutdown): Celery stops taking tasks; each running one finishes or yields (see `preempt`)."""
    if how == "Warm":
        try:
            Drain(_main_redis(), sender).begin(app.conf.videoapi_settings.shutdown_grace_s)
        except Exception:  # Redis unreachable: the tasks finish (or, past the pod's grace, their leases lapse)
            logger.warning("could not mark %s draining", sender, exc_info=True)


def preempt(task: Task) -> Preempt | None:
    """For the detector: True when this task's worker is shutting down and `eta_s` outlasts the grace period."""
    if not task.request.id or not task.request.hostname:  # eager (in-process): nothing shuts it down
        return None
    drain = Drain(detector().store.redis, task.request.hostname)
    return drain.must_yield


def _test_only_crash(job_id: str) -> None:
    """Tests' poison video: the process running the task dies (SIGKILL) when the source key names the marker.

    Honoured only where VIDEOAPI_TEST_CRASH_MARKER is set, which only the tests' workers have.
    """
    marker = os.environ.get("VIDEOAPI_TEST_CRASH_MARKER")
    if marker and marker in detector().store.get(job_id).key:
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def leased(task: Task, job_id: str) -> Iterator[bool]:
    """Hold the task's lease while it runs; yields False when the job was failed as poison (worker_lost)."""
    request = task.request
    if not request.id:  # called in-process (eager), not by a worker: nothing to lose
        yield True
        return
    options = {"group_id": request.group, "group_index": request.group_index, "chord": request.chord}
    held = LeasedTask(request.id, task.name, job_id, list(request.args or []), options)
    book = lease_book()
    if not book.acquire(held, socket.gethostname(), os.getpid()):
        yield False
        return
    lapsed = False

    def renew() -> None:
        nonlocal lapsed
        if not book.renew(held.task_id) and not lapsed:
            lapsed = True  # said once: the reaper took the lease (renewals were late) and sent the task again
            logger.warning("task %s: its lease lapsed while it ran; it was sent again", held.task_id)

    heartbeat = Heartbeat(renew, app.conf.videoapi_settings.lease_renew_s).start()
    try:
        yield True
    finally:
        heartbeat.stop()
        book.release(held.task_id)


class JobTask(Task):  # type: ignore[misc]  # Celery is untyped: its Task is Any
    """Transient errors are retried with exponential backoff; anything else, or the last retry, fails the job."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        job_id = self.job_id_of(args, kwargs)
        try:
            with job_context(job_id), leased(self, job_id) as held:
                if not held:
                    return {"job_id": job_id, "status": "failed", "error_code": WORKER_LOST}
                observability.observe_task_start(detector().store, self.name, job_id, self.request.retries)
                _test_only_crash(job_id)
                return self._run_job(args, kwargs)
        except Preempted:
            # scale-in: the progress is checkpointed and the lease released; the same task (id, chord) goes
            # back to the queue now, for another worker, and this message is acknowledged without a result
            request = self.request
            options = {"group_id": request.group, "group_index": request.group_index, "chord": request.chord}
            requeue(LeasedTask(request.id, self.name, job_id, list(request.args or []), options))
            raise Ignore() from None

    def _run_job(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        try:
            return self.run(*args, **kwargs)
        except Preempted:
            raise
        except SoftTimeLimitExceeded:
            error = JobError("timeout", f"the job ran past its time limit ({app.conf.task_time_limit}s)")
            detector().fail(self.job_id_of(args, kwargs), error)
            return {"job_id": self.job_id_of(args, kwargs), "status": "failed", "error_code": error.code}
        except Exception as exc:
            error = as_job_error(exc)
            observability.observe_task_error(exc, error.code, error.transient)
            logger.warning("%s failed (%s, transient=%s): %s", self.name, error.code, error.transient, error.message)
            if error.transient and self.request.retries < self.max_retries:
                backoff = min(app.conf.videoapi_settings.task_retry_backoff_max_s, 2 ** (self.request.retries + 1))
                raise self.retry(exc=error, countdown=backoff) from exc
            detector().fail(self.job_id_of(args, kwargs), error)
            return {"job_id": self.job_id_of(args, kwargs), "status": "failed", "error_code": error.code}

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Sequence[Any], kwargs: dict[str, Any], einfo: Any
    ) -> None:
        """Once the job is over (whichever task ended it), queue its callback, exactly once."""
        if self.name in (deliver_callback.name, publish_rekognition_completion.name):
            return
        job_id = self.job_id_of(args, kwargs)
        job = detector().store.get(job_id)
        observability.observe_job_end(detector().store, job)
        if job.status.finished:
            tell_batch(job, in_worker=bool(self.request.id))
        if job.status.finished and job.extra.get("callback_url"):
            queue_once(job, "callback_queued", deliver_callback)
        if job.status.finished and job.extra.get(NOTIFICATION_FIELD):
            queue_once(job, "sns_queued", publish_rekognition_completion)

    @staticmethod
    def job_id_of(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
        return kwargs.get("job_id") or next(a for a in args if isinstance(a, str) and a.startswith("job_"))


def queue_once(job: Job, mark: str, task: Task) -> None:
    """Queue the job's notice unless it was: sent first and marked after, so that a worker killed in between
    leaves the mark unwritten and the redelivered task queues it again (the notice's task claims the job, so a
    second copy does nothing), rather than a mark with no notice behind it."""
    if job.extra.get(mark) is None:
        task.delay(job.id)
        detector().store.set_field(job.id, mark, "1")


def claimed(job_id: str, notice: str, task_id: str | None) -> bool:
    """Whether this task (or a retry of it) is the one that sends the job's `notice` (queue_once may send two)."""
    return task_id is None or detector().store.claim(job_id, notice, task_id)


_policy = {"base": JobTask, "bind": True, "acks_late": True, "reject_on_worker_lost": True}


def _retries() -> int:
    settings: Settings = app.conf.videoapi_settings
    return settings.task_max_retries


@app.task(name=DETECT_TASK, max_retries=_retries(), **_policy)  # type: ignore[untyped-decorator]  # Celery is untyped
def detect_shots(self: Task, job_id: str) -> dict[str, Any]:
    """Entry point for a job: short videos end here, long ones fan out to segments and a stitch."""
    outcome = detector().begin(job_id, preempt(self))
    if isinstance(outcome, list):
        if not detector().claim_fan_out(job_id):
            return {"job_id": job_id, "status": "running"}  # a redelivery after the segments were sent
        # the segments run beside other clients' jobs: beyond the one pop that started the job, they count
        # to the client's share as further pops would (videoapi.domain.fairness)
        client_id = detector().store.field(job_id, "client_id")
        if client_id is not None:
            fair_queue().charge(client_id, len(outcome) - 1)
        segments = [detect_segment.s(job_id, s.start, s.stop) for s in outcome]
        chord(segments)(stitch_segments.s(job_id))
        return {"job_id": job_id, "status": "running", "segments": len(outcome)}
    if outcome:
        count_frames(job_id, outcome["video"]["frame_count"])
    return {"job_id": job_id, "status": "succeeded" if outcome else "skipped"}


@app.task(name=SEGMENT_TASK, max_retries=_retries(), **_policy)  # type: ignore[untyped-decorator]  # Celery is untyped
def detect_segment(self: Task, job_id: str, start: int, stop: int | None) -> list[str]:
    keys = detector().run_segment(job_id, Segment(start, stop), preempt(self))
    count_frames(job_id, (detector().info(job_id).frame_count if stop is None else stop) - start)
    return keys


@app.task(name=STITCH_TASK, max_retries=_retries(), **_policy)  # type: ignore[untyped-decorator]  # Celery is untyped
def stitch_segments(self: Task, segment_keys: list[Any], job_id: str) -> dict[str, Any]:
    if any(isinstance(k, dict) for k in segment_keys):  # a segment's checkpoint keys, or its failure
        raise JobError("segment_failed", "a segment of the video failed; see the job's error")
    detector().stitch(job_id, segment_keys)
    return {"job_id": job_id, "status": "succeeded"}


class NextJobTask(JobTask):
    """A token: pops the next job fairly across clients and runs it here, in this same task.

    The job popped is bound to this task's id, so the same token delivered again (the lease reaper after its
    worker died, a Celery retry or redelivery) runs that job again rather than popping another one.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token_id = self.request.id or f"eager-{uuid.uuid4().hex}"  # called in-process: a token of its own
        popped = fair_queue().pop(token_id)
        if popped is None:  # no job queued (a token sent with none behind it): nothing to do
            return {"status": "idle"}
        if not popped.client_id and detector().store.get(popped.job_id).status.finished:
            # a stale copy of a token whose job is over (its lease was taken while it ran, and the job ended
            # anyway): no lease, no attempt counted, nothing run again
            logger.info("token %s: its job %s has already finished; nothing to do", token_id, popped.job_id)
            return {"job_id": popped.job_id, "status": "finished already"}
        return super().__call__(popped.job_id)

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Sequence[Any], kwargs: dict[str, Any], einfo: Any
    ) -> None:
        job_id = fair_queue().claimed(task_id) if task_id else None
        if job_id:
            super().after_return(status, retval, task_id, [job_id], kwargs, einfo)


@app.task(  # type: ignore[untyped-decorator]  # Celery is untyped
    name=NEXT_JOB_TASK,
    max_retries=_retries(),
    bind=True,
    base=NextJobTask,
    acks_late=True,
    reject_on_worker_lost=True,
)
def run_next_job(self: Task, job_id: str) -> dict[str, Any]:
    """The job a token popped: a detection job (short, or fanned out to segments) or a clips job."""
    if is_clips_job(detector().store.get(job_id)):
        return cast(dict[str, Any], make_clips.run(job_id))  # Celery's task objects are untyped
    return cast(dict[str, Any], detect_shots.run(job_id))


@cache
def clip_maker() -> ClipMaker:
    return ClipMaker(app.conf.videoapi_settings, detector().store, detector().storage)


@app.task(name=CLIPS_TASK, max_retries=_retries(), **_policy)  # type: ignore[untyped-decorator]  # Celery is untyped
def make_clips(self: Task, job_id: str) -> dict[str, Any]:
    """A clips job: every asked shot as its own file, uploaded under the detection job's results."""
    try:
        manifest = clip_maker().run(job_id)
    except ClipError as exc:
        raise JobError(exc.code, exc.message) from exc
    return {"job_id": job_id, "status": "succeeded" if manifest else "skipped"}


@app.task(  # type: ignore[untyped-decorator]  # Celery is untyped
    name=CALLBACK_TASK,
    autoretry_for=(CallbackFailed,),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=8,
    acks_late=True,
    bind=True,
)
def deliver_callback(self: Task, job_id: str) -> int | None:
    """POST the finished job to its callback URL; retried with backoff while the receiver is down."""
    if not claimed(job_id, "callback_task", self.request.id):
        return None  # another copy of this notice delivers it
    job = detector().store.get(job_id)
    settings = app.conf.videoapi_settings
    return callbacks.deliver(job.extra["callback_url"], job, secret=settings.callback_secret)


@cache
def sns_client(region: str) -> Any:  # boto3's client, untyped
    """boto3's SNS client for a region: moto's in the local stack, AWS's in production."""
    import boto3
    from botocore.config import Config

    settings = app.conf.videoapi_settings
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client("sns", endpoint_url=settings.sns_endpoint_url, region_name=region, config=config)


@app.task(  # type: ignore[untyped-decorator]  # Celery is untyped
    name=REKOGNITION_NOTIFY_TASK,
    autoretry_for=(ClientError, BotoCoreError),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=8,
    acks_late=True,
    bind=True,
)
def publish_rekognition_completion(self: Task, job_id: str) -> str | None:
    """Publish Rekognition's completion message to the job's NotificationChannel topic (SNS)."""
    if not claimed(job_id, "sns_task", self.request.id):
        return None  # another copy of this notice publishes it
    return publish_completion(sns_client, detector().store.get(job_id))
