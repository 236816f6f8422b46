"""The real footage labelled for the text cues (bench/text_cue_real.py): the committed labels hold together and
name clips that can be fetched and checked, a malformed label is refused naming its field, and the scoring
counts hits, false cues and cues on unscored spans as the docs say."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import text_cue_real  # noqa: E402
from text_cues import score_real  # noqa: E402

from videoapi.pipeline.shots import FrameClock  # noqa: E402


def test_the_committed_labels_hold_together():
    clips = text_cue_real.load()
    assert len(clips) >= 10
    for labelled in clips:
        assert len(labelled.clip.sha256) == 64 and labelled.clip.frames > 0 and labelled.clip.source["licence"]
        assert labelled.notes, labelled.clip.id
    assert sum(len(c.cues) for c in clips) >= 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cues": [{"type": "Credits", "start": 1, "end": 5}]}, "cues\\[0\\].type 'Credits'"),
        ({"cues": [{"type": "EndCredits", "start": 5, "end": 1}]}, "cues\\[0\\] frames out of"),
        ({"cues": [{"type": "EndCredits", "start": 0, "end": 10_000}]}, "cues\\[0\\] frames out of"),
        ({"unscored": [{"start": 0, "end": 5}]}, "unscored\\[0\\] says not why"),
        ({"id": "no-such-clip"}, "no clip 'no-such-clip' in bench/realset"),
    ],
)
def test_a_malformed_label_is_refused_naming_its_field(tmp_path, monkeypatch, change, message):
    data = {"id": "moviepy-chaplin", "cues": [], "unscored": [], "notes": ["x"]} | change
    (tmp_path / f"{data['id']}.json").write_text(json.dumps(data))
    monkeypatch.setattr(text_cue_real, "LABELS", tmp_path)
    with pytest.raises(ValueError, match=message):
        text_cue_real.load()


def cue(kind: str, start: int, end: int, clock: FrameClock) -> dict:
    return {"type": kind, "start_frame": start, "end_frame": end, "start_time": clock.time(start),
            "end_time": clock.end_time(end)}  # fmt: skip


def test_scoring_hits_false_cues_and_unscored_spans():
    clock = FrameClock(25.0)
    truth = [{"type": "EndCredits", "start": 500, "end": 700}]
    unscored = [{"start": 100, "end": 150, "why": "an advert's end card"}]
    found = [
        cue("EndCredits", 510, 700, clock),  # edges within 1 s: a hit
        cue("OpeningCredits", 0, 80, clock),  # matches nothing: false
        cue("StudioLogo", 120, 200, clock),  # over the unscored span: neither
        {"type": "Content", "start_frame": 0, "end_frame": 499, "start_time": 0.0, "end_time": 20.0},
    ]
    scored = score_real(found, truth, unscored, clock)
    assert [t["hit"] for t in scored["truth"]] == [True]
    assert [f[0] for f in scored["false"]] == ["OpeningCredits"]
    assert [f[0] for f in scored["on_unscored"]] == ["StudioLogo"]
    late = score_real([cue("EndCredits", 540, 700, clock)], truth, unscored, clock)  # 1.6 s late: found, no hit
    assert late["truth"][0]["found"] and not late["truth"][0]["hit"] and not late["false"]
