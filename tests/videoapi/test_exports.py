"""Exports are pure functions of the result document: every timeline is read back with OpenTimelineIO."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ElementTree
from fractions import Fraction

import opentimelineio as otio
import pytest

from videoapi.domain.exports import to_csv, to_qp, to_timeline
from videoapi.errors import ExportError
from videoapi.pipeline.shots import smpte_timecode, timecode_frames

RATES = {"23.976": 24000 / 1001, "25": 25.0, "29.97 DF": 30000 / 1001, "59.94 DF": 60000 / 1001}
SOURCE = "s3://videoapi/uploads/alice/abc/Match Day.mp4"
ADAPTERS = {"otio": "otio_json", "xml": "fcp_xml", "fcpxml": "fcpx_xml", "edl": "cmx_3600"}


def document(fps: float, spans, transitions=None, cues=None) -> dict:
    """A result document in the videoapi.pipeline.shots/1 shape (with the accuracy and cues branches' keys if given)."""
    shots = []
    for i, (start, end) in enumerate(spans):
        shot = {
            "index": i,
            "start_frame": start,
            "end_frame": end,
            "start_time": round(start / fps, 6),
            "end_time": round((end + 1) / fps, 6),
            "start_timecode": smpte_timecode(start, fps),
            "end_timecode": smpte_timecode(end, fps),
            "confidence": 1.0 if i == 0 else 0.9,
        }
        if transitions is not None and i:
            shot["transition"] = i - 1
        shots.append(shot)
    doc = {
        "schema": "videoapi.pipeline.shots/1",
        "job_id": "job_" + "0" * 32,
        "video": {
            "source": "s3://videoapi/uploads/alice/abc/Match Day.mp4",
            "fps": fps,
            "frame_count": spans[-1][1] + 1,
        },
        "shots": shots,
        "shot_count": len(shots),
    }
    if transitions is not None:
        doc["transitions"] = transitions
    if cues is not None:
        doc["technical_cues"] = cues
    return doc


# cuts only, irregular lengths, one frame between shots 2 and 3 (a frame the reference rule leaves in no shot)
SPANS = [(0, 119), (120, 120), (121, 1899), (1901, 1950), (1951, 40_000)]


def exact_fcpxml_ranges(text: str) -> list[tuple[Fraction, Fraction]]:
    """(start, duration) in seconds of each clip on the spine, as FCPXML states them: rationals like 1001/24000s."""
    root = ElementTree.fromstring(text)

    def seconds(value: str) -> Fraction:
        return Fraction(value.rstrip("s"))

    return [(seconds(c.get("start", "0s")), seconds(c.get("duration"))) for c in root.iterfind(".//spine/clip")]


@pytest.mark.parametrize("rate", RATES.values(), ids=RATES.keys())
@pytest.mark.parametrize("fmt", ADAPTERS)
@pytest.mark.parametrize("start", [None, "01:00:00:00"])
def test_every_timeline_reads_back_with_one_clip_per_shot_and_exact_ranges(fmt, rate, start):
    if start and round(rate) in (30, 60):
        start = "01:00:00;00"
    doc = document(rate, SPANS)
    text = to_timeline(doc, fmt, start)
    read = otio.adapters.read_from_string(text, ADAPTERS[fmt], **({"rate": rate} if fmt == "edl" else {}))
    clips = list(read.find_clips())
    assert len(clips) == len(doc["shots"])
    offset = timecode_frames(start, rate) if start else 0
    if fmt == "fcpxml" and rate != round(rate):
        # the FCPXML adapter reads NTSC rates back as whole numbers (int(24000/1001) = 23), so the file's own
        # rational times are the exact check; the clip count above is still OTIO's reading
        frame = Fraction(1001, round(rate) * 1000)
        expected = [((offset + a) * frame, (b - a + 1) * frame) for a, b in SPANS]
        assert exact_fcpxml_ranges(text) == expected
        return
    for clip, (first, last) in zip(clips, SPANS):
        assert clip.source_range.start_time.rate == pytest.approx(rate)
        assert clip.source_range.start_time.to_frames() == offset + first
        assert clip.source_range.duration.to_frames() == last - first + 1
        if fmt != "edl":
            assert clip.media_reference.target_url == doc["video"]["source"]


def test_edl_is_cmx_3600_with_source_timecodes_drop_frame_at_29_97():
    rate = 30000 / 1001
    text = to_timeline(document(rate, SPANS), "edl", "01:00:00;00")
    events = [line.split() for line in text.splitlines() if line[:3].isdigit()]
    assert [e[1:4] for e in events] == [["MATCHDAY", "V", "C"]] * len(SPANS)
    assert events[0][4:6] == ["01:00:00;00", smpte_timecode(120, rate, "01:00:00;00")]
    assert events[2][4] == "01:00:04;01" == smpte_timecode(121, rate, "01:00:00;00")
    assert "FROM CLIP: s3://videoapi/uploads/alice/abc/Match Day.mp4" in text


@pytest.mark.parametrize("rate", RATES.values(), ids=RATES.keys())
def test_edl_record_side_starts_at_the_start_timecode_like_the_source_side(rate):
    start = "01:00:00;00" if round(rate) in (30, 60) else "01:00:00:00"
    text = to_timeline(document(rate, SPANS), "edl", start)
    events = [line.split() for line in text.splitlines() if line[:3].isdigit()]
    # gaps keep the record side on source time, so record in/out equal source in/out event by event
    assert [e[6:8] for e in events] == [e[4:6] for e in events]
    assert events[0][6] == start and events[-1][7] == smpte_timecode(SPANS[-1][1] + 1, rate, start)
    assert to_timeline(document(rate, SPANS), "edl").splitlines()[2].split()[6] == smpte_timecode(0, rate)


def test_dissolves_become_otio_transitions_and_edl_d_events():
    rate = 25.0
    spans = [(0, 99), (106, 199), (200, 299)]
    transitions = [
        {"index": 0, "type": "dissolve", "start_frame": 100, "end_frame": 105, "confidence": 0.8},
        {"index": 1, "type": "cut", "start_frame": 200, "end_frame": 200, "confidence": 0.99},
    ]
    doc = document(rate, spans, transitions)
    tl = otio.adapters.read_from_string(to_timeline(doc, "otio"), "otio_json")
    items = list(tl.tracks[0])
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Clip", "Transition", "Clip", "Clip"]
    dissolve = items[1]
    assert dissolve.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve
    assert dissolve.in_offset.to_frames() + dissolve.out_offset.to_frames() == 6  # the six blended frames
    assert [c.source_range.start_time.to_frames() for c in tl.find_clips()] == [0, 106, 200]
    # a clip's visible range reaches into the blend from both sides: together exactly frames 100..105
    assert items[0].visible_range().end_time_exclusive().to_frames() == 100 + dissolve.out_offset.to_frames()
    assert items[2].visible_range().start_time.to_frames() == 106 - dissolve.in_offset.to_frames()

    edl = to_timeline(doc, "edl")
    dissolve_events = [line.split() for line in edl.splitlines() if line[:3].isdigit() and " D " in line]
    assert len(dissolve_events) == 1 and dissolve_events[0][4] == "006"  # D, then its length in frames
    back = otio.adapters.read_from_string(edl, "cmx_3600", rate=rate)
    assert len(list(back.find_clips())) == 3
    assert [type(i).__name__ for i in back.tracks[0]].count("Transition") == 1

    for fmt in ("xml", "fcpxml"):
        assert len(list(otio.adapters.read_from_string(to_timeline(doc, fmt), ADAPTERS[fmt]).find_clips())) == 3


def test_a_dissolve_inside_tiling_shots_overlaps_their_own_frames():
    spans = [(0, 102), (103, 199)]  # shots that hold the blended frames 100..105 themselves
    transitions = [{"index": 0, "type": "dissolve", "start_frame": 100, "end_frame": 105, "confidence": 0.8}]
    tl = otio.adapters.read_from_string(to_timeline(document(25.0, spans, transitions), "otio"), "otio_json")
    items = list(tl.tracks[0])
    assert [type(i).__name__ for i in items] == ["Clip", "Transition", "Clip"]
    assert (items[1].in_offset.to_frames(), items[1].out_offset.to_frames()) == (3, 3)
    assert [c.source_range.duration.to_frames() for c in tl.find_clips()] == [103, 97]
    assert " D " in to_timeline(document(25.0, spans, transitions), "edl")


def test_frames_between_cut_shots_stay_as_gaps_so_record_time_is_source_time():
    tl = otio.adapters.read_from_string(to_timeline(document(25.0, SPANS), "otio"), "otio_json")
    track = tl.tracks[0]
    for clip, (first, _) in zip(track.find_clips(), SPANS):
        assert track.range_of_child(clip).start_time.to_frames() == first
    assert track.duration().to_frames() == SPANS[-1][1] + 1


def test_bad_start_timecode_and_rates_without_smpte_timecode_are_clear_errors():
    with pytest.raises(ExportError) as error:
        to_timeline(document(25.0, SPANS), "otio", "01:00:00:25")
    assert error.value.field == "start_timecode"
    doc = document(15.0, SPANS)
    for fmt in ("edl", "xml"):
        with pytest.raises(ExportError) as error:
            to_timeline(doc, fmt)
        assert error.value.field == "format"
    for fmt in ("otio", "fcpxml"):
        clips = list(otio.adapters.read_from_string(to_timeline(doc, fmt), ADAPTERS[fmt]).find_clips())
        assert [c.source_range.start_time.to_frames() for c in clips] == [a for a, _ in SPANS]


def test_qp_file_puts_a_keyframe_at_every_shot_start():
    assert to_qp(document(25.0, SPANS)).splitlines() == [f"{a} I -1" for a, _ in SPANS]


def test_csv_plain_then_with_transition_types_and_technical_cues():
    plain = list(csv.DictReader(io.StringIO(to_csv(document(25.0, SPANS)))))
    assert [int(r["start_frame"]) for r in plain] == [a for a, _ in SPANS] and "kind" not in plain[0]
    assert "transition_type" not in plain[0]

    transitions = [
        {"index": i, "type": t, "start_frame": SPANS[i + 1][0], "end_frame": SPANS[i + 1][0], "confidence": 0.9}
        for i, t in enumerate(["cut", "dissolve", "fade", "cut"])
    ]
    cues = [
        {
            "type": "BlackFrames",
            "start_frame": 0,
            "end_frame": 10,
            "start_time": 0.0,
            "end_time": 0.44,
            "start_timecode": "00:00:00:00",
            "end_timecode": "00:00:00:10",
            "duration_frames": 11,
            "confidence": 0.97,
        }
    ]
    rows = list(csv.DictReader(io.StringIO(to_csv(document(25.0, SPANS, transitions, cues)))))
    shots = [r for r in rows if r["kind"] == "shot"]
    assert [r["transition_type"] for r in shots] == ["", "cut", "dissolve", "fade", "cut"]
    (cue,) = [r for r in rows if r["kind"] == "technical_cue"]
    assert (cue["cue_type"], cue["start_frame"], cue["end_frame"], cue["confidence"]) == (
        "BlackFrames",
        "0",
        "10",
        "0.97",
    )
