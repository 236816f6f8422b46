"""The OpenVINO runtime compiles the input shapes that recur as static ones: faster kernels, the same outputs."""

from __future__ import annotations

import numpy as np

from videoapi.model.runtime import _StaticShapes, load_model

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


def _brightness_model(ov):
    """A network with TransNetV2's input and outputs that computes something else: the mean brightness."""
    import openvino.opset13 as ops

    frames = ops.parameter([-1, -1, 27, 48, 3], ov.Type.u8, name="frames")
    mean = ops.unsqueeze(ops.reduce_mean(ops.convert(frames, ov.Type.f32), [2, 3, 4], False), [2])
    outputs = [mean, ops.negative(mean)]
    for output, name in zip(outputs, ("single_frame", "many_hot"), strict=True):
        output.output(0).get_tensor().set_names({name})
    return ov.Model(outputs, [frames])


def test_a_static_model_that_disagrees_with_the_dynamic_one_is_not_used(model_repository):
    """As OpenVINO's static INT8 kernels on AMX did: the check on the compiling call keeps the dynamic model."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    source = str(model_repository / ONNX)
    feed = {"frames": _windows(1, 100)}
    agreeing = _StaticShapes(core, ov, source, config, core.compile_model(source, "CPU", config))
    disagreeing = _StaticShapes(core, ov, source, config, core.compile_model(_brightness_model(ov), "CPU", config))
    for shapes in (agreeing, disagreeing):
        for _ in range(3):
            shapes.get(feed)
    assert agreeing.shapes() == [(1, 100, 27, 48, 3)]
    assert disagreeing.shapes() == [] and disagreeing.get(feed) is None  # checked once, then dynamic for good
