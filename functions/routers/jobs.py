"""Jobs: submit, status, result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema

from functions.deps import ClientDep, LimitsDep, ServicesDep
from functions.errors import AUTHENTICATED, CONFLICT, INVALID, LOCATION, NOT_FOUND, TOO_LARGE
from videoapi.domain.exports import EXPORT_FILES
from videoapi.domain.fairness import DEFAULT_PRIORITY, PRIORITIES
from videoapi.domain.formats import RESULT_EXTRAS, RESULT_FORMATS
from videoapi.domain.submission import ClipsRequest, SubmitRequest
from videoapi.domain.views import job_view
from videoapi.errors import InvalidRequest
from videoapi.pipeline.cues import BODY_FIELDS, SEGMENT_TYPES, SegmentOptions

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=AUTHENTICATED)
usage_router = APIRouter(prefix="/v1/usage", tags=["jobs"], responses=AUTHENTICATED)

if TYPE_CHECKING:  # the Literals are built from tuples named once elsewhere, which mypy cannot read as a Literal
    _ResultFormat = str
    _ResultOrExtra = str
    _Priority = str
else:
    _ResultFormat = Literal[RESULT_FORMATS]
    _ResultOrExtra = Literal[(*RESULT_FORMATS, *RESULT_EXTRAS)]
    _Priority = Literal[PRIORITIES]


class BlackFrameFilter(BaseModel):
    max_pixel_threshold: float | None = Field(None, description="a pixel is black at or under this (0-1)")
    min_coverage_percentage: float | None = Field(None, description="a frame is black with this % black (0-100)")


# typed, so that a member of the wrong type is refused here (422); SegmentOptions checks the ranges
class SegmentFilters(BaseModel):
    """Rekognition's StartSegmentDetection filters, in snake case."""

    min_segment_confidence: float | None = Field(None, description="50-100, shots and technical cues")
    black_frame: BlackFrameFilter | None = None


class JobRequest(BaseModel):
    source: str = Field(
        min_length=1,
        max_length=1100,
        description="key returned by POST /v1/uploads, s3://bucket/key, or an https:// URL (presigned URLs work)",
    )
    threshold: float | None = Field(None, gt=0, lt=1)
    formats: list[_ResultFormat] = ["json"]
    tag: str = Field("", max_length=200, description="your own label, returned with the job")
    callback_url: str | None = Field(None, max_length=2000, description="POSTed the job's status when it ends")
    postprocess: bool | None = Field(
        None, description="post-process the probabilities (typed transitions); false: the reference rule exactly"
    )
    # the values are checked by SegmentOptions (invalid_segment_options); the document names them
    segment_types: list[Annotated[str, WithJsonSchema({"type": "string", "enum": list(SEGMENT_TYPES)})]] | None = Field(
        None, description="SHOT and/or TECHNICAL_CUE (default both)"
    )
    filters: SegmentFilters | None = Field(None, description="Rekognition's filters, its names in snake case")
    min_black_s: float | None = Field(
        None, description="shortest held black of a BlackFrames cue, seconds (default 0.4; 0: any black frame)"
    )
    min_silence_s: float | None = Field(None, description="shortest Silence cue, seconds (default 2)")
    min_freeze_s: float | None = Field(None, description="shortest FrozenFrames cue, seconds (default 2)")
    silence_db: float | None = Field(None, description="Silence level, dBFS (default -50)")
    priority: _Priority = Field(
        DEFAULT_PRIORITY, description="interactive or batch: within a client, interactive jobs run first"
    )


