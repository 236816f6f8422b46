"""S3 ObjectCreated events under the trigger prefix become jobs, with no API call.

S3 delivers events at least once: the (key, sequencer) pair makes a repeated delivery find
the job the first one created.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from functions.deps import Services
from functions.observability import configure_process, count_refusal
from videoapi.domain.fairness import QUOTA_EXCEEDED
from videoapi.errors import ApiError
from videoapi.settings import get_settings

logger = logging.getLogger(__name__)


@cache
def _services() -> Services:
    configure_process(get_settings())
    return Services.from_settings(get_settings())


def handle_event(event: dict[str, Any], services: Services) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        bucket = s3.get("bucket", {}).get("name", "")
        obj = s3.get("object", {})
        key = unquote_plus(obj.get("key", ""))  # S3 URL-encodes keys in events
        sequencer = obj.get("sequencer") or obj.get("eTag") or ""
        try:
            job = services.jobs.create_from_event(bucket, key, int(obj.get("size", 0)), sequencer)
        except ApiError as exc:
            logger.info("S3 event for s3://%s/%s refused: %s", bucket, key, exc.code)
            outcomes.append({"key": key, "error": exc.code})
            continue
        if job is not None and job.error_code == QUOTA_EXCEEDED:
            count_refusal(QUOTA_EXCEEDED)
            outcomes.append({"key": key, "job_id": job.id, "error": QUOTA_EXCEEDED})
            continue
        outcomes.append({"key": key, "job_id": job.id if job else None})
    return outcomes


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return {"jobs": handle_event(event, _services())}
