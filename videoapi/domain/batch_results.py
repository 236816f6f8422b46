"""A batch's results as one dataset: a row per shot (or per item), written per item, assembled as it is read.

Each item, as it ends, writes one part file (`batches/<id>/parts/<index>.json`: its item row and its shot
rows); a retried item overwrites its part, so each shot appears once. Reading lists the parts in order and
streams them out as JSONL, CSV or Parquet (row groups of at most `PARQUET_ROW_GROUP` rows through a temporary
file): no process holds the whole table, and a batch still running reads as what has finished so far.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from videoapi.adapters.storage import Storage
from videoapi.errors import ObjectNotFound

BATCH_RESULT_FORMATS = ("jsonl", "csv", "parquet")
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
PARQUET_ROW_GROUP = 50_000

# (column, Arrow type, meaning): the shots table, one row per shot of every item that succeeded
SHOT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("item_id", "string", "the manifest's `id` of the item (default: its row number; a prefix's key below it)"),
    ("row", "int64", "the item's row in the batch's sources, from 1"),
    ("source", "string", "the item's source as given"),
    ("job_id", "string", "the item's job (GET /v1/jobs/{job_id})"),
    ("shot_index", "int32", "the shot's index within its video, from 0"),
    ("start_frame", "int64", "first frame of the shot"),
    ("end_frame", "int64", "last frame of the shot (inclusive)"),
    ("start_time", "float64", "seconds, at the start of start_frame"),
    ("end_time", "float64", "seconds, at the end of end_frame"),
    ("start_timecode", "string", "SMPTE timecode of start_frame"),
    ("end_timecode", "string", "SMPTE timecode of end_frame"),
    ("transition_type", "string", "the transition opening the shot (cut, dissolve, fade...); null for the first"),
    ("transition_start_frame", "int64", "first frame of that transition; null for the first shot"),
    ("transition_end_frame", "int64", "last frame of that transition; null for the first shot"),
    ("confidence", "float64", "peak probability of the boundary opening the shot; 1.0 for the first"),
    ("keyframe", "int64", "the frame chosen to show the shot"),
    ("clip_key", "string", "the shot's clip when the batch asked for clips and kept the shot, else null"),
)
# the items table (`?items=true`): one row per item that has ended, and per row refused up front
ITEM_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("item_id", "string", "the manifest's `id` of the item"),
    ("row", "int64", "the item's row in the batch's sources, from 1"),
    ("source", "string", "the item's source as given"),
    ("job_id", "string", "the item's job; null for a row refused before it ran"),
    ("status", "string", "succeeded, failed or cancelled"),
    ("error_code", "string", "why it failed (a job error code, or the row's: invalid_row, source_not_found...)"),
    ("error_message", "string", "the error for people"),
    ("attempts", "int32", "times the item was fed (1, more after retries)"),
    ("shot_count", "int32", "shots found"),
    ("frame_count", "int64", "frames decoded"),
    ("fps", "float64", "frames per second"),
    ("duration", "float64", "seconds of video"),
    ("width", "int32", "coded width in pixels"),
    ("height", "int32", "coded height in pixels"),
    ("codec", "string", "the video stream's codec"),
)


def parts_prefix(batch_id: str) -> str:
    return f"batches/{batch_id}/parts/"


def part_key(batch_id: str, index: int) -> str:
    """The item's part file; zero-padded, so that listing order is the items' order."""
    return f"{parts_prefix(batch_id)}{index:09d}.json"


def refused_rows_key(batch_id: str) -> str:
    """JSONL of the rows refused up front (their row, source, id, code, message)."""
    return f"batches/{batch_id}/refused.jsonl"


def shot_rows(item: dict[str, Any], document: dict[str, Any], clip_keys: dict[int, str]) -> list[dict[str, Any]]:
    """The shots table's rows for one item's result document (videoapi.pipeline.shots/1)."""
    transitions = document.get("transitions") or []
    rows = []
    for shot in document.get("shots", []):
        opening = transitions[shot["transition"]] if shot.get("transition") is not None else None
        rows.append(
            {
                "item_id": item["item_id"],
                "row": item["row"],
                "source": item["source"],
                "job_id": item["job_id"],
                "shot_index": shot["index"],
                "start_frame": shot["start_frame"],
                "end_frame": shot["end_frame"],
                "start_time": shot["start_time"],
                "end_time": shot["end_time"],
                "start_timecode": shot["start_timecode"],
                "end_timecode": shot["end_timecode"],
                "transition_type": opening["type"] if opening else None,
                "transition_start_frame": opening["start_frame"] if opening else None,
                "transition_end_frame": opening["end_frame"] if opening else None,
                "confidence": shot["confidence"],
                "keyframe": shot.get("keyframe"),
                "clip_key": clip_keys.get(shot["index"]),
            }
        )
    return rows


def item_row(
    *,
    item_id: str,
    row: int,
    source: str,
    job_id: str | None,
    status: str,
    attempts: int,
    error_code: str = "",
    error_message: str = "",
    document: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The items table's row; the video's fields from its result document when it succeeded."""
    video = (document or {}).get("video", {})
    return {
        "item_id": item_id,
        "row": row,
        "source": source,
        "job_id": job_id,
        "status": status,
        "error_code": error_code or None,
        "error_message": error_message or None,
        "attempts": attempts,
        "shot_count": document.get("shot_count") if document else None,
        "frame_count": video.get("frame_count"),
        "fps": video.get("fps"),
        "duration": video.get("duration"),
        "width": video.get("width"),
        "height": video.get("height"),
        "codec": video.get("codec"),
    }


