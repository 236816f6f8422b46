"""Metrics and traces of one job on the real parts: the API (in-process), a Celery worker, Redis, moto S3, Triton.

The worker is a real `celery worker` with a prefork pool, so its spans are made in pool processes: they reach
the test through VIDEOAPI_TRACE_FILE (JSON lines, written by the same tracing set-up production uses), while the
API's spans go to OpenTelemetry's in-memory exporter in this process. Both carry the trace id the test compares.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from local.synthetic import write_video
from local.worker_process import WorkerProcess
from videoapi.domain.jobs import JobStatus, JobStore
from videoapi.observability import tracing

pytestmark = pytest.mark.slow
FRAMES = 150


@pytest.fixture(scope="module")
def obs_settings(stack_settings):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    # a database of its own: this module's worker takes only this module's jobs
    return stack_settings.model_copy(update={"redis_url": f"{base}/12", "api_metrics": True, "worker_metrics_port": 0})


@pytest.fixture(scope="module")
def api_spans():
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("videoapi-api", exporter=exporter, batch=False)
    yield exporter
    tracing.uninstrument_libraries()
    tracing.shutdown_tracing()  # later tests' spans (the Triton client's own) go nowhere


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("traces") / "worker-spans.jsonl"


@pytest.fixture(scope="module")
def worker(obs_settings, trace_file, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "worker.log"
    env = {tracing.TRACE_FILE_ENV: str(trace_file), "VIDEOAPI_LOG_FORMAT": "json"}
    with WorkerProcess(obs_settings, concurrency=2, log_path=log, extra_env=env) as process:
        process.log = log
        yield process


@pytest.fixture(scope="module")
def api(obs_settings, api_spans):
    from functions.app import create_app

    app = create_app(obs_settings)  # after tracing is configured: its FastAPI spans are on
    with TestClient(app) as client:
        key = app.state.services.keys.create("metrics-client")
        client.headers["X-API-Key"] = key
        yield client


@pytest.fixture(scope="module")
def finished_job(api, worker, obs_settings, tmp_path_factory) -> dict:
    before = scrape(lambda: api.get("/metrics").text)  # this process's registry: earlier tests counted too
    video = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(video, [60, 40, 50], fps=25)
    uploaded = api.put("/v1/uploads/direct", params={"filename": "clip.mp4"}, content=video.read_bytes())
    assert uploaded.status_code == 201, uploaded.text
    submitted = api.post("/v1/jobs", json={"source": uploaded.json()["key"]})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    store = JobStore.from_url(obs_settings.redis_url)
    deadline = time.monotonic() + 300
    while (job := store.get(job_id)).status not in (JobStatus.succeeded, JobStatus.failed):
        assert time.monotonic() < deadline, f"job still {job.status}"
        time.sleep(0.2)
    assert job.status == JobStatus.succeeded, (job.error_code, job.error_message)
    status = api.get(f"/v1/jobs/{job_id}")
    assert status.status_code == 200
    return {"id": job_id, "job": job, "api_before": before}


def scrape(get) -> dict:
    """name -> list of (labels, value), from the Prometheus text format, parsed by prometheus_client."""
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(get()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == w for k, w in labels.items()))


def test_metrics_count_the_job_in_the_api_and_the_worker(api, worker, finished_job):
    api_metrics, before = scrape(lambda: api.get("/metrics").text), finished_job["api_before"]

    def added(name: str, **labels) -> float:
        return value(api_metrics, name, **labels) - value(before, name, **labels)

    ours = {"client": "metrics-client"}
    assert added("videoapi_jobs_submitted_total", **ours) == 1
    assert added("videoapi_http_requests_total", route="/v1/jobs", method="POST", status="202", **ours) == 1
    assert added("videoapi_http_requests_total", route="/v1/jobs/{job_id}", status="200", **ours) == 1
    assert added("videoapi_http_request_duration_seconds_count", route="/v1/jobs", method="POST") == 1
    assert value(api_metrics, "videoapi_queue_depth", queue="shots") == 0  # read from Redis: the job was taken

    # the pool process that ran the job wrote its samples; the worker's main process serves them
    worker_metrics = scrape(lambda: httpx.get(worker.metrics_url, timeout=10).text)
    assert value(worker_metrics, "videoapi_jobs_finished_total", status="succeeded", error_code="") == 1
    assert value(worker_metrics, "videoapi_job_duration_seconds_count") == 1
    job = finished_job["job"]
    duration = job.finished_at - job.started_at
    assert value(worker_metrics, "videoapi_job_duration_seconds_sum") == pytest.approx(duration, rel=1e-6)
    assert value(worker_metrics, "videoapi_frames_total") == FRAMES
    assert value(worker_metrics, "videoapi_job_frames_per_second_sum") == pytest.approx(FRAMES / duration, rel=1e-6)
    assert value(worker_metrics, "videoapi_job_queue_wait_seconds_count") == 1
    assert value(worker_metrics, "videoapi_triton_request_duration_seconds_count") >= 1
    # windows of 100 frames advancing 50: a 150-frame video is 3 windows
    assert value(worker_metrics, "videoapi_triton_batch_windows_sum") == 3


def test_one_job_is_one_trace_from_the_api_through_celery_to_triton(api_spans, finished_job, trace_file, worker):
    submit = next(s for s in api_spans.get_finished_spans() if s.name == "POST /v1/jobs" and s.kind.name == "SERVER")
    trace_id = submit.context.trace_id
    assert not [s for s in api_spans.get_finished_spans() if s.name == tracing.STATUS_POLL_SPAN]  # not sampled
    publish = [s for s in api_spans.get_finished_spans() if s.name == "apply_async/videoapi.run_next_job"]
    assert publish and all(s.context.trace_id == trace_id for s in publish)

    deadline = time.monotonic() + 30  # the worker exports each span as it ends; the last may lag the job
    while True:
        worker_spans = [json.loads(line) for line in trace_file.read_text().splitlines()] if trace_file.exists() else []
        ours = [s for s in worker_spans if int(s["context"]["trace_id"], 16) == trace_id]
        names = {s["name"] for s in ours}
        if {"run/videoapi.run_next_job", "triton.infer"} <= names or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "run/videoapi.run_next_job" in names, sorted({s["name"] for s in worker_spans})
    assert "triton.infer" in names
    infer = next(s for s in ours if s["name"] == "triton.infer")
    assert infer["attributes"]["triton.batch_windows"] == 3
    assert infer["resource"]["attributes"]["service.name"] == "videoapi-worker"

    # and the worker's JSON log lines of this job carry its id and this trace id
    lines = [json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    joined = [line for line in lines if line.get("job_id") == finished_job["id"]]
    assert {"workers.observability"} <= {line["logger"] for line in joined}
    assert any(line["message"].startswith("job succeeded: 150 frames") for line in joined)
    assert all(line["trace_id"] == format(trace_id, "032x") for line in joined)
