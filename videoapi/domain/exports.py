"""Result documents as editors' timelines (through OpenTimelineIO), CSV and x264/x265 QP files."""

from __future__ import annotations

import csv
import io
import re
from fractions import Fraction
from pathlib import PurePosixPath
from typing import Any

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from videoapi.errors import ExportError
from videoapi.pipeline.shots import timecode_frames, timecode_rate

# format name -> the OpenTimelineIO adapter that writes it
TIMELINE_ADAPTERS = {"otio": "otio_json", "fcpxml": "fcpx_xml", "xml": "fcp_xml", "edl": "cmx_3600"}
# format name -> (file extension, media type) of every export written from the result document
EXPORT_FILES = {
    "csv": ("csv", "text/csv; charset=utf-8"),
    "edl": ("edl", "text/plain; charset=utf-8"),
    "otio": ("otio", "application/json"),
    "fcpxml": ("fcpxml", "application/xml"),
    "xml": ("xml", "application/xml"),
    "qp": ("qp", "text/plain; charset=utf-8"),
}
GRADUAL_TRANSITIONS = ("dissolve", "fade", "wipe", "fade_in", "fade_out")
# OTIO's transition type per ours: a wipe is the CMX 3600 adapter's own name for `W` events, the rest dissolves
WIPE = "SMPTE_Wipe"
WIPE_CODE = "W001"  # CMX 3600's wipe code (SMPTE wipe 001, a horizontal wipe): the pattern is not known here

CSV_COLUMNS = [
    "index",
    "start_frame",
    "end_frame",
    "start_time",
    "end_time",
    "start_timecode",
    "end_timecode",
    "confidence",
]


def to_csv(document: dict[str, Any]) -> str:
    """One row per shot; `transition_type` when the document has transitions; technical cues as `kind` rows.

    New columns are appended, so readers of the shot-only header keep working.
    """
    transitions = document.get("transitions")
    cues = document.get("technical_cues")
    columns = list(CSV_COLUMNS)
    if cues is not None:
        columns += ["kind", "cue_type"]
    if transitions is not None:
        columns.append("transition_type")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for shot in document["shots"]:
        row = {**shot, "kind": "shot"}
        if transitions is not None and shot.get("transition") is not None:
            row["transition_type"] = transitions[shot["transition"]]["type"]
        writer.writerow(row)
    for index, cue in enumerate(cues or []):
        writer.writerow({**cue, "kind": "technical_cue", "index": index, "cue_type": cue["type"]})
    return out.getvalue()


def to_qp(document: dict[str, Any]) -> str:
    """An x264/x265 `--qpfile`: an I-frame (QP chosen by the encoder) at each shot's first frame."""
    return "".join(f"{shot['start_frame']} I -1\n" for shot in document["shots"])


def _rate(document: dict[str, Any]) -> float:
    fps = document["video"]["fps"]
    return timecode_rate(fps) or fps


def _start_frames(document: dict[str, Any], start_timecode: str | None) -> int:
    if not start_timecode:
        return 0
    try:
        return timecode_frames(start_timecode, document["video"]["fps"])
    except ValueError as exc:
        raise ExportError(str(exc), "start_timecode") from exc


def timeline(document: dict[str, Any], start_timecode: str | None = None) -> otio.schema.Timeline:
    """One video track, a clip per shot whose source range is the shot's frames in the source media.

    Frames in no shot (those the model found inside a transition) are gaps, so the record side keeps the
    source's timing; a gradual transition between two shots becomes an OTIO dissolve over those frames
    (each side's handle reaches into the blend), which NLEs rebuild from the shots' media.
    `start_timecode` (e.g. 01:00:00:00) is the source media's and the timeline's first timecode.
    """
    rate = _rate(document)
    video = document["video"]
    offset = _start_frames(document, start_timecode)
    source = video.get("source", "")
    media_name = PurePosixPath(source).name or "video"
    media_range = TimeRange(RationalTime(offset, rate), RationalTime(video["frame_count"], rate))
    transitions = document.get("transitions") or []

    result = otio.schema.Timeline(name=media_name)
    result.global_start_time = RationalTime(offset, rate)
    track = otio.schema.Track(name="shots", kind=otio.schema.TrackKind.Video)
    result.tracks.append(track)
    previous_end = -1
    for shot in document["shots"]:
        gap = shot["start_frame"] - previous_end - 1
        opening = transitions[shot["transition"]] if shot.get("transition") is not None else None
        blend = _blend(opening, gap, shot["start_frame"]) if opening and previous_end >= 0 else None
        if gap > 0 and blend is None:
            track.append(otio.schema.Gap(source_range=TimeRange(duration=RationalTime(gap, rate))))
        if blend and opening:
            track.append(
                otio.schema.Transition(
                    name=opening["type"],
                    transition_type=WIPE if opening["type"] == "wipe" else otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=RationalTime(blend[0], rate),
                    out_offset=RationalTime(blend[1], rate),
                    metadata={"videoapi": {"transition": opening["index"], "type": opening["type"]}},
                )
            )
        reference = otio.schema.ExternalReference(target_url=source, available_range=media_range)
        reference.name = media_name
        reel = re.sub(r"[^A-Za-z0-9]", "", PurePosixPath(media_name).stem).upper()[:8] or "AX"
        track.append(
            otio.schema.Clip(
                name=f"Shot {shot['index'] + 1}",
                media_reference=reference,
                source_range=TimeRange(
                    RationalTime(offset + shot["start_frame"], rate),
                    RationalTime(shot["end_frame"] - shot["start_frame"] + 1, rate),
                ),
                metadata={
                    "videoapi": {"shot": shot["index"], "confidence": shot.get("confidence")},
                    "cmx_3600": {"reel": reel},  # the adapter's own reel name would keep "mp4" of the file's name
                },
            )
        )
        previous_end = shot["end_frame"]
    return result


