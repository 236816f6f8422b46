"""The API's domain: uploads, job submission with idempotency, S3-triggered jobs, results.

Knows nothing of HTTP: refusals are `videoapi.errors.ApiError` kinds; the web adapter picks their statuses.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import json
import re
import socket
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from videoapi.adapters.queue import TaskQueue
from videoapi.adapters.storage import Storage
from videoapi.domain.exports import EXPORT_FILES, export
from videoapi.domain.fairness import DEFAULT_PRIORITY, PRIORITIES, QUOTA_EXCEEDED, FairQueue, Quotas, frames_today
from videoapi.domain.jobs import POSTPROCESS_FIELD, Job, JobStatus, JobStore, new_job_id
from videoapi.domain.rekognition import REKOGNITION_OPTIONS, segment_detection
from videoapi.errors import (
    ApiError,
    ClipError,
    Conflict,
    ExportError,
    InvalidRequest,
    JobNotFound,
    NotFound,
    ObjectNotFound,
    Refusal,
    StorageError,
    TooLarge,
    TooManyRequests,
    UnsupportedMediaType,
)
from videoapi.pipeline.clips import CLIPS_JOB_KIND, clip_spans, is_clips_job
from videoapi.pipeline.cues import SegmentOptions
from videoapi.pipeline.shots import max_per_stride
from videoapi.pipeline.url_source import is_url
from videoapi.settings import Settings

RESULT_FORMATS = ("json", *EXPORT_FILES, "rekognition")  # json, csv, edl, otio, fcpxml, xml, qp, rekognition
RESULT_EXTRAS = ("probabilities", "curve", "overview", "thumbnails")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def safe_filename(name: str, field: str = "filename") -> str:
    """A file name fit to be the last part of a key: no separators, no dot-dot, no control characters."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or ".." in name or _CONTROL.search(name):
        raise InvalidRequest(
            "invalid_filename", "file names may not contain '/', '\\', '..' or control characters", field
        )
    # any printable Unicode is fine (S3 keys are UTF-8); invisible characters could disguise a name
    if any(unicodedata.category(c)[0] == "C" for c in name) or len(name.encode()) > 255 or name != name.strip():
        raise InvalidRequest(
            "invalid_filename", "file names must be printable, without edge spaces, at most 255 bytes", field
        )
    return name


def check_key(key: str, field: str = "source") -> str:
    if (
        not key
        or len(key) > 1024
        or key.startswith("/")
        or "//" in key
        or any(part in (".", "..") for part in key.split("/"))
        or _CONTROL.search(key)
    ):
        raise InvalidRequest("invalid_key", "object keys may not be empty, absolute, or hold '.', '..' or '//'", field)
    return key


def check_callback_url(url: str, allow_private: bool) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise InvalidRequest("invalid_callback_url", "callback_url must be an http(s) URL", "callback_url")
    if allow_private:
        return url
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, parsed.port or 443)}
    except socket.gaierror as exc:
        raise InvalidRequest("invalid_callback_url", f"cannot resolve {parsed.hostname}", "callback_url") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise InvalidRequest(
                "callback_url_not_allowed",
                f"callbacks to private or loopback addresses ({ip}) are refused",
                "callback_url",
            )
    return url


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


def iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class JobService:
    """Everything the handlers do, over the job store, storage and the task queue."""

    def __init__(self, settings: Settings, store: JobStore, storage: Storage, queue: TaskQueue):
        self.settings, self.store, self.storage, self.queue = settings, store, storage, queue
        self.fair, self.quotas = FairQueue(store.redis), Quotas(store.redis)

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

    def _enqueue(self, job: Job, priority: str, limits: ClientLimits | None) -> None:
        """Into the client's list (weighted fair share of the workers), and one more token for the workers."""
        self.fair.push(job.client_id, job.id, priority, (limits or self.limits()).weight)
        self.queue.enqueue_token()

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
    def _check_upload(self, filename: str, content_type: str, size: int) -> str:
        safe_filename(filename)
        if content_type not in self.settings.allowed_content_types:
            allowed = ", ".join(self.settings.allowed_content_types)
            raise UnsupportedMediaType(
                "unsupported_content_type", f"{content_type!r} is not one of: {allowed}", "content_type"
            )
        if size <= 0:
            raise InvalidRequest("invalid_size", "size_bytes must be positive", "size_bytes")
        return filename

    def upload_key(self, client_id: str, filename: str) -> str:
        return f"uploads/{client_id}/{uuid.uuid4().hex}/{filename}"

    def presign_upload(self, client_id: str, filename: str, content_type: str, size_bytes: int) -> dict[str, Any]:
        """A presigned PUT bound to this size and type, and a POST policy enforcing the size limit."""
        self._check_upload(filename, content_type, size_bytes)
        if size_bytes > self.settings.max_upload_bytes:
            raise TooLarge(
                "too_large", f"size_bytes exceeds the limit of {self.settings.max_upload_bytes}", "size_bytes"
            )
        key = self.upload_key(client_id, filename)
        expires = self.settings.presign_expiry_s
        client = self.storage.client
        put_url = client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.storage.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size_bytes,
            },
            ExpiresIn=expires,
        )
        post = client.generate_presigned_post(
            self.storage.bucket,
            key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, size_bytes]],
            ExpiresIn=expires,
        )
        return {
            "key": key,
            "method": "PUT",
            "url": put_url,
            "headers": {"Content-Type": content_type, "Content-Length": str(size_bytes)},
            "post": {"url": post["url"], "fields": post["fields"]},
            "max_bytes": size_bytes,
            "expires_in": expires,
            "expires_at": iso(time.time() + expires),
        }

    def direct_upload(self, client_id: str, filename: str, content_type: str, data: bytes) -> dict[str, Any]:
        self._check_upload(filename, content_type, len(data) or 1)
        if not data:
            raise InvalidRequest("empty_body", "the request body is empty", "body")
        key = self.upload_key(client_id, filename)
        self.storage.put_bytes(key, data, content_type)
        return {"key": key, "size_bytes": len(data)}

    # jobs --------------------------------------------------------------------------------------
    def _resolve_source(self, client_id: str, source: str, version: str | None = None) -> tuple[str, str]:
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
            key.startswith(f"uploads/{client_id}/") or key.startswith(f"{self.settings.trigger_prefix}{client_id}/")
        ):
            # keys in the service bucket belong to whoever uploaded them
            raise NotFound("source_not_found", "no such object among this client's uploads", "source")
        try:
            size = self.storage.for_bucket(bucket).size(key, version)
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
        bucket, key = self._resolve_source(client_id, request.source, request.source_version)
        job_id = new_job_id()
        if idempotency_key:
            marker = f"idem:{client_id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
            claim = json.dumps({"job_id": job_id, "fingerprint": request.fingerprint()})
            if not self.store.redis.set(marker, claim, nx=True, ex=self.settings.idempotency_ttl_s):
                existing = json.loads(self.store.redis.get(marker) or "{}")
                if existing.get("fingerprint") != request.fingerprint():
                    raise Conflict(
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request",
                        "Idempotency-Key",
                    )
                return self._wait_for(existing["job_id"], client_id), False
        try:
            self._reserve(client_id, job_id, limits)
        except ApiError:
            if idempotency_key:  # nothing was created: the same key may be tried again
                self.store.redis.delete(marker)
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
            )
        except Exception:
            with contextlib.suppress(Exception):  # no job was made: its place in the quota is given back
                self.quotas.release(client_id, job_id)
            raise
        self._enqueue(job, request.priority, limits)
        return job, True

    def _wait_for(self, job_id: str, client_id: str, timeout_s: float = 5.0) -> Job:
        """The job a concurrent request with the same idempotency key is creating."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.get(client_id, job_id)
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def create_from_event(self, bucket: str, key: str, size: int, sequencer: str) -> Job | None:
        """A job for an object that arrived under the trigger prefix; repeated deliveries make one job."""
        prefix = self.settings.trigger_prefix
        if bucket != self.storage.bucket or not key.startswith(prefix):
            return None
        check_key(key, "key")
        owner = key[len(prefix) :].split("/", 1)[0] if "/" in key[len(prefix) :] else ""
        marker = f"s3event:{bucket}:{hashlib.sha256(f'{key}|{sequencer}'.encode()).hexdigest()}"
        job_id = new_job_id()
        if not self.store.redis.set(marker, job_id, nx=True, ex=self.settings.idempotency_ttl_s):
            return self.store.get(self.store.redis.get(marker))
        try:
            self._reserve(owner, job_id, None)
        except ApiError as refused:
            refusal = refused
        else:
            refusal = None
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
        )
        if refusal is not None:  # recorded, so the client sees which object was refused and why
            self.store.fail(job.id, refusal.code, refusal.message)
            return self.store.get(job.id)
        self._enqueue(job, "batch", None)
        return job

    def get(self, client_id: str, job_id: str) -> Job:
        """The job if it is this client's; another client's job is as unknown as a missing one."""
        try:
            job = self.store.get(job_id) if job_id.startswith("job_") and len(job_id) < 100 else None
        except JobNotFound:
            job = None
        if job is None or job.client_id != client_id:
            raise NotFound("job_not_found", f"no job {job_id!r}")
        return job

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
        )
        self._enqueue(job, DEFAULT_PRIORITY, limits)
        return self.store.get(job.id)  # with the clips fields the new record holds

    def clips_result(self, client_id: str, job_id: str) -> dict[str, Any]:
        """A finished clips job's manifest with presigned GET URLs for every clip and the zip."""
        job = self.get(client_id, job_id)
        if not is_clips_job(job):
            raise Conflict("not_a_clips_job", f"{job_id} is not a clips job")
        if job.status != JobStatus.succeeded:
            raise Conflict("job_not_finished", f"the job is {job.status.value}; poll its status")
        manifest = self.storage.get_json(job.result_key)
        expires = self.settings.presign_expiry_s
        for item in (*manifest["clips"], manifest["zip"]):
            item["url"] = self._presigned_get(item["key"], expires)
        manifest["expires_in"], manifest["expires_at"] = expires, iso(time.time() + expires)
        return manifest

    def video_url(self, client_id: str, job_id: str) -> dict[str, Any]:
        """A presigned GET of the job's source video, to play it (the page reopening a job)."""
        job = self.get(client_id, job_id)
        expires = self.settings.presign_expiry_s
        storage = self.storage.for_bucket(job.bucket)
        url = storage.client.generate_presigned_url(
            "get_object", Params={"Bucket": job.bucket, "Key": job.key}, ExpiresIn=expires
        )
        return {"url": url, "expires_in": expires, "expires_at": iso(time.time() + expires)}

    def _presigned_get(self, key: str, expires: int) -> str:
        """A GET that downloads as a file (browsers ignore `download` on links to another origin)."""
        disposition = f'attachment; filename="{key.rsplit("/", 1)[-1]}"'
        params = {"Bucket": self.storage.bucket, "Key": key, "ResponseContentDisposition": disposition}
        return self.storage.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)

    def list(self, client_id: str, limit: int) -> list[Job]:
        return self.store.list_for(client_id, limit)

    def result(self, client_id: str, job_id: str, fmt: str, start_timecode: str | None = None) -> tuple[bytes, str]:
        """A finished job's result in `fmt`; `start_timecode` offsets the timeline formats (otio, fcpxml, xml, edl)."""
        if fmt not in (*RESULT_FORMATS, *RESULT_EXTRAS):
            raise InvalidRequest(
                "invalid_format", f"format must be among {', '.join((*RESULT_FORMATS, *RESULT_EXTRAS))}", "format"
            )
        job = self.get(client_id, job_id)
        if is_clips_job(job) and job.status == JobStatus.succeeded:
            if fmt != "json":
                raise InvalidRequest("invalid_format", "a clips job's result is its JSON manifest", "format")
            return json.dumps(self.clips_result(client_id, job_id)).encode(), "application/json"
        if job.status == JobStatus.failed:
            raise Conflict("job_failed", f"the job failed ({job.error_code}): {job.error_message}")
        if job.status == JobStatus.cancelled:
            raise Conflict("job_cancelled", "the job was cancelled; it has no result")
        if job.status != JobStatus.succeeded:
            raise Conflict("job_not_finished", f"the job is {job.status.value}; poll its status")
        document = self.storage.get_json(job.result_key)
        if fmt == "json":
            return json.dumps(document).encode(), "application/json"
        if fmt in EXPORT_FILES:
            try:
                return export(document, fmt, start_timecode), EXPORT_FILES[fmt][1]
            except ExportError as exc:
                code = "invalid_start_timecode" if exc.field == "start_timecode" else "unsupported_frame_rate"
                raise InvalidRequest(code, str(exc), exc.field) from exc
        if fmt == "rekognition":
            return json.dumps(self.rekognition_document(job, document)).encode(), "application/json"
        if fmt == "curve":
            return json.dumps(self._curve(document)).encode(), "application/json"
        if fmt in ("overview", "thumbnails"):
            previews = document.get("previews")
            if not previews:
                raise NotFound("no_preview", f"this result has no {fmt} picture (made before pictures existed)")
            media = "image/png" if fmt == "overview" else "image/jpeg"
            return self.storage.get_bytes(previews[fmt]["key"]), media
        return self.storage.get_bytes(document["probabilities"]["key"]), "application/octet-stream"

    def rekognition_document(self, job: Job, document: dict[str, Any] | None = None) -> dict[str, Any]:
        """The job as GetSegmentDetection returns it: status, and once it succeeded every segment."""
        options = json.loads(job.extra.get(REKOGNITION_OPTIONS, "{}"))
        s3_object = {"Bucket": job.bucket, "Name": job.key}
        if job.extra.get("source_version"):
            s3_object["Version"] = job.extra["source_version"]
        response: dict[str, Any] = {"JobId": job.id, "Video": {"S3Object": s3_object}}
        if options.get("job_tag"):
            response["JobTag"] = options["job_tag"]
        if job.status in (JobStatus.failed, JobStatus.cancelled):
            message = f"{job.error_code}: {job.error_message}" if job.status == JobStatus.failed else "cancelled"
            return {"JobStatus": "FAILED", "StatusMessage": message, **response}
        if job.status != JobStatus.succeeded:
            return {"JobStatus": "IN_PROGRESS", **response}
        document = document or self.storage.get_json(job.result_key)
        kwargs = {k: options[k] for k in ("shot_min_confidence", "cue_min_confidence") if k in options}
        if "segment_types" in options:
            kwargs["segment_types"] = tuple(options["segment_types"])
        return {**segment_detection(document, **kwargs), **response}

    def _curve(self, document: dict[str, Any], max_points: int = 20_000) -> dict[str, Any]:
        """Per-frame probabilities as JSON for plotting; long videos keep each stride's maximum."""
        with np.load(io.BytesIO(self.storage.get_bytes(document["probabilities"]["key"]))) as arrays:
            single, many = arrays["single_frame"], arrays["many_hot"]
        stride = max(1, -(-len(single) // max_points))
        return {
            "fps": document["video"]["fps"],
            "frame_count": len(single),
            "threshold": document["threshold"],
            "stride": stride,
            "single_frame": np.round(max_per_stride(single, stride), 4).tolist(),
            "many_hot": np.round(max_per_stride(many, stride), 4).tolist(),
        }


def job_view(job: Job, base: str = "/v1") -> dict[str, Any]:
    """The status representation of a job."""
    links = {"self": f"{base}/jobs/{job.id}"}
    if not job.status.finished:
        links["cancel"] = f"{base}/jobs/{job.id}/cancel"
    clips = is_clips_job(job)
    if job.status == JobStatus.succeeded:
        for fmt in ("json",) if clips else (*RESULT_FORMATS, *RESULT_EXTRAS):
            links[fmt] = f"{base}/jobs/{job.id}/result?format={fmt}"
        if not clips:
            links["clips"] = f"{base}/jobs/{job.id}/clips"
    links["video"] = f"{base}/jobs/{job.id}/video"
    # the process running the job, while it runs: {hostname, pid}
    worker = json.loads(job.extra["worker"]) if job.status == JobStatus.running and job.extra.get("worker") else None
    view = {
        "id": job.id,
        "status": job.status.value,
        "progress": job.progress,
        "frames_done": job.frames_done,
        "frames_total": job.frames_total,
        "threshold": job.threshold,
        "tag": job.tag,
        "source": job.key if is_url(job.key) else f"s3://{job.bucket}/{job.key}",
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "error": {"code": job.error_code, "message": job.error_message} if job.status == JobStatus.failed else None,
        "attempts": int(job.extra.get("attempts") or 0),
        "priority": job.extra.get("priority") or DEFAULT_PRIORITY,
        "worker": worker,
        "links": links,
    }
    if clips:
        view["kind"], view["parent_job_id"] = "clips", job.extra.get("parent")
    return view
