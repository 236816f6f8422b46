"""Load a TransNetV2 ONNX file on a CPU (or CUDA) runtime: the one choice of runtime and precision.

Shared by Triton's Python model (model_repository/<name>/1/model.py, which runs without the
videoapi package: `videoapi model build` copies this file beside it as RUNTIME_MODULE) and the
in-process engine. Standard library and numpy only, so it imports anywhere.

`auto` takes OpenVINO on a CPU when it is installed (1.7x ONNX Runtime's speed on this network in
f32, 3.4x in bf16; bench/speed.py) and ONNX Runtime otherwise, with CUDA on a GPU. OpenVINO's
precision `auto` is chosen per CPU from its instruction sets (`auto_precision`): bf16 on AMX, else INT8
where `videoapi model build` wrote the INT8 model beside the ONNX file (`int8_model_path`) and the CPU has
INT8 kernels (AVX2, VNNI), else bf16 where AVX-512 BF16 computes it, else f32. Where those kernels are AVX2's
(`int8_adds_in_pairs`), the INT8 build made for them runs, at windows of 200 (`preferred_window`).

Over 300 lines because Triton's model imports this file alone, copied beside it: the runtime, the CPU's
kernels and the compile that depends on both cannot be split into modules of the package.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import numpy as np

RUNTIME_MODULE = "transnetv2_runtime.py"  # the name of this file's copy beside model.py
RUNTIMES = ("auto", "openvino", "onnxruntime")
PRECISIONS = ("auto", "f32", "bf16", "int8")
INT8_SUFFIX = ".int8.xml"  # model.onnx -> model.int8.xml (+ model.int8.bin): OpenVINO's IR, quantized
INT8_AVX2_SUFFIX = ".int8-avx2.xml"  # the INT8 build for AVX2's kernels: its first block in f32 (quantize.py)
BUILD_INT8 = "videoapi model build --cpu-precision int8"  # the command that writes it

# Instruction sets, as Linux names them in /proc/cpuinfo: bf16 computed natively (AVX-512 BF16, AMX), and
# the integer dot products OpenVINO's INT8 kernels run on (AVX2's vpmaddubsw; VNNI and AMX do it in one step)
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
INT8_FLAGS = frozenset({"avx2", "avx_vnni", "avx512_vnni", "amx_int8"})
ONE_STEP_INT8_FLAGS = frozenset({"avx_vnni", "avx512_vnni", "amx_int8"})
# the window where the INT8 build for AVX2's kernels runs: 0.89x the inference of 150's, every F1 kept (docs: Accuracy)
AVX2_INT8_WINDOW = 200


@dataclass(frozen=True)
class LoadedModel:
    """A compiled model: run(output_names, feed) -> arrays; which inputs take float32; where it runs."""

    run: Callable[[list[str], dict[str, Any]], list[Any]]
    float_inputs: set[str]
    input_names: list[str]
    output_names: list[str]
    where: str
    fixed_shapes: Callable[[], list[tuple[int, ...]]] = list  # the input shapes compiled as static (OpenVINO)
    one_window_a_call: bool = False  # a batch runs window by window, each shape compiled static at first sight


def warm_up(loaded: LoadedModel, batch_windows: int, window: int) -> None:
    """Run a batch of this shape twice, so that a server's first job does not pay for it: OpenVINO makes its
    kernels for a shape on the first call and compiles it static on the second (_StaticShapes), ~0.8 CPU-s
    of a 2-core machine's first bf16 job at 4 windows of 150 (bench/speed.py measures a fresh stack's).

    A model that runs one window a call (INT8 with static shapes) compiles the window's shape at its first call
    and runs every batch as single windows: one window, once, does the same (a server's start at 4x200 on an
    AVX2 CPU: 1 window of inference instead of 8, ~1.1 CPU-s instead of ~9)."""
    batch, calls = (1, 1) if loaded.one_window_a_call else (batch_windows, 2)
    shape = (batch, window, 27, 48, 3)
    dtypes = {name: np.float32 if name in loaded.float_inputs else np.uint8 for name in loaded.input_names}
    feed = {name: np.zeros(shape, dtype) for name, dtype in dtypes.items()}
    for _ in range(calls):
        loaded.run(loaded.output_names, feed)


def resolve_runtime(runtime: str, *, on_gpu: bool = False) -> str:
    """`auto` made concrete: OpenVINO on a CPU when installed, else ONNX Runtime."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: expected auto, openvino or onnxruntime")
    if runtime == "auto":
        return "openvino" if not on_gpu and importlib.util.find_spec("openvino") else "onnxruntime"
    return runtime


