"""OpenCV decode into 48x27 RGB: ranges are exact slices of a full pass."""

import numpy as np
import pytest

from videoapi.decode import iter_model_frames
from videoapi.probe import VideoRejected
from videoapi.synthetic import write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "v.mp4"
    write_video(path, [120, 130, 150], fps=25)
    return path


def test_full_decode_shape_and_type(video):
    frames = np.stack(list(iter_model_frames(video)))
    assert frames.shape == (400, 27, 48, 3) and frames.dtype == np.uint8
    # content changes at the cuts: the mean colour jumps
    means = frames.reshape(400, -1).mean(axis=1)
    jumps = np.argsort(np.abs(np.diff(means)))[-2:] + 1
    assert sorted(jumps.tolist()) == [120, 250]


@pytest.mark.parametrize("start,stop", [(0, 75), (75, 225), (175, 400), (350, None), (399, None), (500, None)])
def test_ranges_are_exact_slices(video, start, stop):
    full = np.stack(list(iter_model_frames(video)))
    part = list(iter_model_frames(video, start, stop))
    expected = full[start:stop]
    assert len(part) == len(expected)
    if part:
        assert np.array_equal(np.stack(part), expected)


def test_not_a_video(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"hello" * 1000)
    with pytest.raises(VideoRejected) as caught:
        list(iter_model_frames(path))
    assert caught.value.code == "not_a_video"
