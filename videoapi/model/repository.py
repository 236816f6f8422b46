"""Build model_repository/: the ONNX file plus Triton configurations derived from it.

The configuration is read off the ONNX file itself (names, element types,
dimensions), so a TransNetV2 exported by other tools (e.g. tf2onnx from the
original TensorFlow model, with other tensor names) is served the same way.
What the client needs to know beyond the tensors (which output is which, and
whether they are logits or probabilities) travels as config parameters.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.errors import ModelFileError, ModelNotBuilt
from videoapi.model import runtime
from videoapi.model.runtime import BUILD_INT8, PRECISIONS, RUNTIME_MODULE, RUNTIMES, int8_model_path
from videoapi.settings import Settings

MODEL_FILE = "model.onnx"
GPU_CONFIG_NAME = "gpu"  # tritonserver --model-config-name=gpu selects configs/gpu.pbtxt
FRAME_SHAPE = (27, 48, 3)

_ONNX_TO_TRITON = {"tensor(uint8)": "TYPE_UINT8", "tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    triton_type: str
    dims: tuple[int, ...]  # without the batch axis; -1 where the file leaves it open


@dataclass(frozen=True)
class ModelSignature:
    """What a TransNetV2 ONNX file takes and gives, as Triton will serve it."""

    input: TensorSpec
    single_frame: TensorSpec
    many_hot: TensorSpec | None
    outputs_are_logits: bool


def _dims(shape: Sequence[Any]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else -1 for d in shape[1:])


def _session(path: Path) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise ModelFileError(f"ONNX file not found: {path}")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFileError(f"{path} is not a loadable ONNX model: {str(exc).splitlines()[0]}") from exc


def _probe_windows(time: int) -> NDArray[Any]:
    """Two windows: a still grey shot, and a hard cut half way. Probabilities stay in [0, 1]."""
    still = np.full((time, *FRAME_SHAPE), 128, np.uint8)
    cut = still.copy()
    cut[time // 2 :] = np.random.default_rng(0).integers(0, 256, (time - time // 2, *FRAME_SHAPE), dtype=np.uint8)
    return np.stack([still, cut])


def inspect_onnx(path: Path, *, single_frame_output: str | None = None) -> ModelSignature:
    """Read a TransNetV2 ONNX file's signature and tell logits from probabilities by running it once."""
    session = _session(path)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelFileError(f"{path}: expected one input [batch, time, 27, 48, 3], found {len(inputs)}")
    (inp,) = inputs
    if len(inp.shape) != 5 or any(isinstance(d, int) and d != want for d, want in zip(inp.shape[2:], FRAME_SHAPE)):
        raise ModelFileError(f"{path}: input {inp.name!r} has shape {inp.shape}, expected [batch, time, 27, 48, 3]")
    if inp.type not in _ONNX_TO_TRITON:
        raise ModelFileError(f"{path}: input {inp.name!r} has type {inp.type}, expected uint8 or float")
    if not 1 <= len(outputs) <= 2 or any(len(o.shape) not in (2, 3) for o in outputs):
        shapes = [(o.name, o.shape) for o in outputs]
        raise ModelFileError(f"{path}: expected outputs [batch, time, 1] (single_frame, many_hot), found {shapes}")

    by_name = {o.name: o for o in outputs}
    if single_frame_output is None:
        named = [o for o in outputs if "single" in o.name.lower()]
        single_frame_output = (named or outputs)[0].name
    if single_frame_output not in by_name:
        raise ModelFileError(f"{path}: no output named {single_frame_output!r}; outputs are {sorted(by_name)}")
    others = [o for o in outputs if o.name != single_frame_output]

    time = inp.shape[1] if isinstance(inp.shape[1], int) and inp.shape[1] > 0 else 100
    probe = _probe_windows(time)
    try:
        values = session.run(None, {inp.name: probe if inp.type == "tensor(uint8)" else probe.astype(np.float32)})
    except Exception as exc:
        raise ModelFileError(f"{path}: a test window of shape {probe.shape} fails: {str(exc).splitlines()[0]}") from exc
    logits = any(float(np.min(v)) < 0.0 or float(np.max(v)) > 1.0 for v in values)

    def spec(o: Any) -> TensorSpec:
        return TensorSpec(o.name, _ONNX_TO_TRITON.get(o.type, "TYPE_FP32"), _dims(o.shape))

    return ModelSignature(
        input=spec(inp),
        single_frame=spec(by_name[single_frame_output]),
        many_hot=spec(others[0]) if others else None,
        outputs_are_logits=logits,
    )


