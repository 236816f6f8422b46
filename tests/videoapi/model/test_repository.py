"""model_repository/: configurations derived from the ONNX file; other files (names, logits, float input) work."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2 as mc

from local.triton_server import TritonServer
from videoapi.adapters.triton import ShotModelClient
from videoapi.errors import ModelFileError
from videoapi.model.repository import build_model_repository, cpu_variant, inspect_onnx, triton_config

ONNX = "transnetv2/1/model.onnx"


def tf_style_variant(source: Path, target: Path) -> Path:
    """What a TensorFlow export looks like: other names, float input, logits instead of probabilities."""
    model = onnx.load(str(source))
    graph = model.graph
    rename = {"frames": "input_1", "single_frame": "output_1", "many_hot": "output_2"}
    # logits: drop the final Sigmoid nodes, the outputs become their inputs
    for out in graph.output:
        producer = next(n for n in graph.node if out.name in n.output)
        assert producer.op_type == "Sigmoid"
        graph.node.remove(producer)
        for node in graph.node:
            for k, name in enumerate(node.output):
                if name == producer.input[0]:
                    node.output[k] = out.name
    # float input: Cast(float -> uint8) in front of the original uint8 input
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == "frames":
                node.input[k] = "frames_uint8"
    graph.node.insert(0, helper.make_node("Cast", ["frames"], ["frames_uint8"], to=TensorProto.UINT8))
    graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    for value in [*graph.input, *graph.output]:
        value.name = rename[value.name]
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


@pytest.fixture(scope="module")
def tf_style_repository(model_repository, tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("tf_repo")
    variant = tf_style_variant(model_repository / ONNX, repo / "exported.onnx")
    # f32 both sides: where `auto` serves INT8, each file's own INT8 build, quantized apart, differs by 0.004
    build_model_repository(repo, onnx_file=variant, single_frame_output="output_1", cpu_precision="f32", int8=False)
    model_py = model_repository / "transnetv2" / "1" / "model.py"
    (repo / "transnetv2" / "1" / "model.py").write_text(model_py.read_text())
    return repo


def test_signature_of_the_built_model(model_repository):
    sig = inspect_onnx(model_repository / ONNX)
    assert (sig.input.name, sig.input.triton_type, sig.input.dims) == ("frames", "TYPE_UINT8", (-1, 27, 48, 3))
    assert (sig.single_frame.name, sig.many_hot.name) == ("single_frame", "many_hot")
    assert not sig.outputs_are_logits


def test_committed_configs_are_what_the_build_derives(model_repository):
    sig = inspect_onnx(model_repository / ONNX)
    model_dir = model_repository / "transnetv2"
    assert (model_dir / "config.pbtxt").read_text() == triton_config(
        sig, name="transnetv2", max_batch_size=8, gpu=False
    )
    assert (model_dir / "configs" / "gpu.pbtxt").read_text() == triton_config(
        sig, name="transnetv2", max_batch_size=256, gpu=True
    )


def test_production_gpu_config_is_valid_for_the_onnxruntime_backend(model_repository):
    config = text_format.Parse((model_repository / "transnetv2/configs/gpu.pbtxt").read_text(), mc.ModelConfig())
    cpu = text_format.Parse((model_repository / "transnetv2/config.pbtxt").read_text(), mc.ModelConfig())
    assert config.backend == "onnxruntime" and config.default_model_filename == "model.onnx"
    assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert config.max_batch_size >= cpu.max_batch_size and config.HasField("dynamic_batching")
    # same tensors as the served CPU model, so clients need not know which one runs
    assert list(config.input) == list(cpu.input) and list(config.output) == list(cpu.output)
    (trt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"


def test_tf_style_file_gets_its_own_names_types_and_logits_flag(tf_style_repository):
    sig = inspect_onnx(tf_style_repository / ONNX, single_frame_output="output_1")
    assert (sig.input.name, sig.input.triton_type) == ("input_1", "TYPE_FP32")
    assert (sig.single_frame.name, sig.many_hot.name) == ("output_1", "output_2")
    assert sig.outputs_are_logits
    text = (tf_style_repository / "transnetv2" / "config.pbtxt").read_text()
    assert 'name: "input_1"' in text and 'string_value: "logits"' in text


def test_tf_style_file_served_by_triton_gives_the_same_probabilities(
    tf_style_repository, model_repository, tmp_path, reference_frames
):
    windows = np.stack([reference_frames[s : s + 100] for s in (0, 700, 2100)])
    canonical = cpu_variant(model_repository, tmp_path, cpu_runtime="openvino", cpu_precision="f32")
    with TritonServer(canonical) as server, ShotModelClient(server.grpc_url) as client:
        expected_single, expected_many = client.predict(windows)
    with TritonServer(tf_style_repository) as server, ShotModelClient(server.http_url, protocol="http") as client:
        served = client.served_model()
        assert (served.input_name, served.input_datatype, served.outputs_are_logits) == ("input_1", "FP32", True)
        single, many = client.predict(windows)
    assert np.abs(single - expected_single).max() < 1e-5
    assert np.abs(many - expected_many).max() < 1e-5


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(ModelFileError, match="not found.*nope.onnx"):
        build_model_repository(tmp_path, onnx_file=tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage" * 100)
    with pytest.raises(ModelFileError, match="corrupt.onnx is not a loadable ONNX model"):
        build_model_repository(tmp_path, onnx_file=corrupt)
    assert not (tmp_path / "transnetv2" / "1" / "model.onnx").exists()


def test_a_model_of_the_wrong_shape_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 10])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])), path)
    with pytest.raises(ModelFileError, match=r"shape \['b', 10\], expected \[batch, time, 27, 48, 3\]"):
        inspect_onnx(path)


def test_an_unknown_single_frame_output_is_named(model_repository):
    with pytest.raises(ModelFileError, match="no output named 'nope'; outputs are"):
        inspect_onnx(model_repository / ONNX, single_frame_output="nope")


@pytest.mark.parametrize(
    "runtime,precision,tolerance",
    [("onnxruntime", "f32", 1e-5), ("openvino", "f32", 1e-4), ("openvino", "bf16", 0.01)],
)
def test_each_cpu_runtime_serves_the_reference_probabilities(
    model_repository, reference_model, reference_frames, tmp_path, runtime, precision, tolerance
):
    import torch

    windows = np.stack([reference_frames[s : s + 100] for s in (0, 700, 2100, 3500)])
    with torch.no_grad():
        expected, _ = reference_model.predict_raw(torch.from_numpy(windows))
    expected = expected.numpy()[..., 0]
    repo = cpu_variant(model_repository, tmp_path, cpu_runtime=runtime, cpu_precision=precision)
    with TritonServer(repo) as server, ShotModelClient(server.grpc_url) as client:
        single, _ = client.predict(windows)
    assert f"transnetv2: {runtime} on CPU" in server.log_tail(200)
    drift = np.abs(single - expected).max()
    print(f"{runtime} {precision}: max drift from the reference module {drift:.2e}")
    assert drift < tolerance
    # the decisions agree: the same frames cross the 0.5 threshold, bar those within the drift of it
    near = np.abs(expected - 0.5) < tolerance
    assert ((single > 0.5) == (expected > 0.5))[~near].all()


def _f32_variant_with(model_repository: Path, tmp_path: Path, old: str, new: str) -> Path:
    """An OpenVINO f32 copy of the repository whose config.pbtxt has `old` replaced by `new` (which must be there)."""
    repo = cpu_variant(model_repository, tmp_path, cpu_runtime="openvino", cpu_precision="f32")
    config = repo / "transnetv2" / "config.pbtxt"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new))
    return repo


@pytest.mark.parametrize(
    "old, new, reason",
    [
        ('string_value: "openvino"', 'string_value: "tensorflow"', "runtime 'tensorflow': expected auto, openvino"),
        ('string_value: "4x150"', 'string_value: "four"', "warm_shape 'four': expected windows x frames"),
    ],
)
def test_a_bad_parameter_fails_the_load_with_its_name(model_repository, tmp_path, old, new, reason):
    from local.triton_server import TritonStartError

    with pytest.raises(TritonStartError, match=reason):
        TritonServer(_f32_variant_with(model_repository, tmp_path, old, new)).start()


def test_triton_warms_the_workers_batch_up_at_load(model_repository, tmp_path):
    # the build writes the workers' default request, 4x150; a smaller one here
    repo = _f32_variant_with(model_repository, tmp_path, 'string_value: "4x150"', 'string_value: "2x120"')
    with TritonServer(repo) as server:
        assert "transnetv2: warmed up at 2x120 (static shapes: 2x120)" in server.log_tail(200)