def int8_model_path(path: str, flags: Collection[str] = ()) -> str:
    """Where the INT8 OpenVINO model of the ONNX file at `path` lies (its weights in the .bin of the same stem).

    With the real CPU's `flags`: the build for AVX2's kernels where they are the ones that run and it was built.
    """
    stem = os.path.splitext(path)[0]
    if int8_adds_in_pairs(flags) and os.path.isfile(stem + INT8_AVX2_SUFFIX):
        return stem + INT8_AVX2_SUFFIX
    return stem + INT8_SUFFIX


def preferred_window(path: str, *, runtime: str = "auto", precision: str = "auto") -> int | None:
    """The window to serve the ONNX file at `path` at on this CPU where it is not the usual one, else None."""
    if resolve_runtime(runtime) != "openvino" or precision not in ("auto", "int8"):
        return None
    flags = cpu_flags()
    if precision == "auto" and auto_precision_for(path, flags) != "int8":
        return None
    return AVX2_INT8_WINDOW if int8_model_path(path, flags).endswith(INT8_AVX2_SUFFIX) else None


def _onednn_cap_allows(*isa_words: str) -> bool:
    """Whether oneDNN's cap (ONEDNN_MAX_CPU_ISA; none: no cap) lets kernels of an ISA naming one of these run."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return not cap or cap == "ALL" or any(word in cap for word in isa_words)


def int8_adds_in_pairs(flags: Collection[str]) -> bool:
    """Whether oneDNN's INT8 kernels on a CPU with these flags are AVX2's: u8 x s8 products added in pairs into
    int16 (vpmaddubsw), which saturates; VNNI and AMX add them into int32 in one step."""
    one_step = bool(ONE_STEP_INT8_FLAGS & set(flags)) and _onednn_cap_allows("VNNI", "BF16", "FP16", "AMX")
    return "avx2" in flags and not one_step


def cpu_flags() -> frozenset[str]:
    """This CPU's instruction-set flags as Linux names them (/proc/cpuinfo); empty where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def auto_precision(flags: Collection[str], *, int8_model: bool) -> str:
    """`auto` made concrete for a CPU with these flags: bf16 on AMX; else INT8 where the INT8 model exists and the
    CPU has INT8 kernels; else bf16 where AVX-512 BF16 computes it; else f32."""
    # Without AMX's tiles INT8 wins even where AVX-512 BF16 exists: on an AMD EPYC Zen 4, 2.63-2.67x the
    # reference end to end against bf16's 1.98-2.13x (recorded in the README at commit 737f761). oneDNN's cap
    # is obeyed.
    if "amx_bf16" in flags and _onednn_cap_allows("AMX"):
        return "bf16"
    if int8_model and INT8_FLAGS.intersection(flags):
        return "int8"
    if BF16_FLAGS.intersection(flags) and _onednn_cap_allows("BF16", "AMX"):
        return "bf16"
    return "f32"


def auto_precision_for(path: str, flags: Collection[str]) -> str:
    """The precision `auto` runs the ONNX file at `path` at on a CPU with these flags (its INT8 build if there)."""
    return auto_precision(flags, int8_model=os.path.isfile(int8_model_path(path)))


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


