"""Technical cues through the API: a broadcast-style file (bars, black slugs, a freeze) and the options' checks."""

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.functions.test_api import upload

FPS = 25
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


@pytest.fixture(scope="module")
def broadcast_bytes(tmp_path_factory) -> bytes:
    """Bars 0-49, black 50-74, shot 75-124, black 125-149, shot 150-249 frozen on 175-249 (truth in the test)."""
    pictures = [bars_picture()] * 50 + [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * 25
    pictures += list(shot_pictures(1, 50)) + [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * 25
    second = list(shot_pictures(2, 26))
    pictures += second + [second[-1]] * 74
    path = tmp_path_factory.mktemp("cues") / "broadcast.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for rgb in pictures:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def test_broadcast_file_gets_its_technical_cues(http, alice, broadcast_bytes, run_job):
    key = upload(http, alice, broadcast_bytes, "broadcast.mp4")
    submitted = http.post("/v1/jobs", json={"source": key}, headers=alice)
    assert submitted.status_code == 202, submitted.text
    run_job(submitted.json()["id"])
    status = http.get(f"/v1/jobs/{submitted.json()['id']}", headers=alice).json()
    assert status["status"] == "succeeded", status
    document = http.get(status["links"]["json"], headers=alice).json()
    found = [(c["type"], c["start_frame"], c["end_frame"]) for c in document["technical_cues"]]
    truth = [
        ("ColorBars", 0, 49),
        ("BlackFrames", 50, 74),
        ("Content", 75, 124),
        ("BlackFrames", 125, 149),
        ("Content", 150, 249),
        ("FrozenFrames", 175, 249),
    ]
    assert len(found) == len(truth), found
    for (kind, start, end), (true_kind, true_start, true_end) in zip(found, truth, strict=True):
        assert kind == true_kind and abs(start - true_start) <= 2 and abs(end - true_end) <= 2, found
    bars = document["technical_cues"][0]
    assert bars["start_timecode"] == "00:00:00:00" and bars["duration_frames"] == bars["end_frame"] + 1
    assert 0 < bars["confidence"] <= 1


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
    ],
)
def test_out_of_range_options_are_422_naming_the_field(http, alice, extra, field):
    response = http.post("/v1/jobs", json={"source": "uploads/alice/x.mp4", **extra}, headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
