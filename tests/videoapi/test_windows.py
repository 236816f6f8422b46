"""Streaming windows: exactly the reference's padding and overlap, for any length."""

import numpy as np
import pytest
import torch

from videoapi.pipeline.windows import iter_windows, window_count


def reference_windows(n: int) -> list[np.ndarray]:
    """The reference package's own input_iterator, on frames that carry their index."""

    frames = torch.arange(n, dtype=torch.int64).view(n, 1, 1, 1)
    step, window = 50, 100
    end_pad = 25 + step - (n % step if n % step != 0 else step)
    padded = torch.cat([frames[:1]] * 25 + [frames] + [frames[-1:]] * end_pad, 0)
    out, ptr = [], 0
    while ptr + window <= len(padded):
        out.append(padded[ptr : ptr + window, 0, 0, 0].numpy())
        ptr += step
    return out


@pytest.mark.parametrize("n", [1, 2, 25, 49, 50, 51, 75, 99, 100, 101, 149, 150, 151, 1234])
def test_same_windows_as_the_reference(n):
    mine = list(iter_windows(np.array(i) for i in range(n)))
    expected = reference_windows(n)
    assert len(mine) == len(expected) == window_count(n)
    for win, ref in zip(mine, expected):
        assert np.array_equal(win.frames, ref)
    # each frame's prediction is kept exactly once, in order
    kept = [f for w in mine for f in range(w.first, w.first + w.count)]
    assert kept == list(range(n))
    assert all(np.array_equal(w.frames[25 : 25 + w.count], np.arange(w.first, w.first + w.count)) for w in mine)


@pytest.mark.parametrize("window", [150, 200, 500])
def test_longer_windows_keep_25_frame_margins(window):
    n = 1000
    wins = list(iter_windows((np.array(i) for i in range(n)), window=window))
    assert len(wins) == window_count(n, window)
    assert [f for w in wins for f in range(w.first, w.first + w.count)] == list(range(n))
    for w in wins:
        assert len(w.frames) == window
        assert np.array_equal(w.frames[25 : 25 + w.count], np.arange(w.first, w.first + w.count))


def test_no_frames_no_windows():
    assert list(iter_windows(iter(()))) == []


def test_window_must_exceed_margins():
    with pytest.raises(ValueError, match="exceed twice the margin"):
        list(iter_windows(iter([np.zeros(1)]), window=50))


def test_streaming_holds_one_window():
    """The source is consumed lazily: a window is out before the frames after it are read."""
    read = []

    def source():
        for i in range(10_000):
            read.append(i)
            yield np.array(i)

    first = next(iter_windows(source()))
    assert first.first == 0 and len(read) == 75