CPU_RUNTIMES, CPU_PRECISIONS = RUNTIMES, PRECISIONS


def install_runtime(version_dir: Path) -> Path:
    """Copy videoapi.model.runtime beside model.py, which imports it (Triton may lack the package)."""
    target = version_dir / RUNTIME_MODULE
    shutil.copyfile(runtime.__file__, target)
    return target


def _set_cpu_options(config: Any, cpu_runtime: str, cpu_precision: str) -> None:
    """The parameters model.py reads to pick its CPU runtime and precision, checked."""
    if cpu_runtime not in CPU_RUNTIMES or cpu_precision not in CPU_PRECISIONS:
        raise ValueError(f"cpu_runtime must be one of {CPU_RUNTIMES}, cpu_precision one of {CPU_PRECISIONS}")
    config.parameters["runtime"].string_value = cpu_runtime
    config.parameters["cpu_precision"].string_value = cpu_precision


def triton_config(
    signature: ModelSignature,
    *,
    name: str,
    max_batch_size: int,
    gpu: bool,
    queue_delay_us: int = 2000,
    cpu_runtime: str = "auto",
    cpu_precision: str = "auto",
) -> str:
    """config.pbtxt text: the Python backend (portable default) or, with gpu, Triton's ONNX Runtime backend.

    On CPU, model.py runs OpenVINO (or ONNX Runtime: `cpu_runtime`) at `cpu_precision`, warmed up for the workers.
    """
    # no protobuf stubs (types-protobuf) in this environment
    from google.protobuf import text_format  # type: ignore[import-untyped]
    from tritonclient.grpc import model_config_pb2 as mc

    config = mc.ModelConfig(name=name, max_batch_size=max_batch_size)
    inp = config.input.add(name=signature.input.name, dims=list(signature.input.dims))
    inp.data_type = mc.DataType.Value(signature.input.triton_type)
    for out_spec in (signature.single_frame, signature.many_hot):
        if out_spec is not None:
            out = config.output.add(name=out_spec.name, dims=list(out_spec.dims))
            out.data_type = mc.DataType.Value(out_spec.triton_type)
    config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    group = config.instance_group.add(count=1)
    group.kind = mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU
    if gpu:
        config.backend = "onnxruntime"
        config.default_model_filename = MODEL_FILE
        # TensorRT through ONNX Runtime's execution provider, fp16; drop this block for plain CUDA.
        trt = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        trt.parameters["precision_mode"] = "FP16"
        trt.parameters["max_workspace_size_bytes"] = str(1 << 30)
        trt.parameters["trt_engine_cache_enable"] = "1"
        trt.parameters["trt_engine_cache_path"] = "/tmp/trt_cache"
    else:
        config.backend = "python"
        config.parameters["onnx_file"].string_value = MODEL_FILE
        _set_cpu_options(config, cpu_runtime, cpu_precision)
        workers = Settings()  # their request (windows x frames) as the environment sets it, run once at load
        config.parameters["warm_shape"].string_value = f"{workers.batch_windows}x{workers.window}"
    config.parameters["single_frame_output"].string_value = signature.single_frame.name
    config.parameters["many_hot_output"].string_value = signature.many_hot.name if signature.many_hot else ""
    config.parameters["outputs"].string_value = "logits" if signature.outputs_are_logits else "probabilities"
    text: str = text_format.MessageToString(config)
    return text


def int8_files(onnx_path: Path) -> tuple[Path, Path, Path, Path]:
    """The INT8 OpenVINO models of an ONNX file, beside it: the .xml and .bin of the build for VNNI and AMX
    kernels, then those of the build for AVX2's."""
    xml = Path(int8_model_path(str(onnx_path)))
    avx2 = xml.with_name(Path(onnx_path).stem + runtime.INT8_AVX2_SUFFIX)
    return xml, xml.with_suffix(".bin"), avx2, avx2.with_suffix(".bin")


def _int8_wanted(int8: bool | None, cpu_precision: str) -> bool:
    """Whether the build writes the INT8 model: asked for, or unasked when nncf is installed; checked up front."""
    from videoapi.model.quantize import nncf_installed

    if cpu_precision == "int8" and int8 is False:
        raise ModelNotBuilt("cpu_precision int8 runs the INT8 model: build it (leave out --no-int8)")
    wanted = int8 if int8 is not None else cpu_precision == "int8" or nncf_installed()
    if wanted and not nncf_installed():
        raise ModelNotBuilt(f"the INT8 model needs nncf: pip install 'videoapi[int8]', then run `{BUILD_INT8}`")
    return wanted


