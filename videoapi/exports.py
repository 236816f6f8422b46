"""Shot documents as CSV and as a CMX 3600 EDL."""

from __future__ import annotations

import csv
import io
import re

from videoapi.shots import smpte_timecode

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


def to_csv(document: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(document["shots"])
    return out.getvalue()


def _reel_safe(text: str, limit: int) -> str:
    return re.sub(r"[^A-Za-z0-9_.\- ]", "_", text)[:limit] or "VIDEO"


def to_edl(document: dict, title: str | None = None) -> str:
    """CMX 3600: one cut event per shot; out-points are exclusive, as the format wants."""
    fps = document["video"]["fps"]
    drop = ";" in smpte_timecode(0, fps) or abs(fps * 1001 / 1000 - round(fps)) < 0.01 and round(fps) in (30, 60)
    clip = document["video"].get("source", "").rsplit("/", 1)[-1]
    lines = [
        f"TITLE: {_reel_safe(title or clip or 'shots', 70)}",
        f"FCM: {'DROP FRAME' if drop else 'NON-DROP FRAME'}",
        "",
    ]
    for shot in document["shots"]:
        start, end = smpte_timecode(shot["start_frame"], fps), smpte_timecode(shot["end_frame"] + 1, fps)
        lines.append(f"{shot['index'] + 1:03d}  AX       V     C        {start} {end} {start} {end}")
        lines.append(f"* FROM CLIP NAME: {_reel_safe(clip, 120)}")
        lines.append("")
    return "\n".join(lines)
