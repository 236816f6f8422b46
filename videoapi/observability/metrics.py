"""Prometheus metrics of the API, the workers and the Triton client, one registry per process.

Under Gunicorn or Celery prefork, PROMETHEUS_MULTIPROC_DIR must be set before this module is first
imported (the worker's and Gunicorn's start do it): every process then writes its samples to files there
and the scrape sums them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_JOB_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
_WAIT_BUCKETS = (0.05, 0.1, 0.25, *_JOB_BUCKETS)  # an idle queue is a wait of a fraction of a second
_FPS_BUCKETS = (10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000)

HTTP_REQUESTS = Counter(
    "videoapi_http_requests",
    "API requests by route, method, status and client",
    ["route", "method", "status", "client"],
)
HTTP_LATENCY = Histogram(
    "videoapi_http_request_duration_seconds", "API request latency", ["route", "method"], buckets=_LATENCY_BUCKETS
)
REFUSED = Counter(
    "videoapi_requests_refused", "Requests and S3 objects refused with 429 by a client limit, by code", ["code"]
)
JOBS_SUBMITTED = Counter("videoapi_jobs_submitted", "Jobs accepted by the API", ["client"])
JOBS_FINISHED = Counter("videoapi_jobs_finished", "Jobs finished, by status and error code", ["status", "error_code"])
QUEUE_WAIT = Histogram(
    "videoapi_job_queue_wait_seconds", "From submission to a worker starting the job", buckets=_WAIT_BUCKETS
)
JOB_DURATION = Histogram("videoapi_job_duration_seconds", "From start to finish of a job", buckets=_JOB_BUCKETS)
JOB_FPS = Histogram("videoapi_job_frames_per_second", "A finished job's frames over its duration", buckets=_FPS_BUCKETS)
FRAMES = Counter("videoapi_frames", "Frames run through the model by this worker")
TASK_ERRORS = Counter("videoapi_task_errors", "Task failures by error code, retried or not", ["code", "transient"])
TRITON_LATENCY = Histogram(
    "videoapi_triton_request_duration_seconds", "Triton infer calls as the worker sees them", buckets=_LATENCY_BUCKETS
)
TRITON_BATCH = Histogram(
    "videoapi_triton_batch_windows", "Windows per Triton infer call", buckets=(1, 2, 4, 8, 16, 32, 64)
)
TRITON_ERRORS = Counter("videoapi_triton_errors", "Triton infer calls that failed", ["kind"])

DECODE_ERRORS = Counter("videoapi_decode_errors", "Videos that could not be probed or decoded, by code", ["code"])


class QueueDepthCollector:
    """`videoapi_queue_depth`: tasks waiting in the Celery queue, read from Redis at scrape time."""

    def __init__(self, redis_client: Any, queue: str) -> None:
        self.redis, self.queue = redis_client, queue

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("videoapi_queue_depth", "Tasks waiting in the Celery queue", labels=["queue"])
        try:
            # kombu's Redis transport keeps one list per priority step: the queue's name, then name\x06\x16N
            names = [self.queue, *(f"{self.queue}\x06\x16{p}" for p in range(1, 10))]
            with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.llen(name)
                depth = sum(pipe.execute())
        except Exception:  # Redis down: no sample rather than a failed scrape (the up metric shows the rest)
            return
        family.add_metric([self.queue], depth)
        yield family


def scrape_registry(*extra_collectors: Collector) -> CollectorRegistry:
    """The registry a scrape reads: every process's files in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessRegistry())
    for collector in extra_collectors:
        registry.register(collector)
    return registry


class _ProcessRegistry:
    """This process's default registry, as one collector (so extra collectors can join it per scrape)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format Prometheus scrapes."""
    return generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges from the multiprocess files (its counters stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


def serve(port: int, *extra_collectors: Collector, addr: str = "0.0.0.0") -> int:
    """Serve /metrics on `port` (0: a free one) in a background thread; returns the port."""
    server, _ = start_http_server(port, addr=addr, registry=scrape_registry(*extra_collectors))
    return server.server_port


def observe_job_finished(
    status: str, error_code: str, started_at: float | None, finished_at: float | None, frames: int
) -> None:
    """Count a finished job; its duration and frames/s when it ran."""
    JOBS_FINISHED.labels(status, error_code or "").inc()
    if started_at is not None and finished_at is not None and finished_at >= started_at:
        duration = finished_at - started_at
        JOB_DURATION.observe(duration)
        if frames and duration > 0:
            JOB_FPS.observe(frames / duration)
