"""Per-shot clips cut from real encoded videos with PyAV: exact re-encodes and keyframe-aligned stream copies."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from local.synthetic import write_video
from videoapi.errors import ClipError
from videoapi.pipeline.clips import ClipSpan, clip_spans, cut_clips, dataset_spans


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def shots_document(lengths: list[int], fps: float = 25.0, transitions=None) -> dict:
    starts = np.cumsum([0, *lengths])
    shots = [
        {"index": i, "start_frame": int(a), "end_frame": int(b) - 1} for i, (a, b) in enumerate(zip(starts, starts[1:]))
    ]
    if transitions is not None:
        for i, shot in enumerate(shots[1:]):
            shot["transition"] = i
    doc = {"video": {"fps": fps, "frame_count": int(starts[-1])}, "shots": shots}
    if transitions is not None:
        doc["transitions"] = transitions
    return doc


def write_b_frame_video(path: Path, lengths: list[int], gop: int = 40) -> None:
    """H.264 with B-frames (frames sent before they are shown) and a keyframe every `gop` frames."""
    rng = np.random.default_rng(4)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"preset": "faster", "crf": "20", "g": str(gop), "bf": "2", "sc_threshold": "0"}
        for length in lengths:
            base = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
            for i in range(length):
                frame = np.roll(base, 2 * i, axis=1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, list[int]]:
    path = tmp_path_factory.mktemp("clips") / "shots.mp4"
    lengths = [60, 45, 130, 65]
    write_video(path, lengths, fps=25, width=160, height=96, seed=9)
    return path, lengths


def test_exact_clips_hold_each_shots_frames_and_start_on_its_first(video, tmp_path):
    path, lengths = video
    source = decoded(path)
    doc = shots_document(lengths)
    done = []
    clips = cut_clips(path, clip_spans(doc), tmp_path, "exact", done.append)
    assert [c.shot for c in clips] == [0, 1, 2, 3] and sum(done) == sum(lengths)
    for clip, shot in zip(clips, doc["shots"]):
        frames = decoded(tmp_path / clip.file)
        assert len(frames) == clip.frame_count == shot["end_frame"] - shot["start_frame"] + 1
        assert (clip.start_frame, clip.end_frame) == (shot["start_frame"], shot["end_frame"])
        first = np.abs(frames[0].astype(int) - source[shot["start_frame"]]).mean()
        last = np.abs(frames[-1].astype(int) - source[shot["end_frame"]]).mean()
        neighbour = np.abs(frames[0].astype(int) - source[shot["start_frame"] - 1]).mean() if shot["index"] else 99
        # within the codec's noise (mean absolute difference of 8-bit RGB), far from the neighbouring shot's
        assert first < 3 and last < 8 and neighbour > 20, (first, last, neighbour)


def test_copy_clips_cut_at_keyframes_and_say_which_frames_they_hold(tmp_path):
    path = tmp_path / "bframes.mp4"
    lengths = [50, 70, 25, 55]
    write_b_frame_video(path, lengths)
    source = decoded(path)
    doc = shots_document(lengths)
    clips = cut_clips(path, clip_spans(doc, [1, 2, 3]), tmp_path / "out", "copy")
    with av.open(str(path)) as container:
        packets = sorted((p.pts, p.is_keyframe) for p in container.demux(video=0) if p.pts is not None)
    keyframes = [i for i, (_, key) in enumerate(packets) if key]
    for clip, shot in zip(clips, doc["shots"][1:]):
        assert clip.start_frame in keyframes and clip.start_frame <= shot["start_frame"]
        assert clip.end_frame >= shot["end_frame"] and (clip.end_frame + 1 in keyframes or clip.end_frame == 199)
        assert (clip.requested_start_frame, clip.requested_end_frame) == (shot["start_frame"], shot["end_frame"])
        frames = decoded(tmp_path / "out" / clip.file)
        assert len(frames) == clip.frame_count == clip.end_frame - clip.start_frame + 1
        for offset in (0, len(frames) // 2, len(frames) - 1):  # copied, not re-encoded: the very same pixels
            assert np.array_equal(frames[offset], source[clip.start_frame + offset])
        assert clip.start_time == pytest.approx(clip.start_frame / 25)


def test_trim_transitions_leaves_out_gradual_transition_frames():
    transitions = [
        {"index": 0, "type": "dissolve", "start_frame": 95, "end_frame": 104},
        {"index": 1, "type": "cut", "start_frame": 200, "end_frame": 200},
        {"index": 2, "type": "fade_out", "start_frame": 290, "end_frame": 299},
    ]
    doc = shots_document([100, 100, 100, 100], transitions=transitions)
    trimmed = {s.shot: (s.start_frame, s.end_frame) for s in clip_spans(doc, trim_transitions=True)}
    assert trimmed == {0: (0, 94), 1: (105, 199), 2: (200, 289), 3: (300, 399)}
    untrimmed = {s.shot: (s.start_frame, s.end_frame) for s in clip_spans(doc)}
    assert untrimmed[1] == (100, 199)
    # without transitions in the document there is nothing to trim
    assert [(s.start_frame, s.end_frame) for s in clip_spans(shots_document([10, 10]), trim_transitions=True)] == [
        (0, 9),
        (10, 19),
    ]


def test_a_datasets_clips_keep_the_shots_within_the_bounds_less_their_transitions():
    transitions = [
        {"index": 0, "type": "dissolve", "start_frame": 40, "end_frame": 59},
        {"index": 1, "type": "dissolve", "start_frame": 65, "end_frame": 74},
        {"index": 2, "type": "dissolve", "start_frame": 75, "end_frame": 84},
    ]
    # 50, 20, 10 and 100 frames at 25 fps; trimmed, shot 2 (70..79) lies wholly inside its two dissolves
    doc = shots_document([50, 20, 10, 100], transitions=transitions)

    def kept(*bounds, trim=True):
        return {s.shot: (s.start_frame, s.end_frame) for s in dataset_spans(doc, *bounds, trim_transitions=trim)}

    assert kept(0.1, 4.0) == {0: (0, 39), 1: (60, 64), 3: (85, 179)}
    assert kept(0.5, 3.0) == {0: (0, 39)}  # 1.6 s kept; 0.2 s and 3.8 s not
    assert kept(0.0, None, trim=False) == {0: (0, 49), 1: (50, 69), 2: (70, 79), 3: (80, 179)}
    assert kept(0.5, None, trim=False) == {0: (0, 49), 1: (50, 69), 3: (80, 179)}  # 0.4 s left out


def test_bad_requests_are_clip_errors_naming_the_field(video, tmp_path):
    path, lengths = video
    with pytest.raises(ClipError) as error:
        clip_spans(shots_document(lengths), [0, 7])
    assert (error.value.code, error.value.field) == ("invalid_shots", "shots")
    with pytest.raises(ClipError) as error:
        cut_clips(path, clip_spans(shots_document(lengths)), tmp_path, "fast")
    assert error.value.field == "mode"
    swallowed = [{"index": 0, "type": "dissolve", "start_frame": 5, "end_frame": 20}]
    with pytest.raises(ClipError) as error:
        clip_spans(shots_document([5, 10, 30], transitions=swallowed + swallowed), [1], trim_transitions=True)
    assert error.value.field == "trim_transitions"
    with pytest.raises(ClipError) as error:  # a document that does not fit the video
        cut_clips(path, [ClipSpan(3, 250, sum(lengths) + 20)], tmp_path / "short", "exact")
    assert error.value.code == "video_shorter_than_result"


@pytest.mark.parametrize("mode", ["exact", "copy"])
@pytest.mark.parametrize(
    "shown", [{"rotation": 90}, {"sample_aspect_ratio": Fraction(4, 3)}], ids=["rotated", "anamorphic"]
)
def test_clips_keep_the_display_matrix_and_sample_aspect_ratio(tmp_path, mode, shown):
    """A player shows a clip as it shows the video: upright, at the display's aspect."""
    from videoapi.pipeline.probe import probe

    path = tmp_path / "source.mp4"
    write_video(path, [20, 20], width=160, height=96, options={"preset": "ultrafast", "g": "10"}, **shown)
    source = probe(path)
    clips = cut_clips(path, [ClipSpan(0, 0, 19), ClipSpan(1, 20, 39)], tmp_path / mode, mode)
    for clip in clips:
        info = probe(tmp_path / mode / clip.file)
        assert (info.rotation, info.display_width, info.display_height) == (
            source.rotation,
            source.display_width,
            source.display_height,
        ), clip
    assert (source.display_width, source.display_height) in ((96, 160), (213, 96))