def _write_int8(onnx_path: Path, wanted: bool, windows: int) -> None:
    """Quantize beside onnx_path, or remove an INT8 model left there: `auto` would run the old network in INT8."""
    xml, _, avx2_xml, _ = files = int8_files(onnx_path)
    for file in files:  # each .xml before its .bin: an .xml present always has its .bin
        file.unlink(missing_ok=True)
    if wanted:
        from videoapi.model.quantize import quantize_int8

        try:
            quantize_int8(onnx_path, avx2_xml, windows=windows, for_avx2=True)
        except ModelFileError as exc:  # another exporter's names: the main build serves AVX2's kernels too
            logging.getLogger(__name__).warning("no INT8 build for AVX2's kernels: %s", exc)
        quantize_int8(onnx_path, xml, windows=windows)  # last: the main .xml present means both are built


def build_model_repository(
    repository: Path,
    *,
    name: str = "transnetv2",
    onnx_file: Path | None = None,
    single_frame_output: str | None = None,
    max_batch_size: int = 8,
    gpu_max_batch_size: int = 256,
    cpu_runtime: str = "auto",
    cpu_precision: str = "auto",
    int8: bool | None = None,
    int8_windows: int | None = None,
) -> ModelSignature:
    """Export (or copy a user's) ONNX into repository/name/1/ and write both configurations.

    `int8`: also write the INT8 OpenVINO model beside the ONNX file (`videoapi.model.quantize`), which
    `cpu_precision` int8 runs and `auto` picks on a CPU without bf16. None: with cpu_precision int8, or
    whenever nncf is installed (the `int8` extra). `int8_windows`: generated calibration windows.
    """
    from videoapi.model.quantize import CALIBRATION_WINDOWS

    with_int8 = _int8_wanted(int8, cpu_precision)
    model_dir = repository / name
    target = model_dir / "1" / MODEL_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(MODEL_FILE + ".new")
    if onnx_file is None:
        from videoapi.model.export import export_onnx

        try:
            signature = inspect_onnx(export_onnx(staging), single_frame_output=single_frame_output)
        except Exception:
            staging.unlink(missing_ok=True)
            raise
    else:
        # Check the user's file where it is, so errors name it, before it replaces anything.
        signature = inspect_onnx(Path(onnx_file), single_frame_output=single_frame_output)
        shutil.copyfile(onnx_file, staging)
    staging.replace(target)
    _write_int8(target, with_int8, int8_windows or CALIBRATION_WINDOWS)
    install_runtime(model_dir / "1")
    (model_dir / "config.pbtxt").write_text(
        triton_config(
            signature,
            name=name,
            max_batch_size=max_batch_size,
            gpu=False,
            cpu_runtime=cpu_runtime,
            cpu_precision=cpu_precision,
        )
    )
    (model_dir / "configs").mkdir(exist_ok=True)
    gpu_text = triton_config(signature, name=name, max_batch_size=gpu_max_batch_size, gpu=True)
    (model_dir / "configs" / f"{GPU_CONFIG_NAME}.pbtxt").write_text(gpu_text)
    return signature


def cpu_variant(
    repository: Path, target: Path, *, name: str = "transnetv2", cpu_runtime: str, cpu_precision: str
) -> Path:
    """target/ as a repository serving repository/name with another CPU runtime or precision.

    The version folder's files are linked, not copied; only config.pbtxt differs. For side-by-side
    benchmarks and tests, so one build serves every variant.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    source = repository / name
    config = text_format.Parse((source / "config.pbtxt").read_text(), mc.ModelConfig())
    onnx_path = source / "1" / (config.parameters["onnx_file"].string_value or MODEL_FILE)
    if cpu_precision == "int8" and not int8_files(onnx_path)[0].is_file():
        raise ModelNotBuilt(f"no INT8 model beside {onnx_path}: run `{BUILD_INT8}`")
    _set_cpu_options(config, cpu_runtime, cpu_precision)
    version = target / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    for file in (source / "1").iterdir():
        if file.is_file():
            (version / file.name).unlink(missing_ok=True)
            (version / file.name).symlink_to(file.resolve())
    (target / name / "config.pbtxt").write_text(text_format.MessageToString(config))
    return target