def _openvino(
    path: str,
    precision: str,
    threads: int,
    cache_dir: str | None,
    streams: int = 1,
    flags: Collection[str] | None = None,
) -> LoadedModel:
    import threading

    if precision not in PRECISIONS:
        raise ValueError(f"cpu_precision {precision!r}: expected auto, f32, bf16 or int8")
    ov = _import_openvino()

    core = ov.Core()
    int8_path = int8_model_path(path)
    chosen_by_auto = precision == "auto"
    # the kernels are the real CPU's whatever `flags` says: its flags choose the INT8 build and static shapes
    real_flags = cpu_flags()
    if precision == "auto":
        if flags is None:
            flags = real_flags
            if not flags and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
                flags = {"avx512_bf16"}  # no /proc/cpuinfo (not Linux): OpenVINO's own word that bf16 is native
        precision = auto_precision_for(path, flags)
    if precision == "int8" and not os.path.isfile(int8_path):
        raise FileNotFoundError(
            f"cpu_precision int8: no INT8 model {int8_path} beside the ONNX file; run `{BUILD_INT8}` "
            "(needs the int8 extra: pip install 'videoapi[int8]')"
        )
    # INT8: the quantized model, its other layers in f32 (bf16 for them is slower here: bench/int8_probe.py)
    source, hint = (int8_model_path(path, real_flags), "f32") if precision == "int8" else (path, precision)
    config: dict[str, str | int] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    if streams > 1:  # several calls at once (a batch of files): each its own stream on its share of the cores
        config |= {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    if cache_dir:  # compiled blobs: a later start skips most of the compile
        config["CACHE_DIR"] = cache_dir
    note = ""
    try:
        compiled = core.compile_model(source, "CPU", config)
        if chosen_by_auto and precision == "int8":  # OpenVINO makes some kernels on the first call: try one
            sample = compiled.inputs[0]
            dtype = np.float32 if sample.get_element_type() == ov.Type.f32 else np.uint8
            compiled.create_infer_request().infer({0: np.zeros((1, 100, 27, 48, 3), dtype)})
    except RuntimeError as exc:
        if not (chosen_by_auto and precision == "int8"):
            raise
        # auto's INT8 is a speed-up, never a reason to fail: a CPU whose kernels refuse it runs the ONNX file in f32
        precision, note = "f32", f" (the INT8 model failed here: {str(exc).strip().splitlines()[-1]})"
        source, config = path, config | {"INFERENCE_PRECISION_HINT": "f32"}
        compiled = core.compile_model(source, "CPU", config)
    float_inputs = {i.get_any_name() for i in compiled.inputs if i.get_element_type() == ov.Type.f32}
    static = static_shapes_safe(precision, real_flags)
    # INT8's static kernels round apart from its dynamic ones (up to 0.005), each the same for a window whatever
    # its batch: one window a call through a static model made at once gives a window the same probabilities
    # however it was batched (a retry from a checkpoint, a segment, the engine), 2-4% slower than batches of 4
    one_window_a_call = precision == "int8" and static
    shaped = _StaticShapes(core, ov, source, config, enabled=static, eager=one_window_a_call)
    # an infer request serves one call at a time: one per calling thread and compiled model
    local = threading.local()

    def run(names: list[str], feed: dict[str, Any]) -> list[Any]:
        if one_window_a_call and len(feed) == 1:
            ((name, windows),) = feed.items()
            if len(windows) > 1:
                parts = [run(names, {name: windows[k : k + 1]}) for k in range(len(windows))]
                return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]
        model = shaped.get(feed) or compiled
        requests: dict[int, Any] = local.__dict__.setdefault("requests", {})
        request = requests.get(id(model))
        if request is None:
            request = requests[id(model)] = model.create_infer_request()
        results = request.infer(feed)
        return [results[model.output(name)].copy() for name in names]

    return LoadedModel(
        run=run,
        float_inputs=float_inputs,
        input_names=[i.get_any_name() for i in compiled.inputs],
        output_names=[o.get_any_name() for o in compiled.outputs],
        where=f"CPU {precision}{' (AVX2 build)' if source.endswith(INT8_AVX2_SUFFIX) else ''}{note}",
        fixed_shapes=shaped.shapes,
        one_window_a_call=one_window_a_call,
    )


