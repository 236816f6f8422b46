"""Batches: many sources submitted at once, their items run as the client's jobs at `batch` priority.

Submitting reads the sources once as a stream (videoapi.domain.batch_sources): the rows that pass are written
to storage in chunks of `CHUNK_ROWS`, the refused ones to one file, and the batch's record is one Redis hash;
no job exists yet. A feeder then turns rows into jobs only as the client's quota has room (its
`batch_quota_share` of it, so its interactive jobs keep theirs): the submission feeds a first few, and every
job of the client that ends feeds more. A batch therefore never meets 429, and a million rows cost a
million Redis writes only as they run.

An item's job id is derived from the batch, the row's index and the attempt, and a row is fed at most once
per attempt (one feeder at a time holds the batch's lock; a job that exists is not made again); an item's
end is counted once (a mark on its job) and written as its part of the results (videoapi.domain.batch_results).

Over 300 lines because submitting, feeding, counting an item's end, cancelling and retrying share the batch's
record and must agree on it; reading the sources and the results table live in their own modules.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from videoapi.adapters.redis_client import text, text_hash, texts
from videoapi.domain import batch_results, redis_keys
from videoapi.domain.batch_sources import (
    BatchRow,
    RowError,
    inline_rows,
    manifest_rows,
    prefix_rows,
)
from videoapi.domain.idempotency import wait_until_made
from videoapi.domain.jobs import POSTPROCESS_FIELD, Job, JobStatus
from videoapi.domain.submission import ClientLimits, JobService
from videoapi.domain.validation import check_key
from videoapi.domain.views import download_link, iso
from videoapi.errors import ApiError, Conflict, InvalidRequest, NotFound, ObjectNotFound, Refusal, TooLarge
from videoapi.pipeline.clips import CLIPS_JOB_KIND, dataset_spans, is_clips_job
from videoapi.pipeline.cues import SegmentOptions

logger = logging.getLogger(__name__)

CHUNK_ROWS = 10_000  # rows per stored chunk: a feeder reads one chunk for up to this many items
SUBMIT_FEED = 16  # items the submission itself feeds (the rest as jobs end), so that it answers at once
BATCH_PRIORITY = "batch"
BATCH_FIELD, INDEX_FIELD, COUNTED_FIELD = "batch_id", "batch_index", "batch_counted"
_LOCK_S = 120


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(16)


def item_job_id(batch_id: str, index: int, attempt: int) -> str:
    """The job of one attempt of one item: the same for every feeder, so that an item is never made twice."""
    return "job_" + hashlib.sha256(f"{batch_id}:{index}:{attempt}".encode()).hexdigest()[:32]


def item_clips_job_id(detection_job_id: str) -> str:
    """The clips job of an item's detection job: the same for whoever makes it."""
    return "job_" + hashlib.sha256(f"{detection_job_id}:clips".encode()).hexdigest()[:32]


def rows_key(batch_id: str, chunk: int) -> str:
    return f"batches/{batch_id}/rows/{chunk:06d}.json"


