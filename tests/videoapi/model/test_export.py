"""ONNX export: batch-agnostic, and the same numbers as the reference PyTorch module."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from videoapi.model.export import export_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return export_onnx(tmp_path_factory.mktemp("export") / "model.onnx")


def real_windows(frames: np.ndarray, count: int, time: int = 100) -> np.ndarray:
    starts = np.linspace(0, len(frames) - time, count).astype(int)
    return np.stack([frames[s : s + time] for s in starts])


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_onnx_matches_reference_module_at_any_batch(exported, reference_model, reference_frames, batch):
    windows = real_windows(reference_frames, batch)
    with torch.no_grad():
        single, many = reference_model.predict_raw(torch.from_numpy(windows))
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    onnx_single, onnx_many = session.run(["single_frame", "many_hot"], {"frames": windows})
    assert onnx_single.shape == (batch, 100, 1) and onnx_many.shape == (batch, 100, 1)
    assert np.abs(onnx_single - single.numpy()).max() < 1e-4
    assert np.abs(onnx_many - many.numpy()).max() < 1e-4
    # the windows are real footage with cuts: the comparison is not between two flat lines
    assert onnx_single.max() > 0.5


def test_export_signature_is_uint8_frames_to_two_probabilities(exported):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape[2:]) == ("frames", "tensor(uint8)", [27, 48, 3])
    assert [o.name for o in session.get_outputs()] == ["single_frame", "many_hot"]


def test_plain_reference_export_is_batch_bound(reference_model, tmp_path):
    """Why the rewrite exists: the unmodified module, traced at batch 2, fails at batch 3."""
    from videoapi.model.export import _Exportable

    path = tmp_path / "plain.onnx"
    with torch.no_grad():
        torch.onnx.export(
            _Exportable.wrap(reference_model),
            (torch.zeros(2, 100, 27, 48, 3, dtype=torch.uint8),),
            str(path),
            input_names=["frames"],
            output_names=["single_frame", "many_hot"],
            dynamic_axes={"frames": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime raises its own untyped errors
        session.run(None, {"frames": np.zeros((3, 100, 27, 48, 3), np.uint8)})
