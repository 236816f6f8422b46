"""Job submission: checked requests, quotas, idempotency, S3-triggered jobs, cancelling, clips requests.

Knows nothing of HTTP: refusals are `videoapi.errors.ApiError` kinds; the web adapter picks their statuses.

Over 300 lines because every way a job is made (API, S3 event, clips request) must pass the same checks,
quota and fair queue in the same order; validation, uploads, results and views live in their own modules.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from videoapi.adapters.queue import TaskQueue
from videoapi.adapters.storage import Storage
from videoapi.domain import redis_keys
from videoapi.domain.fairness import DEFAULT_PRIORITY, PRIORITIES, QUOTA_EXCEEDED, FairQueue, Quotas, frames_today
from videoapi.domain.formats import RESULT_FORMATS
from videoapi.domain.idempotency import IdempotencyMarkers, wait_until_made
from videoapi.domain.jobs import POSTPROCESS_FIELD, Job, JobStatus, JobStore, new_job_id
from videoapi.domain.uploads import upload_prefix
from videoapi.domain.validation import check_callback_url, check_key
from videoapi.errors import (
    ApiError,
    ClipError,
    Conflict,
    InvalidRequest,
    JobNotFound,
    NotFound,
    ObjectNotFound,
    Refusal,
    StorageError,
    TooLarge,
    TooManyRequests,
)
from videoapi.pipeline.clips import CLIPS_JOB_KIND, clip_spans, is_clips_job
from videoapi.pipeline.cues import SegmentOptions
from videoapi.pipeline.url_source import is_url
from videoapi.settings import Settings

logger = logging.getLogger(__name__)

# how long a direct upload's size is kept for its submit (JobService.note_upload): far under the bucket's expiry of
# uploads (days: template.yaml's UploadRetentionDays), and the service deletes no upload itself, so a noted upload
# is still there when it is submitted
UPLOAD_NOTE_TTL_S = 3600


@dataclass(frozen=True)
class ClientLimits:
    """A client's limits as they apply to one request: the settings' defaults or its key's overrides."""

    max_active_jobs: int
    rate_limit: float  # requests per second; 0: none
    weight: float = 1.0  # its share of the workers against other clients'


def refused(refusal: Refusal, headers: dict[str, str] | None = None) -> TooManyRequests:
    """A client over one of its limits, naming the limit (and the count, for a quota)."""
    details: dict[str, object] = {"limit": refusal.limit}
    if refusal.code == QUOTA_EXCEEDED:
        details["count"] = refusal.count
    else:
        details["retry_after_s"] = refusal.retry_after_s
    return TooManyRequests(refusal.code, refusal.message, details=details, headers=headers)


@dataclass(frozen=True)
class ClipsRequest:
    """Per-shot clips of a finished job: `copy` (keyframe-aligned stream copy) or `exact` (re-encoded)."""

    mode: str = "exact"
    shots: tuple[int, ...] | None = None  # None: every shot
    trim_transitions: bool = False


