"""The OpenVINO runtime compiles the input shapes that recur as static ones: faster kernels, the same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from videoapi.model.runtime import _StaticShapes, load_model, static_shapes_safe, warm_up

ONNX = "transnetv2/1/model.onnx"


def _windows(batch: int, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, frames, 27, 48, 3), dtype=np.uint8)


def test_a_shape_that_recurs_is_compiled_fixed_and_gives_the_dynamic_models_outputs(model_repository):
    _, model = load_model(str(model_repository / ONNX), runtime="openvino", precision="f32")
    windows = _windows(2, 150)
    first = model.run(["single_frame", "many_hot"], {"frames": windows})  # the dynamic model
    assert model.fixed_shapes() == []  # once: a video's last batch, not worth a compile
    second = model.run(["single_frame", "many_hot"], {"frames": windows})
    assert model.fixed_shapes() == [(2, 150, 27, 48, 3)]
    third = model.run(["single_frame", "many_hot"], {"frames": _windows(2, 150, seed=1)})
    again = model.run(["single_frame", "many_hot"], {"frames": windows})  # the static model
    for dynamic, fixed in zip(first, again, strict=True):
        np.testing.assert_allclose(fixed, dynamic, atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.allclose(third[0], again[0])  # it computes, it does not replay


def test_at_most_max_shapes_are_compiled_and_the_rest_run_dynamic(model_repository):
    _, model = load_model(str(model_repository / ONNX), runtime="openvino", precision="f32")
    lengths = [60 + 10 * k for k in range(_StaticShapes.MAX_SHAPES + 2)]
    for frames in lengths:
        for _ in range(2):
            single = model.run(["single_frame"], {"frames": _windows(1, frames)})[0]
            assert single.shape[:2] == (1, frames)
    assert model.fixed_shapes() == [(1, frames, 27, 48, 3) for frames in lengths[: _StaticShapes.MAX_SHAPES]]


def test_warm_up_leaves_the_workers_batch_compiled_static_and_serving(model_repository):
    _, model = load_model(str(model_repository / ONNX), runtime="openvino", precision="f32")
    warm_up(model, 2, 120)
    assert model.fixed_shapes() == [(2, 120, 27, 48, 3)]  # a first job's first batch runs the static model
    windows = _windows(2, 120)
    single = model.run(["single_frame"], {"frames": windows})[0]
    fresh = load_model(str(model_repository / ONNX), runtime="openvino", precision="f32")[1]
    np.testing.assert_allclose(single, fresh.run(["single_frame"], {"frames": windows})[0], atol=1e-5)


@pytest.mark.parametrize(
    "precision, flags, cap, safe",
    [
        ("bf16", {"avx2", "amx_bf16", "amx_int8"}, "", True),
        ("f32", {"avx2", "amx_int8"}, "", True),
        ("int8", {"avx2", "avx512_vnni"}, "", True),
        ("int8", {"avx2"}, "", True),
        ("int8", {"avx2", "avx512_vnni", "amx_int8"}, "", False),  # OpenVINO's static INT8 kernels on AMX
        ("int8", {"avx2", "avx512_vnni", "amx_int8"}, "AVX512_CORE_VNNI", True),  # oneDNN capped below AMX
        ("int8", {"avx2", "avx512_vnni", "amx_int8"}, "AVX512_CORE_AMX", False),
    ],
)
def test_static_shapes_are_left_out_where_they_change_the_outputs(monkeypatch, precision, flags, cap, safe):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert static_shapes_safe(precision, flags) is safe


def test_int8_keeps_the_dynamic_model_where_static_is_unsafe(model_repository, monkeypatch):
    """On this CPU: where it has AMX the INT8 model never goes static; elsewhere its recurring shape does."""
    from videoapi.model.runtime import cpu_flags, int8_model_path

    path = str(model_repository / ONNX)
    if not Path(int8_model_path(path)).is_file():
        pytest.skip("no INT8 model built (the int8 extra)")
    _, model = load_model(path, runtime="openvino", precision="int8")
    for _ in range(3):
        model.run(["single_frame"], {"frames": _windows(1, 100)})
    warm_up(model, 2, 100)  # a server's warm-up keeps to the same rule
    safe = static_shapes_safe("int8", cpu_flags())
    assert model.fixed_shapes() == ([(1, 100, 27, 48, 3)] if safe else [])  # where static: one window a call


def test_a_one_window_a_call_model_warms_up_on_one_window_once(model_repository):
    """INT8 where static is safe runs batches window by window: a server's 4x200 warm-up is one window of 200, once,
    and leaves that shape static; a model that batches (f32) runs the whole batch twice, as before."""
    import dataclasses

    from videoapi.model.runtime import cpu_flags, int8_model_path

    def counted(model):
        shapes: list[tuple[int, ...]] = []

        def run(names, feed):
            shapes.append(next(iter(feed.values())).shape[:2])
            return model.run(names, feed)

        return dataclasses.replace(model, run=run), shapes

    path = str(model_repository / ONNX)
    if not Path(int8_model_path(path)).is_file():
        pytest.skip("no INT8 model built (the int8 extra)")
    _, int8 = load_model(path, runtime="openvino", precision="int8")
    safe = static_shapes_safe("int8", cpu_flags())
    assert int8.one_window_a_call is safe
    warmed, calls = counted(int8)
    warm_up(warmed, 4, 120)
    assert calls == ([(1, 120)] if safe else [(4, 120), (4, 120)])
    assert int8.fixed_shapes() == ([(1, 120, 27, 48, 3)] if safe else [])
    f32, calls = counted(load_model(path, runtime="openvino", precision="f32")[1])
    warm_up(f32, 2, 110)
    assert calls == [(2, 110), (2, 110)]


def test_int8_gives_a_window_the_same_probabilities_however_it_is_batched(model_repository):
    """A retry from a checkpoint or a segment batches windows otherwise: INT8's outputs must not move with it."""
    from videoapi.model.runtime import int8_model_path

    path = str(model_repository / ONNX)
    if not Path(int8_model_path(path)).is_file():
        pytest.skip("no INT8 model built (the int8 extra)")
    _, model = load_model(path, runtime="openvino", precision="int8")
    windows = _windows(4, 150, seed=3)
    first = model.run(["single_frame", "many_hot"], {"frames": windows[:3]})  # a shape's first call
    for batch in (1, 2, 4, 3):
        for start in range(0, 3, batch):
            got = model.run(["single_frame", "many_hot"], {"frames": windows[start : start + batch]})
            for name, whole, part in zip(("single_frame", "many_hot"), first, got, strict=True):
                n = min(batch, 3 - start)
                assert np.array_equal(whole[start : start + n], part[:n]), (name, batch, start)