@dataclass(frozen=True)
class BatchRequest:
    """What POST /v1/batches asks: exactly one of prefix, manifest or items; options for every item."""

    prefix: str | None = None
    manifest: str | None = None
    items: tuple[Any, ...] | None = None
    options: dict[str, Any] | None = None
    tag: str = ""
    clips: dict[str, Any] | None = None  # videoapi.domain.batch_sources.BatchClips, dumped

    def fingerprint(self) -> str:
        body = [self.prefix, self.manifest, list(self.items or ()), self.options, self.tag, self.clips]
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class BatchService:
    """Submit, feed, count, cancel and retry batches; read their results."""

    def __init__(self, jobs: JobService):
        self.jobs, self.redis, self.storage = jobs, jobs.store.redis, jobs.storage
        self.settings = jobs.settings
        # the last rows chunk read, kept: a worker feeds a few items at each job's end, mostly from the same chunk,
        # which it would otherwise fetch and parse again (10,000 rows) for each of them
        self._chunk: tuple[str, int, list[BatchRow]] | None = None

    # submission ----------------------------------------------------------------------------------
    def _rows(self, client_id: str, request: BatchRequest) -> Iterator[BatchRow | RowError]:
        def check(source: str) -> object:
            return self.jobs.check_source(client_id, source)

        if request.items is not None:
            if not request.items:
                raise InvalidRequest("empty_batch", "the list of sources is empty", "sources")
            return inline_rows(request.items, check)
        location = request.prefix if request.prefix is not None else request.manifest or ""
        name = "sources.prefix" if request.prefix is not None else "sources.manifest"
        try:
            bucket, key = self.jobs.check_source(client_id, location)
        except ApiError as error:
            raise type(error)(error.code, f"{name}: {error.message}", name) from None
        if not bucket:
            raise InvalidRequest("source_not_allowed", f"{name} must be an upload key or s3:// location", name)
        if request.prefix is not None:
            if not key.endswith("/"):
                key += "/"
            return prefix_rows(self.storage, bucket, key, check)
        return manifest_rows(self.storage, bucket, key, check, name)

    def submit(
        self, client_id: str, request: BatchRequest, limits: ClientLimits, idempotency_key: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Read and check every row, store them, feed the first items; the batch's view and whether it is new."""
        batch_id = new_batch_id()
        clips = self._clips_target(batch_id, request.clips)  # a destination it may not write: 4xx, nothing made
        if idempotency_key:
            earlier = self.jobs.markers.claim(client_id, idempotency_key, batch_id, request.fingerprint())
            if earlier is not None:  # the batch that request is still reading (or read)
                return wait_until_made(lambda: self.view(client_id, earlier), NotFound, 30.0, 0.1), False
        try:
            counts = self._store_rows(client_id, batch_id, request)
        except Exception:
            if idempotency_key:  # nothing was made: the same key may be tried again
                self.jobs.markers.release(client_id, idempotency_key)
            raise
        now = time.time()
        share = max(1, math.floor(limits.max_active_jobs * self.settings.batch_quota_share))
        record: dict[Any, str | int | float] = {  # Any keys: redis-py's mapping type is invariant in them
            "id": batch_id,
            "client_id": client_id,
            "tag": request.tag,
            "created_at": now,
            "total": counts["total"],
            "refused": counts["refused"],
            "valid": counts["valid"],
            "fed": 0,
            "succeeded": 0,
            "failed": 0,
            "cancelled": 0,
            "frames_done": 0,
            "seconds_done": 0.0,
            "options": json.dumps(request.options or {}),
            "clips": json.dumps(clips) if clips else "",
            "item_limit": share,
            "weight": limits.weight,
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(redis_keys.batch(batch_id), mapping=record)
            pipe.zadd(redis_keys.client_batches(client_id), {batch_id: now})
            if counts["valid"]:
                pipe.sadd(redis_keys.open_batches(client_id), batch_id)
            else:
                pipe.hset(redis_keys.batch(batch_id), "finished_at", now)
            pipe.execute()
        self.feed(batch_id, most=SUBMIT_FEED)
        return self.view(client_id, batch_id), True

    def _clips_target(self, batch_id: str, clips: dict[str, Any] | None) -> dict[str, Any] | None:
        """The batch's clips options with where they go: `bucket` and the key `prefix` every item's folder is under."""
        if clips is None:
            return None
        folder = clips.get("prefix") or ""
        if folder.startswith("s3://"):
            bucket, _, key = folder[5:].partition("/")
            if bucket not in self.settings.clip_buckets:
                message = f"bucket {bucket!r} is not one this service writes clips to (VIDEOAPI_CLIP_BUCKETS)"
                raise InvalidRequest("bucket_not_allowed", message, "clips.prefix")
            key = key.strip("/")
            prefix = check_key(key, "clips.prefix") + "/" if key else ""
        else:  # in the service's bucket, only under the batch's own folder: never over another key
            bucket, prefix = self.storage.bucket, f"batches/{batch_id}/clips/"
            if folder.strip("/"):
                prefix += check_key(folder.strip("/"), "clips.prefix") + "/"
        return {**clips, "bucket": bucket, "prefix": prefix}

    def _store_rows(self, client_id: str, batch_id: str, request: BatchRequest) -> dict[str, int]:
        limit = self.settings.batch_max_items
        total = valid = 0
        chunk: list[list[Any]] = []
        refused: list[str] = []
        # each full chunk is stored on a thread while the next rows are read and checked: the PUT's round trip
        # overlaps the parsing instead of following it (at most two chunks wait, so memory stays bounded)
        with ThreadPoolExecutor(1, thread_name_prefix="batch-rows") as uploads:
            stored: list[Future[None]] = []
            for row in self._rows(client_id, request):
                total += 1
                if total > limit:
                    wait(stored)  # every chunk stored before it is deleted
                    self._delete_rows(batch_id, valid)
                    message = f"a batch may hold {limit} rows (VIDEOAPI_BATCH_MAX_ITEMS)"
                    raise TooLarge("batch_too_large", message, "sources")
                if isinstance(row, RowError):
                    refused.append(json.dumps(row.record()))
                    continue
                chunk.append([row.row, row.source, row.item_id, row.options])
                valid += 1
                if len(chunk) == CHUNK_ROWS:
                    if len(stored) >= 2:
                        stored.pop(0).result()  # raises the PUT's error, if it failed
                    stored.append(uploads.submit(self._put_chunk, batch_id, valid // CHUNK_ROWS - 1, chunk))
                    chunk = []
            for put in stored:
                put.result()
        if total == 0:
            raise InvalidRequest("empty_batch", "no sources: the prefix holds no objects", "sources")
        if chunk:
            self._put_chunk(batch_id, valid // CHUNK_ROWS, chunk)
        if refused:
            key = batch_results.refused_rows_key(batch_id)
            self.storage.put_bytes(key, _lines(refused), "application/x-ndjson")
        return {"total": total, "valid": valid, "refused": total - valid}

    def _put_chunk(self, batch_id: str, chunk: int, rows: list[list[Any]]) -> None:
        # one JSON array of [row, source, id, options]: one encoding call for 10,000 rows, not one each (most of
        # a 100,000-row manifest's submission was json.dumps called per row)
        self.storage.put_bytes(
            rows_key(batch_id, chunk), json.dumps(rows, separators=(",", ":")).encode(), "application/json"
        )

    def _delete_rows(self, batch_id: str, valid: int) -> None:
        for chunk in range(valid // CHUNK_ROWS):
            self.storage.delete(rows_key(batch_id, chunk))

    # feeding -------------------------------------------------------------------------------------
    def _record(self, batch_id: str) -> dict[str, str]:
        return text_hash(self.redis.hgetall(redis_keys.batch(batch_id)))

    def feed(self, batch_id: str, most: int | None = None) -> int:
        """Make and queue items while the client's quota has room (at most `most`); the number made."""
        lock = redis_keys.batch_feed_lock(batch_id)
        if not self.redis.set(lock, "1", nx=True, ex=_LOCK_S):
            return 0  # another process is feeding it
        try:
            return self._feed(batch_id, most)
        finally:
            self.redis.delete(lock)

    def _feed(self, batch_id: str, most: int | None) -> int:
        record = self._record(batch_id)
        if not record or record.get("cancelled_at"):
            return 0
        client_id, made = record["client_id"], 0
        limits = ClientLimits(int(record["item_limit"]), 0.0, float(record.get("weight") or 1))
        options = json.loads(record.get("options") or "{}")
        while most is None or made < most:
            if self.redis.hexists(redis_keys.batch(batch_id), "cancelled_at"):
                break
            popped = self.redis.lpop(redis_keys.batch_retry(batch_id))
            retry = text(popped) if isinstance(popped, bytes | str) else None
            if retry is not None:
                index, attempt = (int(part) for part in retry.split(":"))
            else:
                index, attempt = int(self.redis.hget(redis_keys.batch(batch_id), "fed") or 0), 1
                if index >= int(record["valid"]):
                    self.redis.srem(redis_keys.open_batches(client_id), batch_id)
                    break
            row = self._row(batch_id, index)
            job_id = item_job_id(batch_id, index, attempt)
            try:
                self.jobs.quotas.reserve(client_id, job_id, limits.max_active_jobs)
            except Refusal:  # the quota is full: the next job of this client to end feeds again
                if retry is not None:
                    self.redis.lpush(redis_keys.batch_retry(batch_id), retry)
                break
            if not self.redis.exists(redis_keys.job(job_id)):  # a feeder that died after making it made it
                self._make_item(batch_id, client_id, row, index, attempt, job_id, {**options, **row.options}, limits)
            if retry is None:
                self.redis.hincrby(redis_keys.batch(batch_id), "fed", 1)
            made += 1
        return made

    def _row(self, batch_id: str, index: int) -> BatchRow:
        chunk, kept = index // CHUNK_ROWS, self._chunk  # one read of it: the API's threads share this service
        if kept is None or kept[:2] != (batch_id, chunk):  # rows are never rewritten: a chunk read stays right
            rows = json.loads(self.storage.get_bytes(rows_key(batch_id, chunk)))
            kept = self._chunk = (
                batch_id,
                chunk,
                [BatchRow(row, source, item, options) for row, source, item, options in rows],
            )
        return kept[2][index % CHUNK_ROWS]

    def _make_item(
        self,
        batch_id: str,
        client_id: str,
        row: BatchRow,
        index: int,
        attempt: int,
        job_id: str,
        options: dict[str, Any],
        limits: ClientLimits,
    ) -> None:
        fields = {
            BATCH_FIELD: batch_id,
            INDEX_FIELD: str(index),
            "batch_row": str(row.row),
            "batch_item_id": row.item_id,
            "batch_source": row.source,
            "batch_attempt": str(attempt),
        }
        # checked when submitted; whether the object exists the worker finds out (video_not_found), so that
        # feeding costs no storage request and a batch of missing objects still moves as its jobs end
        bucket, key = self.jobs.check_source(client_id, row.source)
        postprocess = options.get("postprocess")
        self.jobs.store.create(
            job_id=job_id,
            bucket=bucket,
            key=key,
            threshold=options.get("threshold") or self.settings.threshold,
            client_id=client_id,
            tag=row.item_id,
            formats="json",
            callback_url="",
            source_version="",
            **{POSTPROCESS_FIELD: "1" if (self.settings.postprocess if postprocess is None else postprocess) else "0"},
            segment_options=SegmentOptions().model_dump_json(),
            priority=BATCH_PRIORITY,
            # its record and its place in the client's queue in one transaction: a feeder dying between the two
            # would leave an item queued that no worker can find
            queue_with=lambda pipe: self.jobs.fair.push(client_id, job_id, BATCH_PRIORITY, limits.weight, pipe=pipe),
            **fields,
        )
        self.redis.sadd(redis_keys.batch_active(batch_id), job_id)
        self.jobs.queue.enqueue_token()

    # an item's end -------------------------------------------------------------------------------
    def item_ended(self, job: Job, document: dict[str, Any] | None = None) -> None:
        """Write a finished item's part of the results and count it, once; then feed the client's batches.

        An item of a batch that asked for clips ends with its clips job: its detection job's end makes that job.
        """
        batch_id = job.extra.get(BATCH_FIELD)
        if not batch_id or not job.status.finished:
            return
        index, attempt = int(job.extra[INDEX_FIELD]), int(job.extra.get("batch_attempt") or 1)
        clips_job = is_clips_job(job)
        detection = self.jobs.store.get(job.extra["parent"]) if clips_job else job
        if detection.status != JobStatus.succeeded:
            document = None
        elif document is None:  # `document`: the one the worker just wrote, when it was this job's
            document = self.storage.get_json(detection.result_key)
        clip_keys: dict[int, str] = {}
        if document is not None and not clips_job:
            if self._start_clips(batch_id, job, document, self._record(batch_id)):
                return
        elif document is not None and job.status == JobStatus.succeeded:
            manifest = self.storage.get_json(job.result_key)
            shown = "{key}" if manifest["bucket"] == self.storage.bucket else f"s3://{manifest['bucket']}/{{key}}"
            clip_keys = {clip["shot"]: shown.format(key=clip["key"]) for clip in manifest["clips"]}
        item = batch_results.item_row(
            item_id=job.extra.get("batch_item_id", ""),
            row=int(job.extra.get("batch_row") or 0),
            source=job.extra.get("batch_source", ""),
            job_id=detection.id,  # the item's detection job, also when its clips job ended it
            status=job.status.value,
            attempts=attempt,
            error_code=job.error_code,
            error_message=job.error_message,
            document=document,
        )
        shots = batch_results.shot_rows(item, document, clip_keys) if document else []
        self.storage.put_json(batch_results.part_key(batch_id, index), {"item": item, "shots": shots})
        if self.jobs.store.set_once(job.id, COUNTED_FIELD):
            key = redis_keys.batch(batch_id)
            with self.redis.pipeline() as pipe:
                pipe.hincrby(key, job.status.value, 1)
                pipe.srem(redis_keys.batch_active(batch_id), job.id)
                if document:
                    pipe.hincrby(key, "frames_done", int(document["video"]["frame_count"]))
                    pipe.hincrbyfloat(key, "seconds_done", float(document["video"]["duration"] or 0))
                if job.status == JobStatus.failed:
                    pipe.rpush(redis_keys.batch_failed(batch_id), f"{index}:{attempt}")
                pipe.execute()
        self._finish_if_done(batch_id)

    def _start_clips(self, batch_id: str, job: Job, document: dict[str, Any], record: dict[str, str]) -> bool:
        """Make (once) and queue the clips job of an item whose detection succeeded; False when the batch asked for
        no clips or no shot is kept."""
        clips = json.loads(record.get("clips") or "null")
        if not clips:
            return False
        spans = dataset_spans(
            document, clips.get("min_duration_s") or 0.0, clips.get("max_duration_s"), clips["trim_transitions"]
        )
        if not spans:
            return False
        clips_id = item_clips_job_id(job.id)
        # one maker at a time (the worker's hook and a GET counting a missed end may both get here); a maker that
        # died leaves the detection job ended among the active ones, and the next count makes it after the lock
        if self.redis.set(redis_keys.batch_item_lock(clips_id), "1", nx=True, ex=_LOCK_S):
            if not self.redis.exists(redis_keys.job(clips_id)):
                weight = float(record.get("weight") or 1)
                self._make_clips_job(batch_id, job, clips_id, [span.shot for span in spans], clips, weight)
            with self.redis.pipeline() as pipe:
                pipe.sadd(redis_keys.batch_active(batch_id), clips_id)
                pipe.srem(redis_keys.batch_active(batch_id), job.id)
                pipe.execute()
        return True

    def _make_clips_job(
        self, batch_id: str, job: Job, clips_id: str, shots: list[int], clips: dict[str, Any], weight: float
    ) -> None:
        item = job.extra.get("batch_item_id", "")
        row = int(job.extra.get("batch_row") or 0)
        options = {
            "parent": job.id,
            "mode": clips["mode"],
            "shots": shots,
            "trim_transitions": clips["trim_transitions"],
            "bucket": clips["bucket"],
            "prefix": f"{clips['prefix']}{clip_folder(row, item)}/",
            "zip": False,
            "manifest": f"batches/{batch_id}/clip-manifests/{int(job.extra[INDEX_FIELD]):09d}.json",
        }
        # the slot its detection job freed: an item begun is finished before new ones start, never refused
        self.jobs.quotas.reserve(job.client_id, clips_id, 1 << 30)
        batch_fields = {k: v for k, v in job.extra.items() if k.startswith("batch_") and k != COUNTED_FIELD}
        self.jobs.store.create(
            job_id=clips_id,
            bucket=job.bucket,
            key=job.key,
            threshold=job.threshold,
            client_id=job.client_id,
            tag=job.tag,
            kind=CLIPS_JOB_KIND,
            parent=job.id,
            clip_options=json.dumps(options),
            priority=BATCH_PRIORITY,
            queue_with=lambda pipe: self.jobs.fair.push(job.client_id, clips_id, BATCH_PRIORITY, weight, pipe=pipe),
            **batch_fields,
        )
        self.jobs.queue.enqueue_token()

    def job_ended(self, job: Job, document: dict[str, Any] | None = None) -> None:
        """Any job of a client ending: count it if a batch's item, then feed the client's open batches."""
        self.item_ended(job, document)
        for batch_id in texts(self.redis.smembers(redis_keys.open_batches(job.client_id))):
            self.feed(batch_id)

    def _finish_if_done(self, batch_id: str) -> None:
        counts = self.counts(self._record(batch_id), batch_id)
        if counts["pending"] == counts["queued"] == counts["running"] == 0:
            self.redis.hsetnx(redis_keys.batch(batch_id), "finished_at", time.time())

    # reading -------------------------------------------------------------------------------------
    def _owned(self, client_id: str, batch_id: str) -> dict[str, str]:
        record = self._record(batch_id) if batch_id.startswith("batch_") and len(batch_id) < 100 else {}
        if not record or record.get("client_id") != client_id:
            raise NotFound("batch_not_found", f"no batch {batch_id!r}")
        return record

    def _active(self, batch_id: str) -> list[Job]:
        ids = texts(self.redis.smembers(redis_keys.batch_active(batch_id)))
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(redis_keys.job(job_id))
            records = pipe.execute()
        return [Job.from_hash(text_hash(r)) for r in records if r]

    def counts(self, record: dict[str, str], batch_id: str) -> dict[str, int]:
        active = self._active(batch_id)
        ended = [job for job in active if job.status.finished]
        for job in ended:  # ended without being counted (its worker's hook failed): counted now
            self.item_ended(job)
        if ended:
            record = self._record(batch_id)
        waiting = int(record["valid"]) - int(record["fed"]) + int(self.redis.llen(redis_keys.batch_retry(batch_id)))
        cancelled = int(record["cancelled"]) + (waiting if record.get("cancelled_at") else 0)
        return {
            "total": int(record["total"]),
            "pending": 0 if record.get("cancelled_at") else waiting,
            "queued": sum(job.status == JobStatus.queued for job in active),
            "running": sum(job.status == JobStatus.running for job in active),
            "succeeded": int(record["succeeded"]),
            "failed": int(record["failed"]) + int(record["refused"]),
            "cancelled": cancelled,
        }

    def view(self, client_id: str, batch_id: str) -> dict[str, Any]:
        """The batch as the API shows it: counts, frames and seconds done, throughput, an ETA, links."""
        record = self._owned(client_id, batch_id)
        counts = self.counts(record, batch_id)
        if counts["pending"] and not counts["queued"] and not counts["running"]:
            self.feed(batch_id, most=SUBMIT_FEED)  # nothing in flight would feed it (the quota was full)
            counts = self.counts(self._record(batch_id), batch_id)
        record = self._record(batch_id)
        created = float(record["created_at"])
        finished = float(record["finished_at"]) if record.get("finished_at") else None
        elapsed = max(1e-6, (finished or time.time()) - created)
        done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
        ran = counts["succeeded"] + int(record["failed"])
        items_per_s = ran / elapsed
        remaining = counts["pending"] + counts["queued"] + counts["running"]
        status = "cancelled" if record.get("cancelled_at") else "finished" if not remaining else "running"
        base = f"/v1/batches/{batch_id}"
        links = {"self": base, "results": f"{base}/results", "items": f"{base}/results?items=true"}
        if status == "running":
            links["cancel"] = f"{base}/cancel"
        if int(record["failed"]):
            links["retry"] = f"{base}/retry"
        return {
            "id": batch_id,
            "status": status,
            "tag": record.get("tag", ""),
            "items": counts["total"],
            "counts": {k: v for k, v in counts.items() if k != "total"},
            "done": done,
            "frames_done": int(record["frames_done"]),
            "seconds_done": round(float(record["seconds_done"]), 3),
            "throughput": {
                "items_per_s": round(items_per_s, 3),
                "frames_per_s": round(int(record["frames_done"]) / elapsed, 1),
            },
            "eta_s": round(remaining / items_per_s, 1) if remaining and items_per_s > 0 else None,
            "options": json.loads(record.get("options") or "{}"),
            "created_at": iso(created),
            "finished_at": iso(finished),
            "links": links,
        }

    def list(self, client_id: str, limit: int) -> list[dict[str, Any]]:
        ids = texts(self.redis.zrevrange(redis_keys.client_batches(client_id), 0, limit - 1))
        return [self.view(client_id, batch_id) for batch_id in ids if self._record(batch_id)]

    # cancel and retry ----------------------------------------------------------------------------
    def cancel(self, client_id: str, batch_id: str) -> dict[str, Any]:
        """Stop feeding, cancel the queued and running items; the items that ended keep their results."""
        record = self._owned(client_id, batch_id)
        if record.get("finished_at") and not record.get("cancelled_at"):
            raise Conflict("batch_finished", "the batch has finished; nothing to cancel")
        self.redis.hsetnx(redis_keys.batch(batch_id), "cancelled_at", time.time())
        self.redis.srem(redis_keys.open_batches(client_id), batch_id)
        lock = redis_keys.batch_feed_lock(batch_id)
        for _ in range(100):  # a feeder at work stops at its next row; wait for it (5 s at most)
            if not self.redis.exists(lock):
                break
            time.sleep(0.05)
        for job in self._active(batch_id):
            self.jobs.store.cancel(job.id)
            self.item_ended(self.jobs.store.get(job.id))
        self.redis.hsetnx(redis_keys.batch(batch_id), "finished_at", time.time())
        return self.view(client_id, batch_id)

    def retry(self, client_id: str, batch_id: str) -> dict[str, Any]:
        """Run the failed items again (a new attempt each, a new job); the rows refused up front stay failed."""
        record = self._owned(client_id, batch_id)
        if record.get("cancelled_at"):
            raise Conflict("batch_cancelled", "the batch was cancelled; submit it again")
        moved = 0
        while entries := texts(self.redis.lpop(redis_keys.batch_failed(batch_id), 1000) or []):
            again = [f"{entry.split(':')[0]}:{int(entry.split(':')[1]) + 1}" for entry in entries]
            with self.redis.pipeline() as pipe:
                pipe.rpush(redis_keys.batch_retry(batch_id), *again)
                pipe.hincrby(redis_keys.batch(batch_id), "failed", -len(again))
                pipe.execute()
            moved += len(again)
        if not moved:
            raise Conflict("nothing_to_retry", "no item of the batch failed while running")
        with self.redis.pipeline() as pipe:
            pipe.hdel(redis_keys.batch(batch_id), "finished_at")
            pipe.sadd(redis_keys.open_batches(client_id), batch_id)
            pipe.execute()
        self.feed(batch_id, most=SUBMIT_FEED)
        return self.view(client_id, batch_id)

    # results -------------------------------------------------------------------------------------
    def clip_url(self, client_id: str, batch_id: str, key: str) -> dict[str, Any]:
        """A presigned GET of one of the batch's clips (a `clip_key` of its shots table)."""
        record = self._owned(client_id, batch_id)
        clips = json.loads(record.get("clips") or "null")
        if not clips:
            raise Conflict("no_clips", "the batch asked for no clips")
        if clips["bucket"] != self.storage.bucket:
            raise Conflict("clips_elsewhere", f"the batch's clips are in s3://{clips['bucket']}/; read them there")
        if not key.startswith(clips["prefix"]) or not key.endswith(".mp4"):
            raise NotFound("clip_not_found", "no such clip among the batch's", "key")
        try:
            self.storage.size(check_key(key, "key"))
        except ObjectNotFound:
            raise NotFound("clip_not_found", "no such clip among the batch's", "key") from None
        return {"key": key, **download_link(self.storage, key, self.settings.presign_expiry_s, as_file=True)}

    def results(self, client_id: str, batch_id: str, fmt: str, items: bool) -> tuple[Iterator[bytes], str]:
        """The shots (or items) table so far, streamed in `fmt`, and its media type."""
        if fmt not in batch_results.BATCH_RESULT_FORMATS:
            formats = ", ".join(batch_results.BATCH_RESULT_FORMATS)
            raise InvalidRequest("invalid_format", f"format must be one of {formats}", "format")
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise InvalidRequest(
                    "parquet_unavailable", "this deployment has no pyarrow (the dataset extra)", "format"
                ) from None
        self._owned(client_id, batch_id)
        rows = batch_results.read_rows(self.storage, batch_id, items)
        return batch_results.encode(rows, fmt, items), batch_results.MEDIA_TYPES[fmt]


def clip_folder(row: int, item_id: str) -> str:
    """The folder of an item's clips: its row, then its id made safe as one name of a key or a path."""
    return f"{row:06d}-" + (re.sub(r"[^A-Za-z0-9._=-]+", "_", item_id).strip("._")[:120] or "item")


def _lines(records: list[str]) -> bytes:
    return ("\n".join(records) + "\n").encode()
