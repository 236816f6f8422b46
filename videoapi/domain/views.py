"""A job as the API shows it: status, progress, links to its results."""

from __future__ import annotations

import json
import time
from typing import Any

from videoapi.adapters.storage import Storage
from videoapi.domain.fairness import DEFAULT_PRIORITY
from videoapi.domain.formats import RESULT_EXTRAS, RESULT_FORMATS
from videoapi.domain.jobs import Job, JobStatus
from videoapi.pipeline.clips import is_clips_job
from videoapi.pipeline.url_source import is_url


def iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def download_link(storage: Storage, key: str, expires_s: int, *, as_file: bool = False) -> dict[str, Any]:
    """A presigned GET of `key` and when it expires; `as_file`: browsers save it under its name (they ignore
    `download` on links to another origin)."""
    url = storage.presigned_get(key, expires_s, download_as=key.rsplit("/", 1)[-1] if as_file else None)
    return {"url": url, "expires_in": expires_s, "expires_at": iso(time.time() + expires_s)}


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