def _blend(transition: dict[str, Any], gap: int, cut: int) -> tuple[int, int] | None:
    """(in_offset, out_offset) in frames of a gradual transition at `cut` (the next shot's first frame).

    Blended frames between the shots (`gap` of them) are split across the cut; when the shots hold the
    blend themselves, the offsets are the transition's frames on either side of the cut.
    """
    if transition["type"] not in GRADUAL_TRANSITIONS:
        return None
    if gap > 0:
        return gap // 2, gap - gap // 2
    before, after = max(0, cut - transition["start_frame"]), max(0, transition["end_frame"] + 1 - cut)
    return (before, after) if before + after > 0 else None


def to_timeline(document: dict[str, Any], fmt: str, start_timecode: str | None = None) -> str:
    """The shots as `otio` (JSON), `fcpxml` (Final Cut Pro X), `xml` (Final Cut Pro 7) or `edl` (CMX 3600)."""
    if fmt in ("edl", "xml") and timecode_rate(document["video"]["fps"]) is None:
        raise ExportError(
            f"{fmt} needs an SMPTE rate, not {document['video']['fps']} fps; use otio or fcpxml", "format"
        )
    built = timeline(document, start_timecode)
    text = str(otio.adapters.write_to_string(built, TIMELINE_ADAPTERS[fmt]))
    if fmt == "fcpxml":
        return _fcpxml_frame_duration(text, _rate(document))
    if fmt == "edl":
        wipes = [t.transition_type == WIPE for t in built.tracks[0] if isinstance(t, otio.schema.Transition)]
        return _edl_record_offset(_edl_wipes(text, wipes), _start_frames(document, start_timecode), _rate(document))
    return text


_EDL_DISSOLVE = re.compile(r"^(\d{3}\s+\S+\s+\S+\s+)D (\d{3})    ")


def _edl_wipes(text: str, wipes: list[bool]) -> str:
    """Turn the `D` events of wipes into `W001` events (OTIO's CMX 3600 writer writes every transition as a `D`;
    its reader takes `W` events back as SMPTE_Wipe transitions). `wipes`: per transition, in the track's order,
    whether it is a wipe; the writer gives one `D` event line per transition, in the same order."""
    lines, seen = text.split("\n"), 0
    for i, line in enumerate(lines):
        found = _EDL_DISSOLVE.match(line)
        if found:
            if seen < len(wipes) and wipes[seen]:
                lines[i] = f"{found.group(1)}{WIPE_CODE} {found.group(2)} " + line[found.end() :]
            seen += 1
    return "\n".join(lines)


_EDL_EVENT = re.compile(r"^(\d{3}\s.*\s)(\d\d:\d\d:\d\d[:;]\d\d) (\d\d:\d\d:\d\d[:;]\d\d)$")


def _edl_record_offset(text: str, offset: int, rate: float) -> str:
    """Move each event's record in/out by the start timecode, as the source side already is.

    OTIO's CMX 3600 writer counts the record side from zero whatever the timeline's global start time,
    while a master that starts at 01:00:00:00 is recorded from 01:00:00:00.
    """
    if not offset:
        return text

    def shift(match: re.Match[str]) -> str:
        head, record_in, record_out = match.groups()
        drop = ";" in record_in
        moved = [RationalTime.from_timecode(tc, rate).value + offset for tc in (record_in, record_out)]
        out = [RationalTime(v, rate).to_timecode(rate, drop_frame=drop) for v in moved]
        return f"{head}{out[0]} {out[1]}"

    return "\n".join(_EDL_EVENT.sub(shift, line) for line in text.split("\n"))


def _fcpxml_frame_duration(text: str, rate: float) -> str:
    """Fill the format's frameDuration the FCPXML adapter leaves empty at rates it has no entry for.

    It looks rates up by int() or exact float, so 24000/1001 and 30000/1001 fps (the rates
    containers give) miss its table; the exact fraction is what Final Cut Pro expects.
    """
    frame = Fraction(1 / rate).limit_denominator(100_000)
    return text.replace('frameDuration=""', f'frameDuration="{frame.numerator}/{frame.denominator}s"')


def export(document: dict[str, Any], fmt: str, start_timecode: str | None = None) -> bytes:
    """The document in one of EXPORT_FILES' formats; ExportError for what that format cannot hold."""
    if fmt == "csv":
        return to_csv(document).encode()
    if fmt == "qp":
        return to_qp(document).encode()
    return to_timeline(document, fmt, start_timecode).encode()


def to_edl(document: dict[str, Any], start_timecode: str | None = None) -> str:
    """CMX 3600 through OTIO's adapter: a cut per shot, `D` events for dissolves and fades, `W001` for wipes."""
    return to_timeline(document, "edl", start_timecode)
