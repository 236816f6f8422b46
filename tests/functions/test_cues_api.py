"""Technical cues through the API: a broadcast-style file (bars, black slugs, a freeze) and the options' checks."""

import csv
import io

import botocore.session
import numpy as np
import pytest
from botocore.validate import ParamValidator

from local.synthetic import tone, write_pictures
from tests.functions.test_api import upload

FPS, RATE = 25, 48000
WIDTH, HEIGHT = 320, 180
BARS = [[191, 191, 191], [191, 191, 0], [0, 191, 191], [0, 191, 0], [191, 0, 191], [191, 0, 0], [0, 0, 191]]


def bars_picture() -> np.ndarray:
    picture = np.full((HEIGHT, WIDTH, 3), 16, np.uint8)
    edges = np.linspace(0, WIDTH, 8).round().astype(int)
    for colour, left, right in zip(BARS, edges[:-1], edges[1:], strict=True):
        picture[: HEIGHT * 2 // 3, left:right] = colour
    return picture


def shot_pictures(seed: int, length: int):
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, (HEIGHT // 20, WIDTH // 20, 3)).astype(np.uint8).repeat(20, 0).repeat(20, 1)
    for index in range(length):
        yield np.roll(base, 3 * index, axis=1)


def faded(picture: np.ndarray, gain: float) -> np.ndarray:
    return (picture.astype(np.float32) * gain).astype(np.uint8)


def broadcast_sound() -> np.ndarray:
    """Tone (-20 dBFS) with the bars, silent 2.0-4.6 s, tone 4.6-9.0 s, silent to the end (11.64 s)."""
    parts = [tone(2.0, RATE), np.zeros(int(2.6 * RATE), np.float32), tone(4.4, RATE), np.zeros(int(2.64 * RATE))]
    return np.concatenate(parts).astype(np.float32)


@pytest.fixture(scope="module")
def broadcast_bytes(tmp_path_factory) -> bytes:
    """Bars 0-49 with tone, black 50-74, shot 75-124, a black slug 125-137 (0.52 s), shot 138-190 fading out
    through black (178-190: 10 frames out, 3 held) into shot 188-290 (fading in 191-200), its picture frozen on
    216-290; silent 2.0-4.6 s and 9.0 s to the end (truth in the tests)."""
    black = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pictures = [bars_picture()] * 50 + [black] * 25
    pictures += list(shot_pictures(1, 50)) + [black] * 13
    second = list(shot_pictures(2, 50))
    pictures += second[:40] + [faded(picture, 1 - (i + 1) / 11) for i, picture in enumerate(second[40:])]
    third = list(shot_pictures(3, 25))
    pictures += [black] * 3 + [faded(picture, (i + 1) / 11) for i, picture in enumerate(third[:10])] + third[10:]
    pictures += [third[-1]] * 75
    assert len(pictures) == 291
    path = tmp_path_factory.mktemp("cues") / "broadcast.mp4"
    write_pictures(path, pictures, fps=FPS, sound=broadcast_sound(), sample_rate=RATE)
    return path.read_bytes()


TRUTH = [
    ("ColorBars", 0, 49),
    ("BlackFrames", 50, 74),
    ("Silence", 50, 114),
    ("Content", 75, 124),
    ("BlackFrames", 125, 137),
    ("Content", 138, 290),  # the fade through black 178-200 stays content
    ("FrozenFrames", 216, 290),
    ("Silence", 225, 290),
]
SILENCE_TIMES = [(2.0, 4.6), (9.0, 11.64)]


def test_broadcast_file_gets_its_technical_cues(http, alice, broadcast_bytes, run_job):
    key = upload(http, alice, broadcast_bytes, "broadcast.mp4")
    submitted = http.post("/v1/jobs", json={"source": key}, headers=alice)
    assert submitted.status_code == 202, submitted.text
    run_job(submitted.json()["id"])
    status = http.get(f"/v1/jobs/{submitted.json()['id']}", headers=alice).json()
    assert status["status"] == "succeeded", status
    document = http.get(status["links"]["json"], headers=alice).json()
    found = [(c["type"], c["start_frame"], c["end_frame"]) for c in document["technical_cues"]]
    assert len(found) == len(TRUTH), found
    for (kind, start, end), (true_kind, true_start, true_end) in zip(found, TRUTH, strict=True):
        assert kind == true_kind and abs(start - true_start) <= 2 and abs(end - true_end) <= 2, found
    silences = [c for c in document["technical_cues"] if c["type"] == "Silence"]
    for cue, (start, end) in zip(silences, SILENCE_TIMES, strict=True):
        assert abs(cue["start_time"] - start) <= 0.1 and abs(cue["end_time"] - end) <= 0.1, cue
    bars = document["technical_cues"][0]
    assert bars["start_timecode"] == "00:00:00:00" and bars["duration_frames"] == bars["end_frame"] + 1
    assert 0 < bars["confidence"] <= 1
    audio = document["audio"]
    assert (audio["codec"], audio["sample_rate"], audio["channels"]) == ("aac", RATE, 2)
    assert abs(audio["duration"] - 11.64) <= 0.05

    csv_rows = list(csv.DictReader(io.StringIO(http.get(status["links"]["csv"], headers=alice).text)))
    assert [row["cue_type"] for row in csv_rows if row["kind"] == "technical_cue"] == [kind for kind, *_ in TRUTH]

    response = http.get(f"/v1/jobs/{status['id']}/result", params={"format": "rekognition"}, headers=alice)
    assert response.status_code == 200, response.text
    rekognition = response.json()
    shape = botocore.session.get_session().get_service_model("rekognition")
    report = ParamValidator().validate(rekognition, shape.operation_model("GetSegmentDetection").output_shape)
    assert not report.has_errors(), report.generate_report()
    assert rekognition["AudioMetadata"] == [
        {"Codec": "aac", "DurationMillis": round(audio["duration"] * 1000), "SampleRate": RATE, "NumberOfChannels": 2}
    ]
    kinds = [s["TechnicalCueSegment"]["Type"] for s in rekognition["Segments"] if s["Type"] == "TECHNICAL_CUE"]
    assert kinds == ["ColorBars", "BlackFrames", "Content", "BlackFrames", "Content"]  # no Silence, no FrozenFrames


def test_segment_types_and_options_reach_the_document(http, alice, broadcast_bytes, run_job):
    key = upload(http, alice, broadcast_bytes, "broadcast.mp4")
    body = {"source": key, "segment_types": ["SHOT"], "filters": {"black_frame": {"max_pixel_threshold": 0.1}}}
    headers = {**alice, "Idempotency-Key": "cues-1"}
    first = http.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == 202, first.text
    other = {**body, "min_freeze_s": 3}
    assert http.post("/v1/jobs", json=other, headers=headers).status_code == 409  # options are part of the request
    run_job(first.json()["id"])
    status = http.get(f"/v1/jobs/{first.json()['id']}", headers=alice).json()
    document = http.get(status["links"]["json"], headers=alice).json()
    assert "technical_cues" not in document and document["segment_types"] == ["SHOT"] and document["shots"]


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"filters": {"min_segment_confidence": 40}}, "filters.min_segment_confidence"),
        ({"filters": {"black_frame": {"max_pixel_threshold": 2}}}, "filters.black_frame.max_pixel_threshold"),
        ({"filters": {"black_frame": {"min_coverage_percentage": 101}}}, "filters.black_frame.min_coverage_percentage"),
        ({"segment_types": ["SCENE"]}, "segment_types"),
        ({"min_freeze_s": -1}, "min_freeze_s"),
        ({"silence_db": 10}, "silence_db"),
        ({"min_black_s": -0.1}, "min_black_s"),
        ({"min_silence_s": 0}, "min_silence_s"),
    ],
)
def test_out_of_range_options_are_422_naming_the_field(http, alice, extra, field):
    response = http.post("/v1/jobs", json={"source": "uploads/alice/x.mp4", **extra}, headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
