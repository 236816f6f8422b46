"""Logs joined to traces: every line carries the job id and the trace id; JSON in containers, text locally."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from videoapi.observability.tracing import current_trace_id

_job_id: ContextVar[str] = ContextVar("videoapi_job_id", default="")
_HANDLER_NAME = "videoapi"


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Log lines written inside carry this job id."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class ContextFilter(logging.Filter):
    """Adds `job_id` and `trace_id` to every record (empty strings outside a job or a trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_id", ""):
            record.job_id = _job_id.get()
        record.trace_id = current_trace_id()
        return True


def formatter(log_format: str) -> logging.Formatter:
    """`json`: one JSON object a line (python-json-logger); `text`: for a terminal."""
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(job_id)s %(trace_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s [job=%(job_id)s trace=%(trace_id)s] %(message)s")


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    """One handler on the root logger, to stderr; calling it again replaces ours (never others' handlers)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    root.setLevel(level.upper())
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and root.handlers:
        # Lambda's runtime has its handler on the root logger already: format its lines rather than add a second
        for handler in root.handlers:
            handler.setFormatter(formatter(log_format))
            handler.addFilter(ContextFilter())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
