"""AWS Lambda entry points (Mangum over the FastAPI app), one per function of template.yaml.

Each builds its app once per container (cold start) and holds no state between calls.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from mangum import Mangum
from mangum.types import LambdaContext, LambdaEvent

from functions.app import create_app
from functions.observability import configure_process
from videoapi.settings import get_settings


@cache
def _adapter(*routers: str) -> Mangum:
    configure_process(get_settings())
    return Mangum(create_app(get_settings(), routers=list(routers) or None), lifespan="off")


def api(event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
    """All routes in one function (the simplest deployment)."""
    return _adapter()(event, context)


def upload(event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
    return _adapter("uploads")(event, context)


def jobs(event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
    """Submit, status and result, the client's usage; and the same through AWS Rekognition's protocol."""
    return _adapter("jobs", "usage", "rekognition")(event, context)


def batches(event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
    """Batches: submit (a prefix, a manifest, a list), status, list, cancel, retry, the results table."""
    return _adapter("batches")(event, context)


def web(event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
    """The result viewer page."""
    return _adapter("web")(event, context)
