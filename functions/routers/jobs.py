"""Jobs: submit, status, result."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from functions.deps import ClientDep, ServicesDep
from videoapi.submission import SubmitRequest, job_view

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobRequest(BaseModel):
    source: str = Field(
        min_length=1, max_length=1100, description="key returned by POST /v1/uploads, or s3://bucket/key"
    )
    threshold: float | None = Field(None, gt=0, lt=1)
    formats: list[Literal["json", "csv", "edl"]] = ["json"]
    tag: str = Field("", max_length=200, description="your own label, returned with the job")
    callback_url: str | None = Field(None, max_length=2000, description="POSTed the job's status when it ends")
    postprocess: bool | None = Field(
        None, description="post-process the probabilities (typed transitions); false: the reference rule exactly"
    )


@router.post("", status_code=202, summary="Submit a shot-detection job")
def submit_job(
    body: JobRequest,
    client: ClientDep,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    request = SubmitRequest(
        source=body.source,
        threshold=body.threshold,
        formats=tuple(body.formats),
        tag=body.tag,
        callback_url=body.callback_url,
        postprocess=body.postprocess,
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
