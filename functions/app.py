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

from functions import observability
from functions.deps import Services
from functions.errors import error_response, status_of
from functions.routers import jobs, rekognition, uploads, web
from videoapi.errors import ApiError, StorageError
from videoapi.settings import Settings

logger = logging.getLogger(__name__)

ROUTERS = {
    "uploads": uploads.router,
    "jobs": jobs.router,
    "usage": jobs.usage_router,
    "web": web.router,
    "rekognition": rekognition.router,
}


def create_app(settings: Settings, *, routers: list[str] | None = None, services: Services | None = None) -> FastAPI:
    """The API; `routers` limits it to some routers (one Lambda function each), all by default."""
    app = FastAPI(title="videoapi", version="1", summary="Shot-boundary detection for videos (TransNetV2)")
    app.state.services = services or Services.from_settings(settings)
    for name in routers or list(ROUTERS):
        app.include_router(ROUTERS[name])
    if settings.rekognition_at_root and (routers is None or "rekognition" in routers):
        app.include_router(rekognition.root_router)

    @app.get("/v1/health", tags=["health"])
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
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

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
