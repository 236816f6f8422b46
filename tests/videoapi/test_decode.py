"""Decode into 48x27 RGB, with OpenCV or PyAV: ranges are exact slices of a full pass; PyAV matches the reference."""

from functools import partial

import numpy as np
import pytest

from videoapi.decode import iter_model_frames, iter_model_frames_pyav
from videoapi.probe import VideoRejected
from videoapi.synthetic import write_video

DECODERS = {
    "opencv": iter_model_frames,
    "pyav": iter_model_frames_pyav,
    "pyav-deblocked": partial(iter_model_frames_pyav, skip_loop_filter=False),
}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "v.mp4"
    write_video(path, [120, 130, 150], fps=25)
    return path


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_full_decode_shape_and_type(video, decoder):
    frames = np.stack(list(DECODERS[decoder](video)))
    assert frames.shape == (400, 27, 48, 3) and frames.dtype == np.uint8
    # content changes at the cuts: the mean colour jumps
    means = frames.reshape(400, -1).mean(axis=1)
    jumps = np.argsort(np.abs(np.diff(means)))[-2:] + 1
    assert sorted(jumps.tolist()) == [120, 250]


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize(
    "start,stop", [(0, 75), (75, 225), (175, 400), (260, 300), (350, None), (399, None), (500, None)]
)
def test_ranges_are_exact_slices(video, decoder, start, stop):
    decode = DECODERS[decoder]
    full = np.stack(list(decode(video)))
    part = list(decode(video, start, stop))
    expected = full[start:stop]
    assert len(part) == len(expected)
    if part:
        assert np.array_equal(np.stack(part), expected)


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_not_a_video(tmp_path, decoder):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"hello" * 1000)
    with pytest.raises(VideoRejected) as caught:
        list(DECODERS[decoder](path))
    assert caught.value.code == "not_a_video"


def test_pyav_frames_are_closest_to_the_reference_decode(reference_video, reference_frames):
    """The reference decodes with `ffmpeg -s 48x27` (swscale, bicubic): PyAV from YUV lands within a grey level."""
    errors = {}
    for name, decode in DECODERS.items():
        frames = np.stack(list(decode(reference_video)))
        assert frames.shape == reference_frames.shape
        errors[name] = float(np.abs(frames.astype(np.int16) - reference_frames).mean())
    assert errors["pyav-deblocked"] < 0.5 and errors["pyav"] < 1.5 < 2.0 < errors["opencv"], errors