@router.post(
    "",
    status_code=202,
    summary="Submit a shot-detection job",
    responses={
        202: {"description": "The job, queued", "headers": LOCATION},
        200: {
            "description": "The job an earlier request with this Idempotency-Key made",
            "content": {"application/json": {"schema": {}}},
            "headers": LOCATION,
        },
        **NOT_FOUND,
        **CONFLICT,
        **TOO_LARGE,
        **INVALID,
    },
)
def submit_job(
    body: JobRequest,
    client: ClientDep,
    limits: LimitsDep,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    try:
        segments = SegmentOptions.from_body(body.model_dump())
    except ValidationError as error:
        first = error.errors()[0]
        name = BODY_FIELDS.get(str(first["loc"][0]), str(first["loc"][0])) if first["loc"] else "filters"
        raise InvalidRequest("invalid_segment_options", f"{name}: {first['msg']}", name) from None
    request = SubmitRequest(
        source=body.source,
        threshold=body.threshold,
        formats=tuple(body.formats),
        tag=body.tag,
        callback_url=body.callback_url,
        postprocess=body.postprocess,
        segments=segments,
        priority=body.priority,
    )
    job, created = services.jobs.submit(client, request, idempotency_key, limits)
    return JSONResponse(job_view(job), status_code=202 if created else 200, headers={"Location": f"/v1/jobs/{job.id}"})


@usage_router.get("", summary="This client's active jobs, its limits and the frames run for it today (UTC)")
def usage(client: ClientDep, limits: LimitsDep, services: ServicesDep) -> dict[str, Any]:
    return services.jobs.usage(client, limits)


@router.get("", summary="This client's jobs, newest first", responses=INVALID)
def list_jobs(
    client: ClientDep, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    return {"jobs": [job_view(job) for job in services.jobs.list(client, limit)]}


@router.get("/{job_id}", summary="Job status", responses=NOT_FOUND, response_model=dict[str, Any])
async def job_status(job_id: str, client: ClientDep, services: ServicesDep) -> JSONResponse:
    # the path clients poll: async with the event loop's Redis client, no worker thread at all (a sync route
    # costs FastAPI a thread hop for the endpoint and another to validate its response); answered as JSON at once,
    # as FastAPI would answer the dict (response_model: the document's schema), without its serializing pass
    return JSONResponse(job_view(await services.jobs.get_async(services.aredis(), client, job_id)))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a queued or running job (409 once it has finished)",
    responses={**NOT_FOUND, **CONFLICT},
)
def cancel_job(job_id: str, client: ClientDep, services: ServicesDep) -> dict[str, Any]:
    return job_view(services.jobs.cancel(client, job_id))


class ClipsBody(BaseModel):
    mode: Literal["copy", "exact"] = Field(
        "exact", description="copy: stream copy cut at the keyframes around each shot; exact: re-encoded, frame-exact"
    )
    shots: list[Annotated[int, Field(ge=0)]] | Literal["all"] = Field(
        "all", max_length=100_000, description="shot indexes, or all"
    )
    trim_transitions: bool = Field(False, description="leave out the frames of dissolves and fades at either end")


@router.post(
    "/{job_id}/clips",
    status_code=202,
    summary="Cut a finished job's shots into clips (a job of its own)",
    responses={202: {"description": "The clips job, queued", "headers": LOCATION}, **NOT_FOUND, **CONFLICT, **INVALID},
)
def request_clips(
    job_id: str, body: ClipsBody, client: ClientDep, limits: LimitsDep, services: ServicesDep
) -> JSONResponse:
    request = ClipsRequest(
        mode=body.mode,
        shots=None if body.shots == "all" else tuple(body.shots),
        trim_transitions=body.trim_transitions,
    )
    job = services.jobs.request_clips(client, job_id, request, limits)
    return JSONResponse(job_view(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/{job_id}/video", summary="A presigned GET of the job's source video (to play it)", responses=NOT_FOUND)
def job_video(job_id: str, client: ClientDep, services: ServicesDep) -> dict[str, Any]:
    return services.results.video_url(client, job_id)


_DOWNLOADS = {
    **{fmt: extension for fmt, (extension, _) in EXPORT_FILES.items()},
    "probabilities": "npz",
    "overview": "png",
    "thumbnails": "jpg",
}
# what the result route answers besides JSON: the exports' types, the npz, the pictures
_RESULT_MEDIA_TYPES = sorted(
    {media.split(";")[0] for _, media in EXPORT_FILES.values()} - {"application/json"}
    | {"application/octet-stream", "image/png", "image/jpeg"}
)


@router.get(
    "/{job_id}/result",
    summary="Shots: JSON, CSV, timelines (OpenTimelineIO `otio`, Final Cut Pro X `fcpxml`, Final Cut Pro 7 `xml`, "
    "CMX 3600 `edl`; `start_timecode` offsets them), x264/x265 `qp` file; "
    "`rekognition` (AWS Rekognition's GetSegmentDetection document); "
    "probabilities (npz, or JSON `curve` for plots); "
    "`overview` PNG (frames and predictions); `thumbnails` JPEG (a keyframe per shot, layout in the JSON)",
    responses={
        200: {
            "description": "The result in the format asked for",
            "content": {media: {"schema": {"type": "string"}} for media in _RESULT_MEDIA_TYPES},
            "headers": {"Content-Disposition": {"description": "a download's file name", "schema": {"type": "string"}}},
        },
        **NOT_FOUND,
        **CONFLICT,
        **INVALID,
    },
)
def job_result(
    job_id: str,
    client: ClientDep,
    services: ServicesDep,
    format: Annotated[_ResultOrExtra, Query()] = "json",
    start_timecode: Annotated[
        str | None, Query(max_length=11, description="first timecode of timeline exports, e.g. 01:00:00:00")
    ] = None,
) -> Response:
    content, media_type = services.results.result(client, job_id, format, start_timecode)
    headers = {}
    if format in _DOWNLOADS:
        headers["Content-Disposition"] = f'attachment; filename="{job_id}.{_DOWNLOADS[format]}"'
    return Response(content, media_type=media_type, headers=headers)
