"""HTTP statuses for the error family: the one place that maps `videoapi.errors` kinds to statuses."""

from __future__ import annotations

from fastapi.responses import JSONResponse

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


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    """The API's error body {"error": {"code", "message", "field"?}} with a status."""
    return JSONResponse(ApiError(code, message, field).body(), status_code=status)
