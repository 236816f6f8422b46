"""Silence cues and audio metadata from real files: the audio track heard in the one decode (PyAV)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from local.synthetic import tone, write_pictures
from videoapi.pipeline.cues import SegmentOptions, technical_cues
from videoapi.pipeline.decode import iter_model_frames_pyav
from videoapi.pipeline.frame_features import FeatureTap, frame_features
from videoapi.pipeline.probe import probe_timeline
from videoapi.pipeline.shots import FrameClock
from videoapi.pipeline.windows import MARGIN
from videoapi.settings import Settings

FPS, RATE = 25, 48000
SECONDS = 10.4
# (start, end) seconds of the sound's spans: tone, or quiet (noise at -60 dBFS RMS, under the default -50)
SPANS = [("tone", 0.0, 3.0), ("quiet", 3.0, 5.5), ("tone", 5.5, 6.8), ("quiet", 6.8, 7.9), ("tone", 7.9, 8.1)]
SPANS += [("quiet", 8.1, SECONDS)]
SILENCES = [(3.0, 5.5), (8.1, SECONDS)]  # the quiet spans of 2 s or more (6.8-7.9 is too short)


def sound() -> np.ndarray:
    rng = np.random.default_rng(0)
    parts = []
    for kind, start, end in SPANS:
        length = int(round(end * RATE)) - int(round(start * RATE))
        if kind == "tone":
            parts.append(tone(length / RATE, RATE, level_db=-20, start=int(round(start * RATE))))
        else:
            parts.append((rng.standard_normal(length) * 10 ** (-60 / 20)).astype(np.float32))
    return np.concatenate(parts)


def pictures(count: int = int(SECONDS * FPS)):
    rng = np.random.default_rng(1)
    base = rng.integers(30, 220, (54, 96, 3), dtype=np.uint8)
    return [np.roll(base, 2 * index, axis=1) for index in range(count)]


@pytest.fixture(scope="module", params=[("aac", "mp4"), ("pcm_s16le", "mov")], ids=["aac-mp4", "pcm-mov"])
def sounding(request, tmp_path_factory):
    codec, suffix = request.param
    path = tmp_path_factory.mktemp("audio") / f"tone.{suffix}"
    write_pictures(path, pictures(), fps=FPS, sound=sound(), sample_rate=RATE, audio_codec=codec)
    return path, codec


def features_of(path, start: int = 0, stop: int | None = None) -> dict:
    """The span's frame features, decoded as predict_file decodes a segment (with its margins)."""
    _, frame_pts = probe_timeline(path)
    tap = FeatureTap(frame_features(Settings()), start, stop)
    first = max(0, start - MARGIN)
    last = None if stop is None else stop + MARGIN
    for _ in tap.tap(iter_model_frames_pyav(path, first, last, frame_pts=frame_pts, audio=tap.audio), first):
        pass
    return tap.arrays()


def test_silence_cues_are_within_a_tenth_of_a_second_of_the_truth(sounding):
    path, _ = sounding
    cues = technical_cues(features_of(path), FrameClock(FPS), SegmentOptions())
    silences = [cue for cue in cues if cue["type"] == "Silence"]
    assert len(silences) == len(SILENCES), silences
    for cue, (start, end) in zip(silences, SILENCES, strict=True):
        assert abs(cue["start_time"] - start) <= 0.1 and abs(cue["end_time"] - end) <= 0.1, cue
        assert cue["start_frame"] == round(cue["start_time"] * FPS) and cue["duration_frames"] > 2 * FPS
        assert 0.5 < cue["confidence"] <= 1.0
    assert {cue["type"] for cue in cues} == {"Content", "Silence"}  # the picture is moving content throughout


def test_silence_level_and_length_follow_the_options(sounding):
    path, _ = sounding
    arrays = features_of(path)
    under_noise = SegmentOptions(silence_db=-70)  # the quiet spans' noise (-60 dBFS) is sound at -70
    assert not [c for c in technical_cues(arrays, FrameClock(FPS), under_noise) if c["type"] == "Silence"]
    short = SegmentOptions(min_silence_s=1.0)  # 6.8-7.9 s becomes long enough
    spans = [(c["start_time"], c["end_time"]) for c in technical_cues(arrays, FrameClock(FPS), short)]
    assert any(abs(start - 6.8) <= 0.1 and abs(end - 7.9) <= 0.1 for start, end in spans), spans


def test_a_segmented_decode_hears_what_a_single_pass_hears(sounding):
    path, _ = sounding
    whole = features_of(path)["cue_audio_db"]
    parts = [features_of(path, 0, 100)["cue_audio_db"], features_of(path, 100, None)["cue_audio_db"]]
    assert len(whole) == int(SECONDS * FPS) and not np.isnan(whole).any()
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=0.01)


def test_the_probe_reads_the_audio_streams_metadata(sounding):
    path, codec = sounding
    info, _ = probe_timeline(path)
    audio = info.audio
    assert audio["codec"] == codec and audio["sample_rate"] == RATE and audio["channels"] == 2
    assert audio["channel_layout"] == "stereo" and math.isclose(audio["duration"], SECONDS, abs_tol=0.05)


def test_a_file_without_audio_has_no_silence_and_no_audio_metadata(tmp_path):
    path = tmp_path / "mute.mp4"
    write_pictures(path, pictures(75), fps=FPS)
    arrays = features_of(path)
    assert "cue_audio_db" not in arrays and "cue_luma_percentiles" in arrays
    cues = technical_cues(arrays, FrameClock(FPS), SegmentOptions())
    assert [(c["type"], c["start_frame"], c["end_frame"]) for c in cues] == [("Content", 0, 74)]
    assert probe_timeline(path)[0].audio is None
