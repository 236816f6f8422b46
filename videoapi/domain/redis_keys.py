"""Every Redis key the service uses, named once.

The job store (videoapi.domain.jobs) is the only writer of job records; fairness, quotas, leases, API keys and
idempotency markers each live under their own prefix here. Lua scripts receive these names as arguments.
"""

from __future__ import annotations

import hashlib

JOB_PREFIX = "job:"
ACTIVE_JOBS_PREFIX = "active_jobs:"  # a client's queued and running jobs (its quota)
FAIR_QUEUE_PREFIX = "fair:q:"  # a client's queued jobs, one list per priority
FAIR_CLIENTS = "fair:clients"  # sorted set: active client -> virtual time
FAIR_WEIGHTS = "fair:weights"  # hash: client -> weight (absent: 1)
FAIR_LAST = "fair:last"  # hash: client -> its virtual time when it went idle
FAIR_CLOCK = "fair:clock"  # the virtual time of the last pop
LEASES = "leases"  # sorted set: task id -> expiry (unix seconds)
LEASES_REAPER_LOCK = "leases:reaper"
AWS_KEY_PAIRS = "awskeys"  # hash: access key id -> {client, secret}
API_KEYS = "apikeys"  # hash: an API key's SHA-256 -> its client
BATCH_PREFIX = "batch:"


def job(job_id: str) -> str:
    """The hash of one job's record."""
    return f"{JOB_PREFIX}{job_id}"


def client_jobs(client_id: str) -> str:
    """Sorted set of a client's job ids by creation time."""
    return f"client_jobs:{client_id}"


def active_jobs(client_id: str) -> str:
    """Set of a client's queued and running jobs (the job store removes a job when it finishes)."""
    return f"{ACTIVE_JOBS_PREFIX}{client_id}"


def fair_queue(client_id: str, priority: str) -> str:
    return f"{FAIR_QUEUE_PREFIX}{client_id}:{priority}"


def fair_claim(token_id: str) -> str:
    return f"fair:claim:{token_id}"


def frames_used(client_id: str, day: str) -> str:
    """Frames run for a client on one UTC day."""
    return f"usage:frames:{client_id}:{day}"


def rate_limit(bucket: str) -> str:
    """A token bucket: an API key's, or an AWS access key's (`aws:<id>`)."""
    return f"ratelimit:{bucket}"


def api_key_limits(key_hash: str) -> str:
    """Hash of one API key's overrides of the client limits."""
    return f"apikey:{key_hash}"


def idempotency(client_id: str, idempotency_key: str) -> str:
    """The marker of a submission with an Idempotency-Key (or Rekognition's ClientRequestToken)."""
    return f"idem:{client_id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"


def s3_event(bucket: str, key: str, sequencer: str) -> str:
    """The marker of one S3 event, so that a redelivered notification makes no second job."""
    return f"s3event:{bucket}:{hashlib.sha256(f'{key}|{sequencer}'.encode()).hexdigest()}"


def upload_size(bucket: str, key: str) -> str:
    """The size of an object the API stored itself (a direct upload), so that submitting it needs no HEAD."""
    return f"upload:{bucket}:{hashlib.sha256(key.encode()).hexdigest()}"


def lease(task_id: str) -> str:
    return f"lease:{task_id}"


def draining(hostname: str) -> str:
    """Set (to the grace period's end, unix seconds) while the worker `hostname` is shutting down."""
    return f"draining:{hostname}"


def checkpoints(job_id: str, span_start: int) -> str:
    """List of the checkpoints a task (the span starting at span_start) has written, in order."""
    return f"parts:{job_id}:{span_start:09d}"


def checkpoint_lists(job_id: str) -> str:
    """Set of the job's checkpoint lists, to delete them with the job's scratch files."""
    return f"parts:{job_id}"


def batch(batch_id: str) -> str:
    """The hash of one batch's record and counters."""
    return f"{BATCH_PREFIX}{batch_id}"


def batch_active(batch_id: str) -> str:
    """Set of a batch's items (job ids) queued or running."""
    return f"{BATCH_PREFIX}{batch_id}:active"


def batch_failed(batch_id: str) -> str:
    """List of a batch's failed items, `index:attempt`, for POST /v1/batches/{id}/retry."""
    return f"{BATCH_PREFIX}{batch_id}:failed"


def batch_retry(batch_id: str) -> str:
    """List of items to run again (`index:attempt`), fed before the rows not yet run."""
    return f"{BATCH_PREFIX}{batch_id}:retry"


def batch_item_lock(job_id: str) -> str:
    """Held while one process makes an item's clips job, so that two never make it at once."""
    return f"{BATCH_PREFIX}item:{job_id}:making"


def batch_feed_lock(batch_id: str) -> str:
    """Held while one process feeds the batch's items, so that two never feed the same row."""
    return f"{BATCH_PREFIX}{batch_id}:feeding"


def client_batches(client_id: str) -> str:
    """Sorted set of a client's batch ids by creation time."""
    return f"client_batches:{client_id}"


def open_batches(client_id: str) -> str:
    """Set of a client's batches with items still to feed: any of its jobs ending feeds them."""
    return f"open_batches:{client_id}"
