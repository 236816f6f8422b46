"""Issue 36 on real encoded video through the real pipeline (decode, the model in process, post-processing, the
result document and its exports): a wipe, a two-frame shot between two cuts, a one-frame shot, a white flash."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np
import opentimelineio as otio
import pytest

from videoapi.domain.exports import to_csv, to_timeline
from videoapi.pipeline.engine import Detector
from videoapi.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from testset import _wipe_mask, photographs  # noqa: E402

WIDTH, HEIGHT = 320, 180


def pan(photo: np.ndarray, frames: int, start: int = 0) -> list[np.ndarray]:
    """A photograph at the video's size, panned a pixel every third frame."""
    picture = cv2.resize(photo, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA).astype(np.float32)
    return [np.roll(picture, (start + t) // 3, axis=1) for t in range(frames)]


def write(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def document(model_repository, tmp_path_factory) -> dict:
    photos = photographs()
    a, b, c, d, e = (photos[i] for i in (0, 1, 2, 3, 4))
    out, into = pan(a, 80), pan(b, 80)
    frames = out[:50]  # 0..49
    for i in range(24):  # a horizontal wipe over frames 50..73
        mask = _wipe_mask("horizontal", (i + 1) / 25, False, HEIGHT, WIDTH)
        frames.append(out[50 + i] * (1 - mask) + into[i] * mask)
    frames += into[24:80]  # 74..129
    frames += pan(c, 2)  # a cut at 130 to a shot of two frames, 130..131
    frames += pan(d, 40)  # a cut at 132, 132..171
    frames += pan(c, 1, 10)  # a cut at 172 to a shot of one frame
    shot = pan(e, 60)  # a cut at 173; a white flash of two frames at 203..204
    for k in (30, 31):
        shot[k] = shot[k] * 0.25 + 255 * 0.75
    frames += shot  # 173..232
    path = tmp_path_factory.mktemp("transitions") / "wipe rapid flash.mp4"
    write(path, frames)
    result: dict = Detector(Settings()).detect(path).document
    return result


def test_a_wipe_is_one_wipe_with_its_span(document):
    wipes = [t for t in document["transitions"] if t["type"] == "wipe"]
    assert len(wipes) == 1, document["transitions"]
    assert abs(wipes[0]["start_frame"] - 50) + abs(wipes[0]["end_frame"] - 73) <= 6, wipes
    # every rendering names it: CSV's transition_type, OTIO's SMPTE_Wipe, the EDL's W event read back as a wipe
    assert "wipe" in to_csv(document).split()[2]
    timeline = otio.adapters.read_from_string(to_timeline(document, "otio"), "otio_json")
    assert [t.transition_type for t in timeline.tracks[0] if isinstance(t, otio.schema.Transition)] == ["SMPTE_Wipe"]
    edl = to_timeline(document, "edl")
    assert sum(" W001 " in line for line in edl.splitlines()) == 1
    back = otio.adapters.read_from_string(edl, "cmx_3600", rate=25)
    assert [t.transition_type for t in back.tracks[0] if isinstance(t, otio.schema.Transition)] == ["SMPTE_Wipe"]


def test_a_shot_of_two_frames_between_cuts_gives_two_boundaries_one_frame_one_and_a_flash_none(document):
    """Rapid cutting (issue 36 item 4): a shot of two frames between two cuts is two boundaries (the rule for rapid
    cuts: a clean jump to a new picture beside another cut); a shot of one frame gives two jumps side by side, neither
    clean, so one boundary, where the second cut is; a white flash of two frames opens no shot. The pan's steps beside
    the cuts are no shot of their own (the rule that 968b450 added and 4831549 took out made them one)."""
    found = [(t["type"], t["start_frame"]) for t in document["transitions"] if t["type"] != "wipe"]
    assert found == [("cut", 130), ("cut", 132), ("cut", 173)], document["transitions"]
    spans = [(s["start_frame"], s["end_frame"]) for s in document["shots"]]
    assert spans[2:] == [(130, 131), (132, 172), (173, 232)]