def read_rows(storage: Storage, batch_id: str, items: bool) -> Iterator[dict[str, Any]]:
    """The table's rows, part by part (then the rows refused up front, for the items table)."""
    for key in storage.list_keys(parts_prefix(batch_id)):
        part = storage.get_json(key)
        if items:
            yield part["item"]
        else:
            yield from part["shots"]
    if items:
        for line in _refused_lines(storage, batch_id):
            record = json.loads(line)
            yield item_row(
                item_id=record["id"],
                row=record["row"],
                source=record["source"],
                job_id=None,
                status="failed",
                attempts=0,
                error_code=record["code"],
                error_message=record["message"],
            )


def _refused_lines(storage: Storage, batch_id: str) -> Iterator[bytes]:
    try:  # written only when some row was refused
        yield from storage.iter_lines(refused_rows_key(batch_id))
    except ObjectNotFound:
        return


def encode(rows: Iterable[dict[str, Any]], fmt: str, items: bool) -> Iterator[bytes]:
    """The rows as a stream of bytes in `fmt` (jsonl, csv or parquet)."""
    columns = ITEM_COLUMNS if items else SHOT_COLUMNS
    names = [name for name, _, _ in columns]
    if fmt == "jsonl":
        for row in rows:
            yield (json.dumps(row, separators=(",", ":")) + "\n").encode()
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for count, row in enumerate(rows, 1):
            writer.writerow(row)
            if count % 1000 == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()
    else:
        yield from _parquet(rows, columns)


def parquet_schema(columns: tuple[tuple[str, str, str], ...]) -> Any:
    """The Arrow schema of a table, each field's meaning in its metadata."""
    import pyarrow as pa

    return pa.schema(
        [pa.field(name, getattr(pa, kind)(), metadata={"description": meaning}) for name, kind, meaning in columns]
    )


def _parquet(rows: Iterable[dict[str, Any]], columns: tuple[tuple[str, str, str], ...]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(columns)
    with tempfile.TemporaryFile() as file:
        with pq.ParquetWriter(file, schema) as writer:
            group: list[dict[str, Any]] = []
            written = 0
            for row in rows:
                group.append(row)
                if len(group) >= PARQUET_ROW_GROUP:
                    writer.write_table(pa.Table.from_pylist(group, schema=schema))
                    written, group = written + len(group), []
            if group or not written:  # an empty table still has its schema
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
        file.seek(0)
        while chunk := file.read(1 << 20):
            yield chunk
