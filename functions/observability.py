"""The API's metrics, traces and logs: request counters and latencies, /metrics, FastAPI spans."""

from __future__ import annotations

import json
import sys
import time

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.deps import RATE_LIMIT_HEADERS
from videoapi.adapters.queue import QUEUE
from videoapi.observability import metrics
from videoapi.observability.logging import configure_logging, job_context
from videoapi.observability.tracing import configure_tracing, instrument_fastapi
from videoapi.settings import Settings

SUBMIT_ROUTE = ("POST", "/v1/jobs")
EMF_NAMESPACE = "videoapi"


class RequestMetrics:
    """ASGI middleware: counts each request by route template, method, status and client, and times it; adds the
    RateLimit-* headers of a rate-limited key's bucket to every response to it.

    Plain ASGI rather than BaseHTTPMiddleware, and one layer for both: it adds no task per request and one
    send wrapper (status polling is the hot path).
    """

    def __init__(self, app: ASGIApp, emf: bool = False) -> None:
        self.app, self.emf = app, emf
        # the labelled children by their labels: prometheus_client's labels() takes a lock and checks its
        # arguments on every call; a poller's few label sets are looked up here instead (bounded like the key cache)
        self._counted: dict[tuple[str, str, int, str], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = scope.get("state", {}).get(RATE_LIMIT_HEADERS)
                if headers:
                    present = {name.lower() for name, _ in message.get("headers", [])}
                    extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                    message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        job_id = _job_id_in(scope["path"])
        try:
            if job_id:
                with job_context(job_id):
                    await self.app(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if route != "/metrics":
                method = scope["method"]
                client = scope.get("state", {}).get("client_id", "")
                seconds = time.perf_counter() - started
                submitted = (method, route) == SUBMIT_ROUTE and status == 202  # 200 is an idempotent replay
                self._requests(route, method, status, client).inc()
                self._latency(route, method).observe(seconds)
                if submitted:
                    metrics.JOBS_SUBMITTED.labels(client).inc()
                if self.emf:
                    sys.stdout.write(emf_line(route, method, status, seconds, submitted) + "\n")

    def _requests(self, route: str, method: str, status: int, client: str) -> Counter:
        labels = (route, method, status, client)
        child = self._counted.get(labels)
        if child is None:
            if len(self._counted) >= LABEL_SETS_CACHED:
                self._counted.clear()
            child = self._counted[labels] = metrics.HTTP_REQUESTS.labels(route, method, str(status), client)
        return child

    def _latency(self, route: str, method: str) -> Histogram:
        child = self._timed.get((route, method))
        if child is None:
            child = self._timed[(route, method)] = metrics.HTTP_LATENCY.labels(route, method)
        return child


LABEL_SETS_CACHED = 10_000  # as the API key cache: however many clients call, past it the cache starts over


def count_refusal(code: str) -> None:
    """One request (or S3 object) refused by a client limit: quota_exceeded or rate_limited."""
    metrics.REFUSED.labels(code).inc()


def emf_line(route: str, method: str, status: int, seconds: float, submitted: bool) -> str:
    """One request in CloudWatch's embedded metric format: Lambda's log turns it into metrics, no agent needed."""
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": EMF_NAMESPACE,
                        "Dimensions": [["Route", "Status"], []],
                        "Metrics": [
                            {"Name": "Requests", "Unit": "Count"},
                            {"Name": "Latency", "Unit": "Milliseconds"},
                            {"Name": "ServerErrors", "Unit": "Count"},
                            {"Name": "JobsSubmitted", "Unit": "Count"},
                        ],
                    }
                ],
            },
            "Route": f"{method} {route}",
            "Status": str(status),
            "Requests": 1,
            "Latency": round(seconds * 1000, 3),
            "ServerErrors": int(status >= 500),
            "JobsSubmitted": int(submitted),
        },
        separators=(",", ":"),
    )


def _job_id_in(path: str) -> str:
    parts = path.split("/")
    # /v1/jobs/{job_id}[/...]
    return parts[3] if len(parts) > 3 and parts[1:3] == ["v1", "jobs"] and parts[3].startswith("job_") else ""


def configure_process(settings: Settings) -> None:
    """Logs and traces for an API process (uvicorn, Gunicorn worker, Lambda container); before create_app."""
    configure_logging(settings.log_format, settings.log_level)
    configure_tracing("videoapi-api")


def install(app: FastAPI, settings: Settings) -> None:
    """Request metrics always; /metrics when `api_metrics` is on; FastAPI spans when tracing is configured."""
    app.add_middleware(RequestMetrics, emf=settings.emf_metrics)
    instrument_fastapi(app)
    if not settings.api_metrics:
        return
    depth = metrics.QueueDepthCollector(app.state.services.jobs.store.redis, QUEUE)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(request: Request) -> Response:
        return Response(metrics.exposition(metrics.scrape_registry(depth)), media_type=metrics.CONTENT_TYPE)
