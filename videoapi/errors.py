"""The one error family: every error the service reports is a `VideoapiError(code, message, transient)`.

The API, the worker and the CLI map from this base alone: a job records `code` and `message` and is retried
when `transient`; the web adapter (functions/errors.py) picks an HTTP status by the error's kind. Nothing
here knows of HTTP.
"""

from __future__ import annotations

from typing import Any


class VideoapiError(Exception):
    """Base of the family: a machine-readable `code`, a message for people, and whether a retry may help."""

    code: str = "internal_error"
    transient: bool = False

    def __init__(self, code: str, message: str, transient: bool | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return self.message


class _FixedCode(VideoapiError):
    """An error whose code is its class's: raised with a message alone."""

    def __init__(self, message: str, transient: bool | None = None) -> None:
        super().__init__(type(self).code, message, transient)


# ---- refusals of a request (the API maps each kind to its status)


class ApiError(VideoapiError):
    """A request refused, naming the field at fault where there is one; `details` add to the error body."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code, message)
        self.field, self.details, self.headers = field, details or {}, headers or {}

    def body(self) -> dict[str, Any]:
        """The error as the API's JSON body: {"error": {"code", "message", "field"?, ...details}}."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        error.update(self.details)
        return {"error": error}


class InvalidRequest(ApiError):
    """A parameter that is malformed or out of range."""


class NotFound(ApiError):
    """No such job, upload or object for this client."""


class Conflict(ApiError):
    """The job is not in a state where this can be done (not finished, already finished, wrong kind)."""


class TooLarge(ApiError):
    """A body or an object over the size limit."""


class UnsupportedMediaType(ApiError):
    """A content type that is not a video this service reads."""


class Unauthorized(ApiError):
    """No API key, or one that is not known."""


class TooManyRequests(ApiError):
    """A client over one of its limits (rate or quota)."""


# ---- the pipeline and the worker


class JobError(VideoapiError):
    """Ends a job as failed with a machine-readable code, unless `transient` (then it is retried)."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(code, message, transient)


class VideoRejected(VideoapiError, ValueError):
    """The file is not a video this service will process; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


class SourceError(VideoapiError):
    """A URL source that cannot be fetched; `code` is source_not_allowed, source_unreachable or source_too_large."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


class ClipError(VideoapiError, ValueError):
    """A clip request that cannot be met; `code` and `field` say why and where."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(code, message)
        self.field = field


class ExportError(_FixedCode, ValueError):
    """A document that cannot be written in the asked format; `field` names the parameter at fault."""

    code = "invalid_export"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class DetectionFailed(VideoapiError):
    """A video the in-process engine could not process; `code` is the service's job error code."""

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class ModelNotBuilt(_FixedCode):
    """The model repository has no usable model file, and it could not be built here."""

    code = "model_not_built"


class ModelFileError(_FixedCode, ValueError):
    """The ONNX file is missing, unreadable, or not shaped like TransNetV2."""

    code = "invalid_model_file"


class DecoderUnavailable(_FixedCode):
    """The decoder asked for cannot run on this machine."""

    code = "decoder_unavailable"


class Preempted(_FixedCode):
    """The task's worker is shutting down and the task cannot finish in time: its progress is checkpointed."""

    code = "preempted"
    transient = True


# ---- outside systems


class StorageError(_FixedCode):
    """Object storage failed; `transient` says whether a retry can help."""

    code = "storage_unavailable"
    transient = True


class ObjectNotFound(StorageError):
    """No such object (for a job: its video)."""

    code = "video_not_found"
    transient = False


class InferenceError(_FixedCode):
    """Triton answered with an error; `transient` says whether a retry can help."""

    code = "inference_error"


class InferenceUnavailable(InferenceError):
    """Triton cannot be reached, or the model is not ready: retry later."""

    code = "triton_unavailable"
    transient = True


class InferenceInputError(InferenceError, ValueError):
    """The request itself is wrong (shape, type): retrying will not help."""


class CallbackFailed(_FixedCode):
    """The receiver could not be reached or answered 5xx: worth another try."""

    code = "callback_failed"
    transient = True


class JobNotFound(_FixedCode, KeyError):
    """No job under this id in the store."""

    code = "job_not_found"


class Refusal(VideoapiError):
    """A request refused by a client's limits: `code` is quota_exceeded or rate_limited."""

    def __init__(self, code: str, message: str, *, limit: float, count: int = 0, retry_after_s: int = 0) -> None:
        super().__init__(code, message)
        self.limit, self.count, self.retry_after_s = limit, count, retry_after_s


class AwsError(VideoapiError):
    """An error as AWS's JSON protocol names it: `code` is its `__type`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


class SignatureRejected(AwsError):
    """A request AWS would refuse before running it (SigV4): `code` is its `__type`."""


class StartError(_FixedCode):
    """A process of the local stack (Redis, Triton, a worker) could not be found or started."""

    code = "start_failed"
