"""Job-finished callbacks: the job's status document POSTed to the client's URL, optionally signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import httpx

from videoapi.domain.jobs import Job
from videoapi.domain.views import job_view
from videoapi.errors import CallbackFailed

logger = logging.getLogger(__name__)


def callback_body(job: Job) -> bytes:
    return json.dumps({"event": f"job.{job.status.value}", "job": job_view(job)}, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(url: str, job: Job, *, secret: str = "", timeout_s: float = 10.0) -> int:
    """POST once; returns the status code, raises CallbackFailed when a retry could help."""
    body = callback_body(job)
    headers = {"Content-Type": "application/json", "User-Agent": "videoapi-callback/1"}
    if secret:
        headers["X-Videoapi-Signature"] = signature(secret, body)
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        logger.warning("callback to %s failed: %s", url, exc)
        raise CallbackFailed(f"callback to {url} failed: {exc}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise CallbackFailed(f"callback to {url} answered {response.status_code}")
    return response.status_code