class _StaticShapes:
    """The model compiled again for each input shape that recurs, fixed to it: OpenVINO's CPU kernels run a static
    shape 4-12% faster than the dynamic one in f32 and bf16 with the same outputs, and INT8 1.1-1.3x faster on
    AVX2 and VNNI within 0.012 of the dynamic model's probabilities (bench/static_shapes.py).

    A shape is compiled on its second call (a video's last, shorter batch comes once; a full batch recurs), or
    on its first where `eager`, about 0.2 s each, for at most MAX_SHAPES shapes; other calls run the dynamic model.
    """

    MAX_SHAPES = 4

    def __init__(
        self,
        core: Any,
        ov: Any,
        source: str,
        config: dict[str, str | int],
        *,
        enabled: bool = True,
        eager: bool = False,
    ):
        import threading

        self._core, self._ov, self._source, self._config = core, ov, source, config
        self._limit = self.MAX_SHAPES if enabled else 0
        self._calls_before_compile = 1 if eager else 2
        self._seen: dict[tuple[int, ...], int] = {}
        self._compiled: dict[tuple[int, ...], Any] = {}  # None: this shape would not compile
        self._lock = threading.Lock()

    def get(self, feed: dict[str, Any]) -> Any | None:
        """The model compiled for this feed's shape; None: run the dynamic one."""
        if len(feed) != 1:
            return None
        ((name, array),) = feed.items()
        shape = tuple(np.shape(array))
        if shape in self._compiled or len(self._compiled) >= self._limit:
            return self._compiled.get(shape)
        with self._lock:
            self._seen[shape] = self._seen.get(shape, 0) + 1
            if self._seen[shape] >= self._calls_before_compile and shape not in self._compiled:
                self._compiled[shape] = self._compile(name, shape)
        return self._compiled.get(shape)

    def shapes(self) -> list[tuple[int, ...]]:
        return [shape for shape, compiled in self._compiled.items() if compiled is not None]

    def _compile(self, name: str, shape: tuple[int, ...]) -> Any | None:
        try:
            model = self._core.read_model(self._source)
            model.reshape({name: self._ov.PartialShape(list(shape))})
            return self._core.compile_model(model, "CPU", self._config)
        except RuntimeError:  # a shape the network cannot take fixed: the dynamic model serves it as before
            return None


def static_shapes_safe(precision: str, flags: Collection[str]) -> bool:
    """Whether static shapes keep this precision's outputs on a CPU with these flags: not INT8 on AMX, where
    OpenVINO's static INT8 kernels moved test.mp4's probabilities by up to 0.80 (64 frames over 0.5 became 9)."""
    amx = "amx_int8" in flags and _onednn_cap_allows("AMX")
    return precision != "int8" or not amx


def load_model(
    path: str,
    *,
    runtime: str = "auto",
    precision: str = "auto",
    threads: int = 0,
    gpu_device: int | None = None,
    cache_dir: str | None = None,
    streams: int = 1,
    flags: Collection[str] | None = None,
) -> tuple[str, LoadedModel]:
    """(the runtime chosen, the loaded model) for the ONNX file at `path`; gpu_device None: a CPU.

    `streams` > 1 (OpenVINO): that many calls from as many threads run at once, for throughput over latency.
    `flags`: the CPU's instruction sets that precision `auto` goes by (default: this CPU's, `cpu_flags()`).
    """
    chosen = resolve_runtime(runtime, on_gpu=gpu_device is not None)
    if chosen == "openvino":
        return chosen, _openvino(path, precision, threads, cache_dir, streams, flags)
    return chosen, _onnxruntime(path, threads, gpu_device)
