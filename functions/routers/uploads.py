"""POST /v1/uploads (presigned), PUT /v1/uploads/direct (small files through the API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field

from functions.deps import ClientDep, ServicesDep
from functions.errors import AUTHENTICATED, INVALID, TOO_LARGE, UNSUPPORTED_MEDIA_TYPE
from videoapi.errors import TooLarge

router = APIRouter(
    prefix="/v1/uploads",
    tags=["uploads"],
    responses={**AUTHENTICATED, **INVALID, **TOO_LARGE, **UNSUPPORTED_MEDIA_TYPE},
)


class UploadRequest(BaseModel):
    filename: str = Field(min_length=1, max_length=200, examples=["match.mp4"])
    content_type: str = Field("video/mp4", examples=["video/mp4"])
    size_bytes: int = Field(gt=0, description="exact size of the file to upload")


@router.post("", status_code=201, summary="Create a presigned upload")
def create_upload(body: UploadRequest, client: ClientDep, services: ServicesDep) -> dict[str, Any]:
    """A presigned S3 PUT (and an equivalent POST policy) for one file: the video never passes through the API."""
    return services.uploads.presign_upload(client, body.filename, body.content_type, body.size_bytes)


# the body is read as a stream (up to the limit), so FastAPI cannot document it: declared here
_DIRECT_BODY = {
    "requestBody": {
        "required": True,
        "description": "the file's bytes, its type in Content-Type (one of the allowed video types, else 415)",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("video/*", "application/octet-stream")
        },
    }
}


@router.put("/direct", status_code=201, summary="Upload a small file through the API", openapi_extra=_DIRECT_BODY)
async def direct_upload(
    request: Request,
    client: ClientDep,
    services: ServicesDep,
    filename: Annotated[str, Query(min_length=1, max_length=200)],
    content_type: Annotated[str, Header(include_in_schema=False)] = "application/octet-stream",
) -> dict[str, Any]:
    limit = services.settings.direct_upload_max_bytes
    too_large = TooLarge("too_large", f"direct uploads are limited to {limit} bytes; use POST /v1/uploads", "body")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise too_large
    stored = services.uploads.direct_upload(client, filename, content_type.split(";")[0].strip(), bytes(data))
    await services.jobs.note_upload(services.aredis(), stored["key"], stored["size_bytes"])
    return stored
