"""The detection core: segment plans, and the pipeline's streaming and overlap."""

import threading
import tracemalloc

import numpy as np
import pytest

from videoapi.pipeline.detection import Segment, plan_segments
from videoapi.pipeline.inference import predict_frames


def test_short_videos_are_one_segment():
    assert plan_segments(27_000, 27_000) == [Segment(0, None)]


def test_segments_sit_on_the_window_grid_and_the_last_runs_to_the_end():
    plan = plan_segments(100_000, 27_020)
    assert plan[0] == Segment(0, 27_000)
    assert all(s.start % 50 == 0 for s in plan)
    assert [s.start for s in plan[1:]] == [s.stop for s in plan[:-1]]
    assert plan[-1] == Segment(81_000, None)
    assert plan_segments(1000, 30) == [Segment(s, s + 50) for s in range(0, 950, 50)] + [Segment(950, None)]


class EchoModel:
    """A stand-in for the frame model, to look at the pipeline's own buffering: returns each window's frame means."""

    def predict(self, windows):
        means = windows.reshape(*windows.shape[:2], -1).mean(axis=2).astype(np.float32) / 255
        return means, means


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield rng.integers(0, 256, (27, 48, 3), dtype=np.uint8)


def test_every_frame_gets_its_own_prediction_in_order():
    source = list(frames(777))
    result = predict_frames(iter(source), EchoModel(), batch_windows=3)
    expected = np.array([f.mean() / 255 for f in source], np.float32)
    assert result.frame_count == 777 and np.allclose(result.single_frame, expected, atol=1e-6)


def peak_bytes(n):
    tracemalloc.start()
    predict_frames(frames(n), EchoModel(), batch_windows=4)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_length():
    short, long = peak_bytes(2_000), peak_bytes(20_000)
    frame = 27 * 48 * 3
    # 18,000 more frames would be ~70 MB if held; only the per-frame float outputs may grow
    assert long - short < 18_000 * 4 * 2 * 3 + 50 * frame * 100


def test_decoding_goes_on_while_the_model_works():
    """The model's first call waits until the source has produced frames for a later batch: without
    overlap this could never happen, and the call would time out."""
    produced = 0
    enough = threading.Event()

    def source():
        nonlocal produced
        for frame in frames(2_000):
            produced += 1
            if produced >= 300:  # frames for batches 2 and 3, decoded during call 1
                enough.set()
            yield frame

    class WaitingModel(EchoModel):
        calls = 0

        def predict(self, windows):
            WaitingModel.calls += 1
            if WaitingModel.calls == 1 and not enough.wait(timeout=10):
                raise AssertionError("decoding stalled while the model was busy")
            return super().predict(windows)

    result = predict_frames(source(), WaitingModel(), batch_windows=2, in_flight=3)
    assert result.frame_count == 2_000


def test_model_errors_surface():
    class Broken(EchoModel):
        def predict(self, windows):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        predict_frames(frames(500), Broken())
