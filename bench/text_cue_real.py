"""Real footage labelled for the text cues: public clips whose credits, titles and logos were marked by eye.

Each clip has a label file, bench/realset-cues/<id>.json: `cues`, the true text cues as
`{"type": T, "start": S, "end": E}` (T one of OpeningCredits, EndCredits, Slate, StudioLogo; S and E the first and
last frame, inclusive, with the credit, slate or logo on screen, in decoded frame indices as bench/realset.py
counts them), `unscored`, spans where what is on screen is neither clearly one of the four nor clearly none
(`{"start", "end", "why"}`: a cue overlapping one is neither a hit nor a false cue), and `notes`, what is on
screen. A clip of the real-footage set (bench/realset/<id>.json: its source, licence and sha256) is named by its
id alone; a clip that is not in that set carries its own `source`, `sha256` and `frames` in the same shape.
The clips are fetched and checked as bench/realset.py fetches its own (`python -m bench realset fetch`, or
`python -m bench text_cues real --local DIR`). The first run was made with rules fixed on the generated TUNE
seeds before these labels were made. Its false cues and misses were then looked into on these clips (words typed
on a screen, captions over a trailer's pictures), negatives of those kinds were added to the generated sets and
the rules changed on TUNE: the figures since are not a held-out measure.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from realset import LABELS as REALSET_LABELS  # noqa: E402
from realset import Clip  # noqa: E402

LABELS = HERE / "realset-cues"
TYPES = ("OpeningCredits", "EndCredits", "Slate", "StudioLogo")


@dataclass(frozen=True)
class CueClip:
    """One clip's text-cue labels, and the clip (its source, sha256, frames) to fetch."""

    clip: Clip
    cues: list[dict[str, Any]] = field(default_factory=list)
    unscored: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check(data: dict[str, Any], frames: int, name: str) -> None:
    """Raise ValueError naming the field where a label file is malformed."""
    for key in ("id", "cues", "unscored"):
        if key not in data:
            raise ValueError(f"{name}: missing field {key!r}")
    for group in ("cues", "unscored"):
        for i, span in enumerate(data[group]):
            start, end = span.get("start"), span.get("end")
            if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start <= end < frames:
                raise ValueError(f"{name}: {group}[{i}] frames out of 0..{frames - 1} or reversed")
            if group == "cues" and span.get("type") not in TYPES:
                raise ValueError(f"{name}: cues[{i}].type {span.get('type')!r} is not one of {TYPES}")
            if group == "unscored" and not span.get("why"):
                raise ValueError(f"{name}: unscored[{i}] says not why")


def clip_of(data: dict[str, Any], name: str) -> Clip:
    """The clip a label file names: the real-footage set's entry of that id, or the file's own source."""
    if "source" in data:
        for key in ("sha256", "frames"):
            if key not in data:
                raise ValueError(f"{name}: a clip outside bench/realset needs {key!r}")
        if not data["source"].get("licence"):
            raise ValueError(f"{name}: source.licence is missing")
        return Clip(data["id"], data["source"], data["sha256"], data["frames"], "cues")
    entry = REALSET_LABELS / f"{data['id']}.json"
    if not entry.exists():
        raise ValueError(f"{name}: no clip {data['id']!r} in bench/realset, and no source of its own")
    real = json.loads(entry.read_text())
    return Clip(real["id"], real["source"], real["sha256"], real["frames"], real["part"], real["transitions"])


def load() -> list[CueClip]:
    """Every labelled clip, by id."""
    found = []
    for file in sorted(LABELS.glob("*.json")):
        data = json.loads(file.read_text())
        if data.get("id") != file.stem:
            raise ValueError(f"{file.name}: id {data.get('id')!r} is not the file's name")
        clip = clip_of(data, file.name)
        check(data, clip.frames, file.name)
        found.append(CueClip(clip, data["cues"], data["unscored"], data.get("notes", [])))
    return found
