"""Streaming windows: exactly the reference's padding and overlap, for any length."""

import numpy as np
import pytest
import torch

from videoapi.pipeline.windows import iter_windows, tail_window, window_count


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
        assert len(w.frames) == (window if w is not wins[-1] else tail_window(w.count, window))
        assert np.array_equal(w.frames[25 : 25 + w.count], np.arange(w.first, w.first + w.count))


@pytest.mark.parametrize(
    ("n", "window", "last_frames"),
    [(1, 200, 100), (40, 200, 100), (50, 200, 100), (51, 200, 150), (100, 200, 150), (101, 200, 200),
     (150, 200, 200), (175, 200, 100), (40, 150, 100), (40, 100, 100), (40, 120, 100), (60, 120, 120), (90, 120, 100)],
)  # fmt: skip
def test_the_last_window_is_as_long_as_its_frames_and_margins_need(n, window, last_frames):
    """A short clip under a long window is computed over the reference's 100 frames, not the window's 200: the same
    frames the reference's last window holds (the kept ones, then copies of the last)."""
    wins = list(iter_windows((np.array(i) for i in range(n)), window=window))
    assert len(wins[-1].frames) == last_frames
    assert all(len(w.frames) == window for w in wins[:-1])
    last = wins[-1]
    assert np.array_equal(last.frames[25 : 25 + last.count], np.arange(last.first, last.first + last.count))
    before = np.arange(last.first - 25, last.first) if last.first else np.zeros(25)
    assert (last.frames[25 + last.count :] == n - 1).all() and np.array_equal(last.frames[:25], before)
    if n <= 50:  # one window: exactly the reference's
        assert np.array_equal(last.frames, reference_windows(n)[0])


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


def test_a_model_with_a_fixed_window_gets_the_short_last_window_padded_as_before():
    """Triton's client pads a short last window with its last frame up to a model's fixed time axis: the frames the
    full-length last window held."""
    from videoapi.adapters.triton import _pad_time

    frames = (np.full((27, 48, 3), i, np.uint8) for i in range(40))
    (short,) = iter_windows(frames, window=200)
    padded = _pad_time(short.frames[None], 200)[0]
    assert padded.shape == (200, 27, 48, 3)
    assert np.array_equal(padded[:100], short.frames) and (padded[100:] == 39).all()
    as_tensor = _pad_time(torch.from_numpy(short.frames[None]), 200)[0].numpy()
    assert np.array_equal(as_tensor, padded)


def test_batches_go_out_full_at_once_and_the_short_last_window_in_a_batch_of_its_own():
    """A full batch leaves before the next window is read (checkpoints and preemption count on it); the video's
    shorter last window is never stacked with full ones."""
    from videoapi.pipeline.inference import _batches

    read: list[int] = []

    def source():
        for i in range(1000):
            read.append(i)
            yield np.array(i)

    batches = _batches(iter_windows(source(), window=200), 2)
    first = next(batches)
    assert [w.first for w in first] == [0, 150] and len(read) == 325  # the 2nd window's last frame, no more
    rest = list(batches)
    assert [[len(w.frames) for w in b] for b in rest] == [[200, 200], [200, 200], [150]]  # 100 kept: 150 long
    assert sum(w.count for b in [first, *rest] for w in b) == 1000
    fours = _batches(iter_windows((np.array(i) for i in range(1000)), window=200), 4)
    assert [[len(w.frames) for w in b] for b in fours] == [[200] * 4, [200, 200], [150]]


@pytest.mark.parametrize("frames", [40, 100, 149, 900])
def test_every_tensor_batch_reaches_tritons_dlpack_copy_in_c_order(frames):
    """tritonclient's CUDA shared memory takes a DLPack tensor only with C-order strides on every axis, the size-1
    ones too: a video of one window (40 or 149 frames here) kept its unfold's first stride through `contiguous()`
    and was refused on an H100 (the GPU bench's e2e_dev run); `c_order` is what the client sends."""
    from tritonclient.utils import _dlpack

    from videoapi.adapters.triton import c_order
    from videoapi.pipeline.windows import iter_tensor_windows

    video = torch.arange(frames, dtype=torch.uint8)[:, None, None, None].expand(frames, 27, 48, 3)
    batches = [video[start : start + 64] for start in range(0, frames, 64)]
    for windows, _ in iter_tensor_windows(batches, window=200, size=4):
        sent = c_order(windows)
        dl_tensor = _dlpack.get_managed_tensor(_dlpack.get_dlpack_capsule(sent)).dl_tensor
        assert _dlpack.is_contiguous_data(dl_tensor.ndim, dl_tensor.shape, dl_tensor.strides), sent.stride()
        assert torch.equal(sent, windows)
