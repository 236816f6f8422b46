"""A batch's sources as a stream of rows: an S3 prefix listed, a JSONL or CSV manifest read line by line, a list.

Each row is checked as it comes (its source's form and owner, its options) without reading storage, so a
manifest of a million rows costs one pass and no request per row; a bad row becomes a `RowError` (a failed
item with its row number and code) and the rest go on. Rows are numbered from 1 in the order they come:
a manifest's records (blank lines skipped, a CSV's header not counted), a prefix's keys in key order.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from videoapi.adapters.storage import Storage
from videoapi.errors import ApiError, InvalidRequest, NotFound, ObjectNotFound

MANIFEST_FIELDS = ("source", "id", "threshold", "postprocess")  # a CSV manifest's columns (source required)


class ItemOptions(BaseModel):
    """The options a batch, or one of its rows, may set for its items' detection."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(None, gt=0, lt=1, description="the shot threshold (default: the service's)")
    postprocess: bool | None = Field(None, description="typed transitions; false: the reference rule exactly")


class BatchClips(BaseModel):
    """Clips for a dataset: each shot of every item within the duration bounds, cut and written as it ends."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["copy", "exact"] = Field(
        "copy", description="copy: stream copy from the keyframe at or before the shot (fast); exact: re-encoded"
    )
    min_duration_s: float = Field(0.0, ge=0, description="shots shorter than this get no clip")
    max_duration_s: float | None = Field(None, gt=0, description="shots longer than this get no clip")
    trim_transitions: bool = Field(False, description="leave out the frames of dissolves and fades at either end")
    prefix: str | None = Field(
        None,
        min_length=1,
        max_length=900,
        description="where the clips go: s3://bucket/path/ of a bucket in VIDEOAPI_CLIP_BUCKETS, or a folder "
        "under the batch's own (default: batches/<id>/clips/ in the service's bucket)",
    )

    @model_validator(mode="after")
    def _bounds(self) -> BatchClips:
        if self.max_duration_s is not None and self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s is less than min_duration_s")
        return self


@dataclass(frozen=True)
class BatchRow:
    """One item to run: its row number, source, the user's id for it and its options."""

    row: int
    source: str
    item_id: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RowError:
    """A row refused up front: it becomes a failed item with this code and message."""

    row: int
    source: str
    item_id: str
    code: str
    message: str

    def record(self) -> dict[str, Any]:
        return {"row": self.row, "source": self.source, "id": self.item_id, "code": self.code, "message": self.message}


SourceCheck = Callable[[str], object]  # raises an ApiError for a source this client may not name


def check_row(row: int, raw: Any, check_source: SourceCheck) -> BatchRow | RowError:
    """A manifest record or list entry (a source string, or an object with `source`, `id`, options)."""
    if isinstance(raw, str):
        raw = {"source": raw}
    if not isinstance(raw, dict):
        return RowError(row, "", str(row), "invalid_row", "a row is a source string or an object with `source`")
    source, item_id = raw.get("source"), raw.get("id")
    item_id = str(row) if item_id in (None, "") else str(item_id)
    if not isinstance(source, str) or not source.strip():
        return RowError(row, "", item_id, "missing_source", "the row has no `source`")
    source = source.strip()
    if len(source) > 4096 or len(item_id) > 1024:
        return RowError(row, source[:200], item_id[:200], "invalid_row", "source or id too long")
    # most rows have no options: neither a dict to build nor a model to validate for them
    has_options = len(raw) > ("source" in raw) + ("id" in raw)
    options = {k: v for k, v in raw.items() if k not in ("source", "id") and v not in (None, "")} if has_options else {}
    if options:
        try:
            options = ItemOptions.model_validate(options).model_dump(exclude_none=True)
        except ValidationError as error:
            first = error.errors()[0]
            name = ".".join(str(p) for p in first["loc"]) or "options"
            return RowError(row, source, item_id, "invalid_options", f"{name}: {first['msg']}")
    try:
        check_source(source)
    except ApiError as error:
        return RowError(row, source, item_id, error.code, error.message)
    return BatchRow(row, source, item_id, options)


