"""Jobs: submit, status, result."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from functions.deps import ClientDep, ServicesDep
from videoapi.cues import BODY_FIELDS, SegmentOptions
from videoapi.submission import ApiError, SubmitRequest, job_view

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobRequest(BaseModel):
    source: str = Field(
        min_length=1, max_length=1100, description="key returned by POST /v1/uploads, or s3://bucket/key"
    )
    threshold: float | None = Field(None, gt=0, lt=1)
    formats: list[Literal["json", "csv", "edl"]] = ["json"]
    tag: str = Field("", max_length=200, description="your own label, returned with the job")
    callback_url: str | None = Field(None, max_length=2000, description="POSTed the job's status when it ends")
    segment_types: list[str] | None = Field(None, description="SHOT and/or TECHNICAL_CUE (default both)")
    filters: dict | None = Field(
        None, description="min_segment_confidence (50-100), black_frame: {max_pixel_threshold, min_coverage_percentage}"
    )
    min_freeze_s: float | None = Field(None, description="shortest FrozenFrames cue, seconds (default 2)")
    silence_db: float | None = Field(None, description="Silence level, dBFS (default -50)")


@router.post("", status_code=202, summary="Submit a shot-detection job")
def submit_job(
    body: JobRequest,
    client: ClientDep,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    try:
        segments = SegmentOptions.from_body(body.model_dump())
    except ValidationError as error:
        first = error.errors()[0]
        name = BODY_FIELDS.get(str(first["loc"][0]), str(first["loc"][0])) if first["loc"] else "filters"
        raise ApiError(422, "invalid_segment_options", f"{name}: {first['msg']}", name) from None
    request = SubmitRequest(
        source=body.source,
        threshold=body.threshold,
        formats=tuple(body.formats),
        tag=body.tag,
        callback_url=body.callback_url,
        segments=segments,
    )
    job, created = services.jobs.submit(client, request, idempotency_key)
    return JSONResponse(job_view(job), status_code=202 if created else 200, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("", summary="This client's jobs, newest first")
def list_jobs(client: ClientDep, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    return {"jobs": [job_view(job) for job in services.jobs.list(client, limit)]}


@router.get("/{job_id}", summary="Job status")
def job_status(job_id: str, client: ClientDep, services: ServicesDep) -> dict:
    return job_view(services.jobs.get(client, job_id))


@router.post("/{job_id}/cancel", summary="Cancel a queued or running job (409 once it has finished)")
def cancel_job(job_id: str, client: ClientDep, services: ServicesDep) -> dict:
    return job_view(services.jobs.cancel(client, job_id))


_DOWNLOADS = {"csv": "csv", "edl": "edl", "probabilities": "npz", "overview": "png", "thumbnails": "jpg"}


@router.get(
    "/{job_id}/result",
    summary="Shots: JSON, CSV or EDL (CMX 3600); probabilities (npz, or JSON `curve` for plots); "
    "`overview` PNG (frames and predictions); `thumbnails` JPEG (a keyframe per shot, layout in the JSON)",
)
def job_result(
    job_id: str,
    client: ClientDep,
    services: ServicesDep,
    format: Annotated[
        Literal["json", "csv", "edl", "probabilities", "curve", "overview", "thumbnails"], Query()
    ] = "json",
) -> Response:
    content, media_type = services.jobs.result(client, job_id, format)
    headers = {}
    if format in _DOWNLOADS:
        headers["Content-Disposition"] = f'attachment; filename="{job_id}.{_DOWNLOADS[format]}"'
    return Response(content, media_type=media_type, headers=headers)