@dataclass(frozen=True)
class SubmitRequest:
    source: str  # an object key in the service bucket, or s3://bucket/key
    source_version: str | None = None  # an S3 object version (a versioned bucket); None: the latest
    threshold: float | None = None
    formats: tuple[str, ...] = ("json",)
    tag: str = ""
    callback_url: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # kept on the job record (e.g. a Rekognition request's options)
    postprocess: bool | None = None  # None: the setting
    segments: SegmentOptions = field(default_factory=SegmentOptions)
    priority: str = DEFAULT_PRIORITY  # interactive | batch: within a client, interactive jobs go first

    def fingerprint(self) -> str:
        body = json.dumps(
            [
                self.source,
                self.source_version,
                self.threshold,
                sorted(self.formats),
                self.tag,
                self.callback_url,
                sorted(self.attributes),
                self.postprocess,
                self.segments.model_dump(mode="json"),
                self.priority,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(body.encode()).hexdigest()


def _may_be_job_id(job_id: str) -> bool:
    return job_id.startswith("job_") and len(job_id) < 100


def _owned_job(job: Job | None, client_id: str, job_id: str) -> Job:
    if job is None or job.client_id != client_id:
        raise NotFound("job_not_found", f"no job {job_id!r}")
    return job


class JobService:
    """Everything the handlers do, over the job store, storage and the task queue."""

    def __init__(self, settings: Settings, store: JobStore, storage: Storage, queue: TaskQueue):
        self.settings, self.store, self.storage, self.queue = settings, store, storage, queue
        self.fair, self.quotas = FairQueue(store.redis), Quotas(store.redis)
        self.markers = IdempotencyMarkers(store.redis, settings.idempotency_ttl_s)

    # limits --------------------------------------------------------------------------------------
    def limits(
        self, *, weight: float | None = None, rate_limit: float | None = None, max_active_jobs: int | None = None
    ) -> ClientLimits:
        """A client's limits: these overrides (a key's record) where given, else the settings'."""
        return ClientLimits(
            max_active_jobs=self.settings.client_max_active_jobs if max_active_jobs is None else max_active_jobs,
            rate_limit=self.settings.client_rate_limit if rate_limit is None else rate_limit,
            weight=1.0 if weight is None else weight,
        )

    def _reserve(self, client_id: str, job_id: str, limits: ClientLimits | None) -> None:
        limits = limits or self.limits()
        try:
            self.quotas.reserve(client_id, job_id, limits.max_active_jobs)
        except Refusal as refusal:
            raise refused(refusal) from None

    def usage(self, client_id: str, limits: ClientLimits | None = None) -> dict[str, Any]:
        """The client's active jobs, its limits and the frames run for it today (UTC)."""
        limits = limits or self.limits()
        return {
            "client_id": client_id,
            "active_jobs": self.quotas.active(client_id),
            "queued_jobs": self.fair.queued(client_id),
            "frames_today": frames_today(self.store.redis, client_id),
            "limits": {
                "max_active_jobs": limits.max_active_jobs,
                "rate_limit_per_s": limits.rate_limit,
                "rate_limit_burst": int(limits.rate_limit * 2),
                "weight": limits.weight,
            },
        }

    # uploads -----------------------------------------------------------------------------------
    # jobs --------------------------------------------------------------------------------------
    def check_source(self, client_id: str, source: str) -> tuple[str, str]:
        """(bucket, key) of a source this client may name, without reading storage ("" and the URL for a URL)."""
        if is_url(source):  # fetched by the worker, under the SSRF rules (videoapi.pipeline.url_source)
            schemes = ("https://", "http://") if self.settings.url_source_allow_http else ("https://",)
            if not source.startswith(schemes) or len(source) > 4096:
                raise InvalidRequest("source_not_allowed", "URL sources must be https:// URLs", "source")
            return "", source
        if source.startswith("s3://"):
            bucket, _, key = source[5:].partition("/")
            check_key(key)
            if bucket != self.storage.bucket and bucket not in self.settings.allowed_source_buckets:
                raise InvalidRequest("bucket_not_allowed", f"bucket {bucket!r} is not one this service reads", "source")
        else:
            bucket, key = self.storage.bucket, check_key(source)
        if bucket == self.storage.bucket and not (
            key.startswith(upload_prefix(client_id)) or key.startswith(f"{self.settings.trigger_prefix}{client_id}/")
        ):
            # keys in the service bucket belong to whoever uploaded them
            raise NotFound("source_not_found", "no such object among this client's uploads", "source")
        return bucket, key

    async def note_upload(self, aredis: redis.asyncio.Redis, key: str, size: int) -> None:
        """Remember an object the API has just stored in its bucket (a direct upload): a submit of it within
        UPLOAD_NOTE_TTL_S reads its size here instead of asking S3 (a HEAD: most of a submit's CPU). Best effort:
        without the note, the submit asks S3."""
        try:
            await aredis.set(redis_keys.upload_size(self.storage.bucket, key), size, ex=UPLOAD_NOTE_TTL_S)
        except redis.RedisError as exc:
            logger.warning("the size of the upload %s was not noted (a submit of it will ask S3): %s", key, exc)

    def _noted_size(self, bucket: str, key: str) -> int | None:
        noted = self.store.redis.get(redis_keys.upload_size(bucket, key)) if bucket == self.storage.bucket else None
        return int(noted) if noted is not None else None

    def resolve_source(self, client_id: str, source: str, version: str | None = None) -> tuple[str, str]:
        """(bucket, key) of a source this client may name, checked to exist and be within the size limit."""
        bucket, key = self.check_source(client_id, source)
        if not bucket:
            return bucket, key
        try:
            noted = None if version else self._noted_size(bucket, key)
            size = noted if noted is not None else self.storage.for_bucket(bucket).size(key, version)
        except ObjectNotFound as exc:
            raise NotFound("source_not_found", f"s3://{bucket}/{key} does not exist", "source") from exc
        except StorageError as exc:
            if not version:
                raise
            # S3 answers a version id it does not know with 400, not 404
            raise NotFound("source_not_found", f"s3://{bucket}/{key} has no version {version!r}", "source") from exc
        if size > self.settings.max_video_bytes:
            raise TooLarge("too_large", f"the object is {size} bytes, over {self.settings.max_video_bytes}", "source")
        return bucket, key

    def submit(
        self,
        client_id: str,
        request: SubmitRequest,
        idempotency_key: str | None = None,
        limits: ClientLimits | None = None,
    ) -> tuple[Job, bool]:
        """Create and enqueue a job; with an idempotency key, the same request returns the same job.

        429 quota_exceeded when the client already has its most queued plus running jobs.
        """
        if request.priority not in PRIORITIES:
            raise InvalidRequest("invalid_priority", f"priority must be one of {', '.join(PRIORITIES)}", "priority")
        for fmt in request.formats:
            if fmt not in RESULT_FORMATS:
                raise InvalidRequest("invalid_format", f"formats must be among {', '.join(RESULT_FORMATS)}", "formats")
        threshold = self.settings.threshold if request.threshold is None else request.threshold
        postprocess = self.settings.postprocess if request.postprocess is None else request.postprocess
        if request.callback_url:
            check_callback_url(request.callback_url, self.settings.allow_private_callbacks)
        bucket, key = self.resolve_source(client_id, request.source, request.source_version)
        job_id = new_job_id()
        if idempotency_key:
            earlier = self.markers.claim(client_id, idempotency_key, job_id, request.fingerprint())
            if earlier is not None:  # the job that request is making (or made)
                return wait_until_made(lambda: self.get(client_id, earlier), ApiError, 5.0, 0.05), False
        weight = (limits or self.limits()).weight
        try:
            self._reserve(client_id, job_id, limits)
        except ApiError:
            if idempotency_key:  # nothing was created: the same key may be tried again
                self.markers.release(client_id, idempotency_key)
            raise
        try:
            job = self.store.create(
                job_id=job_id,
                bucket=bucket,
                key=key,
                threshold=threshold,
                client_id=client_id,
                tag=request.tag,
                formats=",".join(request.formats),
                callback_url=request.callback_url or "",
                source_version=request.source_version or "",
                **dict(request.attributes),
                **{POSTPROCESS_FIELD: "1" if postprocess else "0"},
                segment_options=request.segments.model_dump_json(),
                priority=request.priority,
                # the record and its place in the client's list in one transaction: never one without the other
                queue_with=lambda pipe: self.fair.push(client_id, job_id, request.priority, weight, pipe=pipe),
            )
        except Exception:
            # no job was made: its place in the quota and its idempotency key are given back
            self._withdraw(client_id, job_id, idempotency_key, stored=False)
            raise
        try:
            self.queue.enqueue_token()
        except Exception:
            if self.fair.withdraw(client_id, job_id):  # still waiting: no worker will look for it without a token
                self._withdraw(client_id, job_id, idempotency_key, stored=True)
                raise
            logger.info("job %s: its token was not sent, but another token's worker took it", job_id)
        return job, True

    def _withdraw(self, client_id: str, job_id: str, idempotency_key: str | None, *, stored: bool) -> None:
        """Undo a submission that failed before its job was queued: record, quota place and idempotency key."""
        try:
            if stored:
                self.store.delete(job_id, client_id)
            self.quotas.release(client_id, job_id)
            if idempotency_key:
                self.markers.release(client_id, idempotency_key)
        except Exception:  # Redis failing still: the quota place frees when the record expires, the key with its TTL
            logger.error(
                "job %s was not queued and its quota place or idempotency key could not be given back",
                job_id,
                exc_info=True,
            )

    def create_from_event(self, bucket: str, key: str, size: int, sequencer: str) -> Job | None:
        """A job for an object that arrived under the trigger prefix; repeated deliveries make one job."""
        prefix = self.settings.trigger_prefix
        if bucket != self.storage.bucket or not key.startswith(prefix):
            return None
        check_key(key, "key")
        owner = key[len(prefix) :].split("/", 1)[0] if "/" in key[len(prefix) :] else ""
        job_id = new_job_id()
        earlier = self.markers.claim_event(bucket, key, sequencer, job_id)
        if earlier is not None:
            return self.store.get(earlier)
        refusal: ApiError | None = None
        try:
            self._reserve(owner, job_id, None)
        except ApiError as refused:
            refusal = refused
        weight = self.limits().weight
        try:
            job = self.store.create(
                job_id=job_id,
                bucket=bucket,
                key=key,
                threshold=self.settings.threshold,
                client_id=owner,
                tag="s3-trigger",
                formats="json",
                callback_url="",
                priority="batch",
                # queued with its record in one transaction, unless refused: then only recorded, and failed
                queue_with=None if refusal else lambda pipe: self.fair.push(owner, job_id, "batch", weight, pipe=pipe),
            )
        except Exception:
            # nothing was made: the event's next delivery (S3 retries) makes the job
            self.quotas.release(owner, job_id)
            self.markers.release_event(bucket, key, sequencer)
            raise
        if refusal is not None:  # recorded, so the client sees which object was refused and why
            self.store.fail(job.id, refusal.code, refusal.message)
            return self.store.get(job.id)
        self.queue.enqueue_token()
        return job

    def get(self, client_id: str, job_id: str) -> Job:
        """The job if it is this client's; another client's job is as unknown as a missing one."""
        try:
            job = self.store.get(job_id) if _may_be_job_id(job_id) else None
        except JobNotFound:
            job = None
        return _owned_job(job, client_id, job_id)

    async def get_async(self, aredis: redis.asyncio.Redis, client_id: str, job_id: str) -> Job:
        """As `get`, on the event loop with an asyncio client (the path clients poll)."""
        try:
            job = await self.store.get_async(aredis, job_id) if _may_be_job_id(job_id) else None
        except JobNotFound:
            job = None
        return _owned_job(job, client_id, job_id)

    def cancel(self, client_id: str, job_id: str) -> Job:
        """Cancel a queued or running job; workers stop it at their next batch. 409 once it has finished."""
        self.get(client_id, job_id)  # 404 unless it is this client's
        cancelled = self.store.cancel(job_id)
        job = self.store.get(job_id)
        if not cancelled and job.status != JobStatus.cancelled:  # cancelling twice is fine
            raise Conflict("job_finished", f"the job already {job.status.value}; nothing to cancel")
        return job

    def _finished_detection(self, client_id: str, job_id: str) -> Job:
        job = self.get(client_id, job_id)
        if is_clips_job(job):
            raise Conflict("not_a_detection_job", f"{job_id} is a clips job; use its detection job")
        if job.status != JobStatus.succeeded:
            raise Conflict("job_not_finished", f"the job is {job.status.value}; clips need its shots")
        return job

    def request_clips(
        self, client_id: str, job_id: str, request: ClipsRequest, limits: ClientLimits | None = None
    ) -> Job:
        """A clips job of its own over a finished detection job; checked here so the worker meets no bad request."""
        parent = self._finished_detection(client_id, job_id)
        if request.mode not in ("copy", "exact"):
            raise InvalidRequest("invalid_mode", "mode must be copy or exact", "mode")
        try:
            clip_spans(self.storage.get_json(parent.result_key), request.shots, request.trim_transitions)
        except ClipError as exc:
            raise InvalidRequest(exc.code, exc.message, exc.field) from exc
        options = {
            "parent": parent.id,
            "mode": request.mode,
            "shots": list(request.shots) if request.shots is not None else None,
            "trim_transitions": request.trim_transitions,
        }
        clips_job_id = new_job_id()
        self._reserve(client_id, clips_job_id, limits)
        weight = (limits or self.limits()).weight
        try:
            job = self.store.create(
                job_id=clips_job_id,
                bucket=parent.bucket,
                key=parent.key,
                threshold=parent.threshold,
                client_id=client_id,
                tag=parent.tag,
                kind=CLIPS_JOB_KIND,
                parent=parent.id,
                clip_options=json.dumps(options),
                # the record and its place in the client's list in one transaction, as for a detection job
                queue_with=lambda pipe: self.fair.push(client_id, clips_job_id, DEFAULT_PRIORITY, weight, pipe=pipe),
            )
        except Exception:
            self.quotas.release(client_id, clips_job_id)
            raise
        self.queue.enqueue_token()
        return self.store.get(job.id)  # with the clips fields the new record holds

    def list(self, client_id: str, limit: int) -> list[Job]:
        return self.store.list_for(client_id, limit)
