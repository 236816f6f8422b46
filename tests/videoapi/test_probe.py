"""Probing real files: what is accepted, and the code for each thing refused."""

import pytest

from videoapi.probe import VideoLimits, VideoRejected, is_variable_frame_rate, probe
from videoapi.synthetic import write_variable_frame_rate, write_video


def test_describes_a_real_video(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, [30, 20], fps=30, width=256, height=144)
    info = probe(path)
    assert (info.fps, info.frame_count, info.width, info.height, info.codec) == (30.0, 50, 256, 144, "h264")
    assert info.duration == pytest.approx(50 / 30)


def test_reference_video(reference_video):
    info = probe(reference_video)
    assert (info.fps, info.frame_count) == (25.0, 5301)


@pytest.mark.parametrize(
    "limits,code",
    [
        (VideoLimits(max_width=200), "resolution_too_large"),
        (VideoLimits(max_height=100), "resolution_too_large"),
        (VideoLimits(max_duration_s=1.0), "duration_too_long"),
        (VideoLimits(max_fps=10), "bad_frame_rate"),
    ],
)
def test_limits(tmp_path, limits, code):
    path = tmp_path / "v.mp4"
    write_video(path, [60], fps=25)
    with pytest.raises(VideoRejected) as caught:
        probe(path, limits)
    assert caught.value.code == code


def test_variable_frame_rate_is_refused(tmp_path):
    path = tmp_path / "vfr.mp4"
    write_variable_frame_rate(path)
    with pytest.raises(VideoRejected, match="variable frame rate") as caught:
        probe(path)
    assert caught.value.code == "variable_frame_rate"


def test_frame_interval_rule():
    assert not is_variable_frame_rate([0, 40, 80, 120, 160, 200])
    assert not is_variable_frame_rate([0, 80, 40, 160, 120, 200])  # B-frame order, same intervals
    assert is_variable_frame_rate([0, 20, 120, 140, 240, 260, 360])
