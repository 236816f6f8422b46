"""HTTP statuses for the error family: the one place that maps `videoapi.errors` kinds to statuses.

Also the error body's model and the error responses the routes declare in the OpenAPI document (`responses=`):
each status once here, each route naming the ones its handler and dependencies can answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from videoapi.errors import (
    ApiError,
    Conflict,
    InvalidRequest,
    NotFound,
    StorageError,
    TooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    VideoapiError,
)

STATUS: dict[type[VideoapiError], int] = {
    InvalidRequest: 422,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    Unauthorized: 401,
    TooManyRequests: 429,
    StorageError: 503,
}
# Rekognition's protocol: AWS answers 400 for every error of these operations but a missing signature
AWS_STATUS = {"MissingAuthenticationTokenException": 403}


def status_of(error: VideoapiError) -> int:
    """The HTTP status for an error: its kind's, or the nearest base's; 500 for the rest of the family."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The API's error body {"error": {"code", "message", "field"?}} with a status (and headers, e.g. Allow)."""
    return JSONResponse(ApiError(code, message, field).body(), status_code=status, headers=headers)


# ---- the error body and the error responses, as the OpenAPI document declares them


class ErrorDetail(BaseModel):
    """One error: `code` for programs, `message` for people, `field` where a parameter is at fault."""

    model_config = ConfigDict(extra="allow", title="ErrorDetail")

    code: str = Field(description="machine-readable, e.g. job_not_found, quota_exceeded, invalid_request")
    message: str
    field: str | None = Field(None, description="the parameter, body field or header at fault, where there is one")
    limit: float | None = Field(None, description="429: the limit refused (jobs, or requests per second)")
    count: int | None = Field(None, description="429 quota_exceeded: the client's active jobs")
    retry_after_s: int | None = Field(None, description="429 rate_limited: seconds until a request is allowed")


class ErrorBody(BaseModel):
    """Every error this API answers (but Rekognition's protocol): {"error": {"code", "message", "field"?}}."""

    error: ErrorDetail


def _header(description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": schema_type}}


RETRY_AFTER = {"Retry-After": _header("seconds to wait before a retry (a rate-limited key)", "integer")}
RATE_LIMIT_HEADERS = {
    name: _header(description, "integer")
    for name, description in (
        ("RateLimit-Limit", "the key's burst (a rate-limited key)"),
        ("RateLimit-Remaining", "requests left in the burst"),
        ("RateLimit-Reset", "seconds until the burst is full again"),
    )
}
LOCATION = {"Location": _header("the job's URL, /v1/jobs/{job_id}")}
BATCH_LOCATION = {"Location": _header("the batch's URL, /v1/batches/{batch_id}")}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        response["headers"] = headers
    return response


# the statuses, each declared once; a route's `responses=` picks the ones its code can answer
INVALID: dict[int | str, dict[str, Any]] = {
    422: _error("A parameter, header or body field that is malformed or out of range (`field` names it)")
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _error("No such job (job_not_found), upload (source_not_found) or picture for this client")
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _error("The job is not in a state where this can be done, or an Idempotency-Key was reused")
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {413: _error("A body or an object over the size limit (too_large)")}
UNSUPPORTED_MEDIA_TYPE: dict[int | str, dict[str, Any]] = {
    415: _error("A content type that is not a video this service reads (unsupported_content_type)")
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: _error("The job store, queue or object storage is unreachable; retry shortly")
}
# what the API key dependency (functions.deps.require_client) answers on every route that takes one
AUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: _error("No API key, or one that is not known (unauthorized)"),
    429: _error(
        "The key is over its rate limit (rate_limited) or its client over its active jobs (quota_exceeded)",
        {**RETRY_AFTER, **RATE_LIMIT_HEADERS},
    ),
    **UNAVAILABLE,
}
