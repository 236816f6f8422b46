"""AWS Lambda entry points (Mangum over the FastAPI app), one per function of template.yaml.

Each builds its app once per container (cold start) and holds no state between calls.
"""

from __future__ import annotations

from functools import cache

from mangum import Mangum

from functions.app import create_app
from functions.observability import configure_process
from videoapi.settings import get_settings


@cache
def _adapter(*routers: str) -> Mangum:
    configure_process(get_settings())
    return Mangum(create_app(get_settings(), routers=list(routers) or None), lifespan="off")


def api(event, context):
    """All routes in one function (the simplest deployment)."""
    return _adapter()(event, context)


def upload(event, context):
    return _adapter("uploads")(event, context)


def jobs(event, context):
    """Submit, status and result, the client's usage; and the same through AWS Rekognition's protocol."""
    return _adapter("jobs", "usage", "rekognition")(event, context)


def web(event, context):
    """The result viewer page."""
    return _adapter("web")(event, context)