def inline_rows(entries: Iterable[Any], check_source: SourceCheck) -> Iterator[BatchRow | RowError]:
    for row, entry in enumerate(entries, 1):
        yield check_row(row, entry, check_source)


def prefix_rows(storage: Storage, bucket: str, prefix: str, check_source: SourceCheck) -> Iterator[BatchRow | RowError]:
    """Every object under the prefix (folders' marker objects left out), as `s3://bucket/key` sources."""
    row = 0
    for key in storage.for_bucket(bucket).list_keys(prefix):
        if key.endswith("/"):
            continue
        row += 1
        yield check_row(row, {"source": f"s3://{bucket}/{key}", "id": key[len(prefix) :]}, check_source)


def _bool(value: str) -> bool | str:
    lowered = value.strip().lower()
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(lowered, value)


def manifest_rows(
    storage: Storage, bucket: str, key: str, check_source: SourceCheck, field_name: str = "sources.manifest"
) -> Iterator[BatchRow | RowError]:
    """A JSONL manifest (a JSON object or string per line) or a CSV one (a header with `source`), as a stream.

    422 invalid_manifest when the first record is neither; 404 manifest_not_found when the object is missing.
    """
    try:
        lines = storage.for_bucket(bucket).iter_lines(key)
        decoded = (line.decode("utf-8") for line in lines)
        first = next((line for line in decoded if line.strip()), None)
    except ObjectNotFound as exc:
        raise NotFound("manifest_not_found", f"s3://{bucket}/{key} does not exist", field_name) from exc
    except UnicodeDecodeError as exc:
        raise InvalidRequest("invalid_manifest", "the manifest is not UTF-8 text", field_name) from exc
    yield from read_manifest(_chain(first, decoded) if first is not None else (), check_source, field_name)


def read_manifest(
    lines: Iterable[str], check_source: SourceCheck, field_name: str = "sources.manifest"
) -> Iterator[BatchRow | RowError]:
    """A manifest's text lines as rows: JSONL, or CSV with a header naming `source` (422 invalid_manifest)."""
    lines = iter(lines)
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise InvalidRequest("empty_batch", "the manifest has no rows", field_name)
    first = first.lstrip(codecs.BOM_UTF8.decode())
    if first.lstrip().startswith(("{", '"')):
        yield from _jsonl_rows(first, lines, check_source)
        return
    header = next(csv.reader([first]))
    if "source" not in [name.strip() for name in header]:
        raise InvalidRequest(
            "invalid_manifest",
            "a manifest is JSONL (one JSON object per line) or CSV with a header naming a `source` column",
            field_name,
        )
    yield from _csv_rows(first, lines, check_source)


def _jsonl_rows(first: str, lines: Iterator[str], check_source: SourceCheck) -> Iterator[BatchRow | RowError]:
    row = 0
    for line in _chain(first, lines):
        if not line.strip():
            continue
        row += 1
        try:
            record = json.loads(line)
        except ValueError:
            yield RowError(row, "", str(row), "invalid_row", "the line is not JSON")
            continue
        yield check_row(row, record, check_source)


def _csv_rows(first: str, lines: Iterator[str], check_source: SourceCheck) -> Iterator[BatchRow | RowError]:
    row = 0
    reader = csv.DictReader(_chain(first, lines), skipinitialspace=True)
    for record in reader:
        if not any((value or "").strip() for value in record.values() if isinstance(value, str)):
            continue
        row += 1
        unknown = [name for name in record if name is None or name.strip() not in MANIFEST_FIELDS]
        cleaned: dict[str, Any] = {
            name.strip(): value.strip() for name, value in record.items() if isinstance(name, str) and value
        }
        if unknown:
            columns = ", ".join(str(name) for name in unknown)
            yield RowError(row, cleaned.get("source", ""), str(row), "invalid_row", f"unknown columns: {columns}")
            continue
        if "postprocess" in cleaned:
            cleaned["postprocess"] = _bool(cleaned["postprocess"])
        yield check_row(row, cleaned, check_source)


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest
