"""Probing real files: what is accepted, and the code for each thing refused."""

import pytest

from local.synthetic import write_variable_frame_rate, write_video
from videoapi.errors import VideoRejected
from videoapi.pipeline.probe import VideoLimits, frame_times, is_variable_frame_rate, probe, probe_timeline


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


def test_variable_frame_rate_is_accepted_and_reported_with_each_frames_time(tmp_path):
    path = tmp_path / "vfr.mp4"
    write_variable_frame_rate(path)  # intervals alternate 100 ms, 20 ms
    info, frame_pts = probe_timeline(path)
    assert info.variable_frame_rate and info.frame_count == 120 == len(frame_pts)
    assert (info.min_fps, info.max_fps) == pytest.approx((10, 50))
    times = frame_times(frame_pts, info.time_base)
    assert times[:4] == pytest.approx([0, 0.1, 0.12, 0.22])
    assert times[-1] < info.end_time <= times[-1] + 0.1  # the last frame lasts what the muxer wrote
    assert info.fps == pytest.approx(120 / info.end_time)


def test_a_start_offset_is_measured_from_the_first_frame_shown(tmp_path):
    path = tmp_path / "offset.ts"
    write_video(path, [20], fps=25, container_format="mpegts", start_ms=3000)
    info, frame_pts = probe_timeline(path)
    assert not info.variable_frame_rate and frame_pts[0] >= 3 * 90000
    assert frame_times(frame_pts, info.time_base)[:3] == pytest.approx([0, 0.04, 0.08])


def test_codec_is_the_formats_name_not_the_decoders(tmp_path):
    path = tmp_path / "av1.mp4"
    write_video(path, [10], fps=25, width=128, height=72, codec="libsvtav1")
    assert probe(path).codec == "av1"  # FFmpeg decodes it with libdav1d


def test_frame_interval_rule():
    assert not is_variable_frame_rate([0, 40, 80, 120, 160, 200])
    assert not is_variable_frame_rate([0, 80, 40, 160, 120, 200])  # B-frame order, same intervals
    assert is_variable_frame_rate([0, 20, 120, 140, 240, 260, 360])


@pytest.mark.parametrize(
    "args,expected",
    [
        (["-display_rotation", "90"], (90, 96, 160)),
        (["-bsf:v", "h264_metadata=sample_aspect_ratio=4/3"], (0, 213, 96)),
    ],
)
def test_rotation_and_sample_aspect_ratio_are_reported(tmp_path, ffmpeg_exe, args, expected):
    import subprocess

    plain, path = tmp_path / "plain.mp4", tmp_path / "tagged.mp4"
    write_video(plain, [10], width=160, height=96)
    before = ["-display_rotation", "90"] if args[0] == "-display_rotation" else []
    after = args if not before else []
    subprocess.run([ffmpeg_exe, "-v", "error", *before, "-i", str(plain), "-c", "copy", *after, str(path)], check=True)
    info = probe(path)
    assert (info.rotation, info.display_width, info.display_height) == expected
    assert (info.width, info.height) == (160, 96)  # the coded picture
