"""Probabilities to shots: the reference rule exactly, times, SMPTE timecodes, confidences, scoring."""

import numpy as np
import pytest

from videoapi.pipeline.shots import ShotList, score_transitions, shot_spans, smpte_timecode, transitions


@pytest.mark.parametrize("seed", range(20))
def test_spans_equal_the_reference_rule(reference_model, seed):
    rng = np.random.default_rng(seed)
    probs = (rng.random(rng.integers(1, 400)) ** 8).astype(np.float32)  # mostly low, some peaks
    expected = [tuple(s) for s in reference_model.predictions_to_scenes(probs, threshold=0.5)]
    assert shot_spans(probs, 0.5) == expected


def test_all_above_threshold_is_one_shot(reference_model):
    probs = np.ones(10, np.float32)
    assert shot_spans(probs) == [tuple(s) for s in reference_model.predictions_to_scenes(probs)] == [(0, 9)]


def test_shot_list_times_timecodes_and_confidence():
    probs = np.zeros(100, np.float32)
    probs[39], probs[40], probs[41] = 0.7, 0.95, 0.6  # a short dissolve around frame 40
    shots = ShotList.from_predictions(probs, fps=25.0).shots
    assert [(s.start_frame, s.end_frame) for s in shots] == [(0, 39), (42, 99)]
    first, second = shots
    assert (first.start_time, first.end_time) == (0.0, 1.6)
    assert (second.start_time, second.end_time) == (1.68, 4.0)
    assert (second.start_timecode, second.end_timecode) == ("00:00:01:17", "00:00:03:24")
    assert first.confidence == 1.0 and second.confidence == pytest.approx(0.95)


@pytest.mark.parametrize(
    "frame,fps,expected",
    [
        (0, 25, "00:00:00:00"),
        (90_000, 25, "01:00:00:00"),
        (1799, 29.97, "00:00:59;29"),
        (1800, 29.97, "00:01:00;02"),  # drop-frame skips ;00 and ;01 at each minute
        (17982, 29.97, "00:10:00;00"),  # but not at every tenth
        (3600, 59.94, "00:01:00;04"),
        (24, 23.976, "00:00:01:00"),
        (30, 30, "00:00:01:00"),
    ],
)
def test_smpte_timecodes(frame, fps, expected):
    assert smpte_timecode(frame, fps) == expected


def test_scoring_matches_one_to_one_within_tolerance():
    truth = [(10, 11), (50, 51), (90, 95)]
    predicted = [(12, 13), (14, 15), (60, 61), (96, 97)]
    score = score_transitions(predicted, truth, tolerance=2)
    assert (score.true_positives, score.false_positives, score.false_negatives) == (2, 2, 1)
    assert score.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert transitions([(0, 9), (12, 20), (21, 30)]) == [(9, 12), (20, 21)]


def test_frame_clock_keeps_constant_rate_numbers_and_times_variable_rate_by_pts():
    from videoapi.pipeline.shots import FrameClock

    constant = FrameClock(29.97)
    assert [constant.time(f) for f in (0, 1, 1799)] == [0.0, round(1 / 29.97, 6), round(1799 / 29.97, 6)]
    assert constant.timecode(1800) == smpte_timecode(1800, 29.97) and not constant.variable
    variable = FrameClock(25.0, times=np.array([0.0, 0.02, 0.053, 0.1]), end=0.16)
    assert [variable.time(f) for f in range(4)] == [0.0, 0.02, 0.053, 0.1]
    assert variable.end_time(3) == variable.duration(4) == 0.16
    assert variable.timecode(2) == "00:00:00.053" and FrameClock(1, np.array([3725.5])).timecode(0) == "01:02:05.500"
    shots = ShotList.from_predictions(np.array([0, 0, 0.9, 0]), fps=25.0, clock=variable)
    assert [(s.start_time, s.end_time) for s in shots.shots] == [(0.0, 0.1), (0.1, 0.16)]  # shots 0-2, 3-3
