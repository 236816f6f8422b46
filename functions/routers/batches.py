"""Batches: many sources at once (a prefix, a manifest, a list), their counts, cancel, retry, results as one table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.deps import ClientDep, LimitsDep, ServicesDep
from functions.errors import AUTHENTICATED, BATCH_LOCATION, CONFLICT, INVALID, NOT_FOUND, TOO_LARGE
from videoapi.domain.batch_results import BATCH_RESULT_FORMATS, MEDIA_TYPES
from videoapi.domain.batch_sources import BatchClips, ItemOptions
from videoapi.domain.batches import BatchRequest

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=AUTHENTICATED)

if TYPE_CHECKING:  # the Literal is built from a tuple named once elsewhere, which mypy cannot read as a Literal
    _BatchFormat = str
else:
    _BatchFormat = Literal[BATCH_RESULT_FORMATS]


class ManifestRow(BaseModel):
    """One item of an inline list: a source, your id for it, its own options."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="upload key, s3://bucket/key, or an https:// URL")
    id: str | None = Field(None, description="your id for the item (default: its row number)")
    threshold: float | None = None
    postprocess: bool | None = None


class PrefixSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = Field(min_length=1, max_length=1100, description="s3://bucket/path/ or an upload key prefix")


class ManifestSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manifest: str = Field(
        min_length=1, max_length=1100, description="a JSONL or CSV manifest: an upload key or s3://bucket/key"
    )


class BatchBody(BaseModel):
    """POST /v1/batches: the sources (a prefix, a manifest or a list), options for every item, a tag."""

    model_config = ConfigDict(extra="forbid")

    sources: PrefixSource | ManifestSource | list[str | ManifestRow] = Field(
        description="{prefix}, {manifest}, or a list of sources (strings or objects with source, id, options)"
    )
    options: ItemOptions = Field(default_factory=ItemOptions, description="options for every item (a row's win)")
    tag: str = Field("", max_length=200, description="your own label, returned with the batch")
    clips: BatchClips | None = Field(
        None, description="cut each shot within the bounds into its own file as its item ends (null: no clips)"
    )

    @model_validator(mode="after")
    def _bounded_list(self) -> BatchBody:
        if isinstance(self.sources, list) and len(self.sources) > 10_000:
            raise ValueError("an inline list holds at most 10,000 sources; use a manifest")
        return self


def _request(body: BatchBody) -> BatchRequest:
    common: dict[str, Any] = {
        "options": body.options.model_dump(exclude_none=True),
        "tag": body.tag,
        "clips": body.clips.model_dump() if body.clips else None,
    }
    if isinstance(body.sources, PrefixSource):
        return BatchRequest(prefix=body.sources.prefix, **common)
    if isinstance(body.sources, ManifestSource):
        return BatchRequest(manifest=body.sources.manifest, **common)
    items = tuple(entry if isinstance(entry, str) else entry.model_dump(exclude_none=True) for entry in body.sources)
    return BatchRequest(items=items, **common)


class Batch(BaseModel):
    """A batch's status: counts of its items, frames and seconds of video done, throughput, an ETA."""

    id: str
    status: Literal["running", "finished", "cancelled"]
    tag: str
    items: int = Field(description="rows in the batch's sources, refused ones included")
    counts: dict[str, int] = Field(description="pending, queued, running, succeeded, failed, cancelled")
    done: int
    frames_done: int
    seconds_done: float = Field(description="seconds of video of the items that succeeded")
    throughput: dict[str, float] = Field(description="items_per_s and frames_per_s since the batch was submitted")
    eta_s: float | None
    options: dict[str, Any]
    created_at: str
    finished_at: str | None
    links: dict[str, str]


@router.post(
    "",
    status_code=202,
    summary="Submit a batch: an S3 prefix, a JSONL/CSV manifest or a list of sources, each item a job",
    response_model=Batch,
    responses={
        202: {"description": "The batch, accepted; its items run as the quota frees", "headers": BATCH_LOCATION},
        200: {
            "description": "The batch an earlier request with this Idempotency-Key made",
            "model": Batch,
            "headers": BATCH_LOCATION,
        },
        **NOT_FOUND,
        **CONFLICT,
        **TOO_LARGE,
        **INVALID,
    },
)
def submit_batch(
    body: BatchBody,
    client: ClientDep,
    limits: LimitsDep,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    view, created = services.batches.submit(client, _request(body), limits, idempotency_key)
    return JSONResponse(view, status_code=202 if created else 200, headers={"Location": f"/v1/batches/{view['id']}"})


@router.get("", summary="This client's batches, newest first", responses=INVALID)
def list_batches(
    client: ClientDep, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, list[Batch]]:
    return {"batches": [Batch(**view) for view in services.batches.list(client, limit)]}


@router.get("/{batch_id}", summary="Batch status: counts, frames done, throughput, ETA", responses=NOT_FOUND)
def batch_status(batch_id: str, client: ClientDep, services: ServicesDep) -> Batch:
    return Batch(**services.batches.view(client, batch_id))


@router.post(
    "/{batch_id}/cancel",
    summary="Cancel a batch: no more items start, queued and running ones are cancelled (409 once finished)",
    responses={**NOT_FOUND, **CONFLICT},
)
def cancel_batch(batch_id: str, client: ClientDep, services: ServicesDep) -> Batch:
    return Batch(**services.batches.cancel(client, batch_id))


@router.post(
    "/{batch_id}/retry",
    summary="Run the batch's failed items again (409 when none failed while running)",
    responses={**NOT_FOUND, **CONFLICT},
)
def retry_batch(batch_id: str, client: ClientDep, services: ServicesDep) -> Batch:
    return Batch(**services.batches.retry(client, batch_id))


@router.get(
    "/{batch_id}/results",
    summary="The batch's shots (or items, `items=true`) as one table so far: JSONL, CSV or Parquet",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One row per shot of every item that succeeded (or per item that ended); see the docs",
            "content": {media.split(";")[0]: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()},
            "headers": {"Content-Disposition": {"description": "the file name", "schema": {"type": "string"}}},
        },
        **NOT_FOUND,
        **INVALID,
    },
)
def batch_results(
    batch_id: str,
    client: ClientDep,
    services: ServicesDep,
    format: Annotated[_BatchFormat, Query()] = "jsonl",
    items: Annotated[bool, Query(description="one row per item instead of per shot")] = False,
) -> StreamingResponse:
    stream, media_type = services.batches.results(client, batch_id, format, items)
    name = f"{batch_id}-{'items' if items else 'shots'}.{format}"
    return StreamingResponse(
        stream, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


class ClipLink(BaseModel):
    """A presigned GET of one clip."""

    key: str
    url: str
    expires_in: int = Field(description="seconds the URL stays valid")
    expires_at: str


@router.get(
    "/{batch_id}/clip",
    summary="A presigned GET of one of the batch's clips (a `clip_key` of its results)",
    responses={**NOT_FOUND, **CONFLICT, **INVALID},
)
def batch_clip(
    batch_id: str,
    client: ClientDep,
    services: ServicesDep,
    key: Annotated[str, Query(min_length=1, max_length=1100, description="the shot's clip_key")],
) -> ClipLink:
    return ClipLink(**services.batches.clip_url(client, batch_id, key))
