"""Load a TransNetV2 ONNX file on a CPU (or CUDA) runtime: the one choice of runtime and precision.

Shared by Triton's Python model (model_repository/<name>/1/model.py, which runs without the
videoapi package: `videoapi model build` copies this file beside it as RUNTIME_MODULE) and the
in-process engine. Standard library and numpy only, so it imports anywhere.

`auto` takes OpenVINO on a CPU when it is installed (1.7x ONNX Runtime's speed on this network in
f32, 3.4x in bf16; bench/speed.py) and ONNX Runtime otherwise, with CUDA on a GPU. OpenVINO's
precision `auto` is bf16 where the CPU computes it natively, else f32.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

RUNTIME_MODULE = "transnetv2_runtime.py"  # the name of this file's copy beside model.py
RUNTIMES = ("auto", "openvino", "onnxruntime")
PRECISIONS = ("auto", "f32", "bf16")


@dataclass(frozen=True)
class LoadedModel:
    """A compiled model: run(output_names, feed) -> arrays; which inputs take float32; where it runs."""

    run: Callable[[list[str], dict[str, Any]], list[Any]]
    float_inputs: set[str]
    input_names: list[str]
    output_names: list[str]
    where: str


def resolve_runtime(runtime: str, *, on_gpu: bool = False) -> str:
    """`auto` made concrete: OpenVINO on a CPU when installed, else ONNX Runtime."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: expected auto, openvino or onnxruntime")
    if runtime == "auto":
        return "openvino" if not on_gpu and importlib.util.find_spec("openvino") else "onnxruntime"
    return runtime


def _onnxruntime(path: str, threads: int, gpu_device: int | None) -> LoadedModel:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    providers: list[Any] = ["CPUExecutionProvider"]
    if gpu_device is not None and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": gpu_device}))
    session = ort.InferenceSession(path, sess_options=options, providers=providers)
    float_inputs = {i.name for i in session.get_inputs() if i.type == "tensor(float)"}
    where = "CUDA" if providers[0] != "CPUExecutionProvider" else "CPU"
    return LoadedModel(
        run=lambda names, feed: session.run(names, feed),  # thread-safe
        float_inputs=float_inputs,
        input_names=[i.name for i in session.get_inputs()],
        output_names=[o.name for o in session.get_outputs()],
        where=where,
    )


def _import_openvino() -> Any:
    """`import openvino`, without its model-conversion tools: importing those forks a process that sends
    usage telemetry, and only compile_model (ONNX read natively) is needed here."""
    import sys

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = "openvino.tools.ovc" not in sys.modules
    if blocked:
        # None in sys.modules makes the import raise ImportError (typeshed types the values as modules only)
        modules = cast("dict[str, ModuleType | None]", sys.modules)
        modules["openvino.tools.ovc"] = None  # openvino/__init__.py skips it on ImportError
    try:
        import openvino
    finally:
        if blocked and sys.modules.get("openvino.tools.ovc", 0) is None:
            del sys.modules["openvino.tools.ovc"]  # an explicit import later still works
    return openvino


def _openvino(path: str, precision: str, threads: int, cache_dir: str | None, streams: int = 1) -> LoadedModel:
    import threading

    ov = _import_openvino()

    core = ov.Core()
    if precision == "auto":
        precision = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
    if precision not in ("f32", "bf16"):
        raise ValueError(f"cpu_precision {precision!r}: expected f32, bf16 or auto")
    config: dict[str, str | int] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    if streams > 1:  # several calls at once (a batch of files): each its own stream on its share of the cores
        config |= {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    if cache_dir:  # compiled blobs: a later start skips most of the compile
        config["CACHE_DIR"] = cache_dir
    compiled = core.compile_model(path, "CPU", config)
    float_inputs = {i.get_any_name() for i in compiled.inputs if i.get_element_type() == ov.Type.f32}
    # an infer request serves one call at a time: one per calling thread
    local = threading.local()

    def run(names: list[str], feed: dict[str, Any]) -> list[Any]:
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        results = request.infer(feed)
        return [results[compiled.output(name)].copy() for name in names]

    return LoadedModel(
        run=run,
        float_inputs=float_inputs,
        input_names=[i.get_any_name() for i in compiled.inputs],
        output_names=[o.get_any_name() for o in compiled.outputs],
        where=f"CPU {precision}",
    )


def load_model(
    path: str,
    *,
    runtime: str = "auto",
    precision: str = "auto",
    threads: int = 0,
    gpu_device: int | None = None,
    cache_dir: str | None = None,
    streams: int = 1,
) -> tuple[str, LoadedModel]:
    """(the runtime chosen, the loaded model) for the ONNX file at `path`; gpu_device None: a CPU.

    `streams` > 1 (OpenVINO): that many calls from as many threads run at once, for throughput over latency.
    """
    chosen = resolve_runtime(runtime, on_gpu=gpu_device is not None)
    if chosen == "openvino":
        return chosen, _openvino(path, precision, threads, cache_dir, streams)
    return chosen, _onnxruntime(path, threads, gpu_device)
