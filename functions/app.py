"""The FastAPI application: routers, JSON errors for everything, OpenAPI at /openapi.json and /docs."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from functions import observability
from functions.deps import Services
from functions.errors import UNAVAILABLE, error_response, status_of
from functions.routers import batches, jobs, rekognition, uploads, web
from videoapi.errors import ApiError, StorageError
from videoapi.settings import Settings

logger = logging.getLogger(__name__)

ROUTERS = {
    "uploads": uploads.router,
    "jobs": jobs.router,
    "usage": jobs.usage_router,
    "batches": batches.router,
    "web": web.router,
    "rekognition": rekognition.router,
}


API_KEY_SCHEME = "ApiKey"
_DEFAULT_422 = {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}


class _Api(FastAPI):
    """FastAPI whose document says what this API answers: no default 422 body (FastAPI's HTTPValidationError;
    this API's 422 is functions.errors's ErrorBody, declared by the routes that can answer it), and the API key
    header as a security scheme on the routes that take it (those declaring its 401, functions.errors.AUTHENTICATED).
    """

    api_key_header = "X-API-Key"

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        document = super().openapi()
        keyed = False
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.get("422", {}).get("content", {}).get("application/json") == _DEFAULT_422:
                    del responses["422"]
                if "401" in responses:
                    operation["security"], keyed = [{API_KEY_SCHEME: []}], True
        components = document.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        if keyed:
            scheme = {"type": "apiKey", "in": "header", "name": self.api_key_header}
            components.setdefault("securitySchemes", {})[API_KEY_SCHEME] = scheme
        return document


def _allowed_methods(request: Request) -> str:
    """405's Allow: every method some route takes at this path (Starlette names only the first route's)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    )


def create_app(settings: Settings, *, routers: list[str] | None = None, services: Services | None = None) -> FastAPI:
    """The API; `routers` limits it to some routers (one Lambda function each), all by default."""
    app = _Api(
        title="videoapi",
        version="1",
        summary="Shot-boundary detection for videos (TransNetV2)",
        # FastAPI's own OpenTelemetry bridge off: this API's spans are the instrumentation's (tracing's
        # instrument_fastapi, which turns the bridge's spans off anyway) and it sets no OpenTelemetry meter or
        # logger; the bridge would still look up three global providers on every request (6% of a status poll)
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.api_key_header = settings.api_key_header
    app.state.services = services or Services.from_settings(settings)
    for name in routers or list(ROUTERS):
        app.include_router(ROUTERS[name])
    if settings.rekognition_at_root and (routers is None or "rekognition" in routers):
        app.include_router(rekognition.root_router)

    @app.get("/v1/health", tags=["health"], responses=UNAVAILABLE)
    def health() -> dict[str, Any]:
        app.state.services.jobs.store.redis.ping()
        return {"status": "ok"}

    @app.exception_handler(ApiError)
    async def apierror_response(request: Request, exc: ApiError) -> JSONResponse:
        status = status_of(exc)
        if status == 429:
            observability.count_refusal(exc.code)
        return JSONResponse(exc.body(), status_code=status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "header", "path"))
        return error_response(422, "invalid_request", f"{field or 'request'}: {first['msg']}", field or None)

    @app.exception_handler(HTTPException)
    async def httperror_response(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's for a body it cannot read (not UTF-8): malformed, as bad JSON is
            return error_response(422, "invalid_request", f"body: {exc.detail}", "body")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = {"Allow": _allowed_methods(request)} if exc.status_code == 405 else exc.headers
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(redis.RedisError)
    @app.exception_handler(OperationalError)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("%s %s: the job store or queue is unreachable: %s", request.method, request.url.path, exc)
        return error_response(503, "service_unavailable", "the job store is unreachable; retry shortly")

    @app.exception_handler(StorageError)
    async def storage_down(request: Request, exc: StorageError) -> JSONResponse:
        logger.warning("%s %s: object storage failed: %s", request.method, request.url.path, exc)
        return error_response(503, "storage_unavailable", "object storage is unreachable; retry shortly")

    observability.install(app, settings)
    return app
