"""AWS Rekognition's JSON 1.1 protocol: boto3's own `rekognition` client, pointed here, works unchanged.

POST /rekognition/ (and / with the setting `rekognition_at_root`), `X-Amz-Target: RekognitionService.<Op>`,
SigV4-signed with a key pair from `videoapi keys create`. Errors are `{"__type", "message"}` as botocore parses.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.responses import Response
from kombu.exceptions import OperationalError

from functions import observability
from functions.deps import ServicesDep
from functions.errors import AWS_STATUS
from videoapi.domain.fairness import RATE_LIMITED
from videoapi.domain.rekognition_api import RekognitionService
from videoapi.domain.sigv4 import verify_request
from videoapi.errors import AwsError, SignatureRejected, StorageError

logger = logging.getLogger(__name__)

SERVICE = "rekognition"
TARGET_PREFIX = "RekognitionService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 64 * 1024  # the two operations' parameters fit in a few KiB
OPERATIONS = {
    "StartSegmentDetection": RekognitionService.start_segment_detection,
    "GetSegmentDetection": RekognitionService.get_segment_detection,
}

router = APIRouter(tags=["rekognition"], include_in_schema=False)
root_router = APIRouter(tags=["rekognition"], include_in_schema=False)


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if "__type" in body:
        headers["x-amzn-ErrorType"] = body["__type"]
    return Response(json.dumps(body, separators=(",", ":")), status, headers=headers, media_type=CONTENT_TYPE)


def _error(code: str, message: str, status: int | None = None) -> Response:
    return _answer({"__type": code, "message": message}, status or AWS_STATUS.get(code, 400))


def _received_url(request: Request) -> str:
    """The URL as the client signed it: its Host header, the raw path and query."""
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"http://{request.headers.get('host', '')}{path}" + (f"?{query}" if query else "")


async def _rekognition(request: Request, services: ServicesDep) -> Response:
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        return _error("InvalidParameterException", f"the request body must be at most {MAX_BODY_BYTES} bytes", 413)
    body = b""
    async for chunk in request.stream():  # a chunked body is read only up to the limit
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _error("InvalidParameterException", f"the request body must be at most {MAX_BODY_BYTES} bytes", 413)
    target = request.headers.get("x-amz-target", "")
    try:
        pair = verify_request(
            request.method, _received_url(request), request.headers, body, services.key_pairs.lookup, SERVICE
        )
    except SignatureRejected as exc:
        return _error(exc.code, exc.message)
    except redis.RedisError as exc:
        logger.warning("Rekognition: the key store is unreachable: %s", exc)
        return _error("ThrottlingException", "Rate exceeded", 400)
    # the same requests-per-second limit as an API key's, on a bucket of the access key's own
    decision = services.rate_limiter.take(f"aws:{pair.access_key_id}", services.jobs.limits().rate_limit)
    if decision is not None and not decision.allowed:
        observability.count_refusal(RATE_LIMITED)
        return _error("ThrottlingException", "Rate exceeded", 400)
    operation = OPERATIONS.get(target.removeprefix(TARGET_PREFIX)) if target.startswith(TARGET_PREFIX) else None
    if operation is None:
        return _error("com.amazon.coral.service#UnknownOperationException", f"Unknown operation {target!r}")
    try:
        params = json.loads(body or b"{}")
        if not isinstance(params, dict):
            raise ValueError("not an object")
    except ValueError:
        return _error("com.amazon.coral.service#SerializationException", "the request body is not a JSON object")
    try:
        return _answer(operation(RekognitionService(services.jobs, services.results), pair.client_id, params))
    except AwsError as exc:
        return _error(exc.code, exc.message)
    except (redis.RedisError, OperationalError, StorageError) as exc:
        logger.warning("Rekognition %s: a backing service failed: %s", target, exc)
        return _error("ThrottlingException", "Rate exceeded", 400)


router.add_api_route("/rekognition/", _rekognition, methods=["POST"])
router.add_api_route("/rekognition", _rekognition, methods=["POST"])
root_router.add_api_route("/", _rekognition, methods=["POST"])
