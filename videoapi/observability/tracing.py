"""OpenTelemetry traces: on only when OTEL_* variables configure an exporter; one job is one trace.

The submit call's span travels in the Celery task's headers to the worker, whose task span parents the
Triton client spans. OTEL_TRACES_EXPORTER (otlp, console, none) and OTEL_EXPORTER_OTLP_* choose where
spans go, as in every OpenTelemetry SDK; VIDEOAPI_TRACE_FILE also writes them as JSON lines to a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Link, Span
    from opentelemetry.trace.span import TraceState
    from opentelemetry.util.types import Attributes, AttributeValue

TRACE_FILE_ENV = "VIDEOAPI_TRACE_FILE"
_tracer = trace.get_tracer("videoapi")
_configured = False


def tracing_requested() -> bool:
    """True when the environment asks for traces (an OTLP endpoint, an exporter, or a trace file)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or _otlp_endpoint_set() or os.environ.get(TRACE_FILE_ENV))


def _exporters() -> list[SpanExporter]:
    names = {n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()}
    exporters: list[SpanExporter] = []
    if "otlp" in names or (not names and _otlp_endpoint_set()):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())  # reads OTEL_EXPORTER_OTLP_* itself
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporters.append(ConsoleSpanExporter())
    if os.environ.get(TRACE_FILE_ENV):
        exporters.append(JsonLinesSpanExporter(os.environ[TRACE_FILE_ENV]))
    return exporters


def _otlp_endpoint_set() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(service_name: str, *, exporter: SpanExporter | None = None, batch: bool = True) -> bool:
    """Install a tracer provider and the library instrumentations, once per process; False when tracing is off.

    `exporter` (e.g. an InMemorySpanExporter) replaces the ones the environment names.
    """
    global _configured
    if _configured:
        return True
    if exporter is None and not tracing_requested():
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    # OTEL_TRACES_SAMPLER, when set, is the SDK's to read; ours otherwise
    sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(JobTraces())
    provider = TracerProvider(resource=resource, sampler=sampler)
    for each in [exporter] if exporter is not None else _exporters():
        provider.add_span_processor(BatchSpanProcessor(each) if batch else SimpleSpanProcessor(each))
    trace.set_tracer_provider(provider)
    _instrument_libraries()
    _configured = True
    return True


STATUS_POLL_SPAN = "GET /v1/jobs/{job_id}"
# scrapes and status polls skip the FastAPI instrumentation altogether (the sampler would drop them, later)
UNTRACED_URLS = r"/metrics$,/v1/jobs/job_[0-9a-f]+$"


class JobTraces(Sampler):
    """Which traces start: requests and tasks, not status polls nor stray client calls.

    A status poll is the API's most frequent request and says nothing a metric does not; a Redis or S3 call
    with no request or task around it (a background loop) would be a trace of one span. Leaving both out
    keeps tracing's cost on the status endpoint small; inside a kept trace, every span is kept.
    """

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        keep = kind in (SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER) and name != STATUS_POLL_SPAN
        return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP, None, trace_state)

    def get_description(self) -> str:
        return "JobTraces"


def shutdown_tracing() -> None:
    """Flush the spans still buffered (a process about to exit)."""
    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    # the Celery and botocore instrumentors leave __init__ unannotated
    instrumentors = (CeleryInstrumentor(), RedisInstrumentor(), BotocoreInstrumentor(), HTTPXClientInstrumentor())  # type: ignore[no-untyped-call]
    for instrumentor in instrumentors:
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def uninstrument_libraries() -> None:
    """Undo the library instrumentations (a test that configured tracing in-process cleans up)."""
    global _configured
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    # the Celery and botocore instrumentors leave __init__ unannotated
    instrumentors = (CeleryInstrumentor(), RedisInstrumentor(), BotocoreInstrumentor(), HTTPXClientInstrumentor())  # type: ignore[no-untyped-call]
    for instrumentor in instrumentors:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _configured = False


def instrument_fastapi(app: FastAPI) -> None:
    """Server spans for every route of the app (a no-op while tracing is off)."""
    if _configured:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # the ASGI send/receive spans (two more per request) say nothing the request span does not
        FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"])


@contextmanager
def span(name: str, **attributes: AttributeValue) -> Iterator[Span]:
    """A span of our own (no-op while tracing is off), e.g. around a Triton call."""
    with _tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or '' outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


class JsonLinesSpanExporter(SpanExporter):
    """Writes each finished span as one JSON line to a file, appending (safe across forked processes)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(s.to_json(indent=None) + "\n" for s in spans)
        # O_APPEND writes of a few KiB land whole, so processes writing at once do not interleave lines
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS
