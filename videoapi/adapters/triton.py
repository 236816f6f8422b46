"""The worker's only way to the model: tritonclient over gRPC or HTTP.

`ShotModelClient` learns tensor names, types and which output is which from the
served model's own configuration (see videoapi.model.repository), so it works
with any TransNetV2 file the repository was built from.

With `shared_memory="cuda"` (Triton on the same node as the worker, with a GPU) the windows go through CUDA
shared memory instead of the request: the client copies them into a GPU buffer it registered with Triton
(from host memory, or from the GPU where the frames already are) and the request carries only its name.

Over 300 lines because the served model's discovery, the CUDA shared-memory regions and the request path belong
together, each meaningless without the others.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from videoapi.errors import InferenceError, InferenceInputError, InferenceUnavailable
from videoapi.observability.metrics import TRITON_BATCH, TRITON_ERRORS, TRITON_LATENCY
from videoapi.observability.tracing import span

FRAME_SHAPE = (27, 48, 3)
SharedMemory = Literal["none", "cuda"]
_REGION_NAMES = itertools.count()


@dataclass(frozen=True)
class ServedModel:
    """What the client needs to know about the served model, read from Triton."""

    name: str
    version: str
    input_name: str
    input_datatype: str
    window: int | None  # fixed time axis, or None when the model takes any window length
    single_frame_output: str
    many_hot_output: str | None
    outputs_are_logits: bool
    max_batch_size: int


@dataclass
class _Region:
    name: str
    handle: Any
    byte_size: int


class CudaInputRegions:
    """GPU buffers registered with Triton as CUDA shared memory, one per request in flight, reused."""

    def __init__(self, client: Any, call: Callable[..., Any], device_id: int = 0):
        try:
            import tritonclient.utils.cuda_shared_memory as cudashm
        except Exception as exc:  # tritonclient raises a bare Exception when cuda-python is missing
            raise InferenceUnavailable(
                f"shared_memory=cuda needs tritonclient's CUDA support (pip install 'tritonclient[cuda]'): {exc}"
            ) from exc
        self._cudashm, self._client, self._call, self.device_id = cudashm, client, call, device_id
        self._free: list[_Region] = []
        self._all: list[_Region] = []
        self._lock = threading.Lock()

    def _create(self, byte_size: int) -> _Region:
        name = f"videoapi-{os.getpid()}-{next(_REGION_NAMES)}"
        try:
            handle = self._cudashm.create_shared_memory_region(name, byte_size, self.device_id)
        except self._cudashm.CudaSharedMemoryException as exc:
            raise InferenceUnavailable(f"shared_memory=cuda: no GPU buffer of {byte_size} bytes: {exc}") from exc
        region = _Region(name, handle, byte_size)
        try:
            raw = self._cudashm.get_raw_handle(handle)
            register = self._client.register_cuda_shared_memory
            self._call("CUDA shared memory registration", register, name, raw, self.device_id, byte_size)
        except Exception:
            self._cudashm.destroy_shared_memory_region(handle)
            raise
        with self._lock:
            self._all.append(region)
        return region

    @contextmanager
    def holding(self, data: Any) -> Iterator[_Region]:
        """A region holding `data` (a numpy array, or a CUDA tensor by DLPack) for one request."""
        nbytes = int(data.nbytes)
        with self._lock:
            fits = [r for r in self._free if r.byte_size >= nbytes]
            region = min(fits, key=lambda r: r.byte_size) if fits else None
            if region is not None:
                self._free.remove(region)
        if region is None:
            region = self._create(nbytes)
        try:
            if isinstance(data, np.ndarray):
                self._cudashm.set_shared_memory_region(region.handle, [data])
            else:
                self._cudashm.set_shared_memory_region_from_dlpack(region.handle, [data])
            yield region
        finally:
            with self._lock:
                self._free.append(region)

    def close(self) -> None:
        """Unregister and free every region (Triton forgets them; the GPU memory goes back)."""
        with self._lock:
            regions, self._all, self._free = self._all, [], []
        for region in regions:
            try:
                self._client.unregister_cuda_shared_memory(region.name)
            except Exception:  # noqa: BLE001 - the server may be gone already; the memory is ours to free
                pass
            self._cudashm.destroy_shared_memory_region(region.handle)


def _pad_time(windows: Any, time: int) -> Any:
    """Windows [n, t, ...] made `time` long with copies of each one's last frame (a numpy array or a torch tensor)."""
    extra = time - windows.shape[1]
    if isinstance(windows, np.ndarray):
        return np.concatenate([windows, np.repeat(windows[:, -1:], extra, axis=1)], axis=1)
    import torch

    return torch.cat([windows, windows[:, -1:].expand(-1, extra, *windows.shape[2:])], dim=1)


def c_order(tensor: Any) -> Any:
    """A torch tensor with C-order strides on every axis, as tritonclient's DLPack copy demands (it checks each
    stride; torch's `contiguous()` leaves a one-window batch's first stride as its unfold made it)."""
    expected: list[int] = []
    size = 1
    for length in reversed(tensor.shape):
        expected.insert(0, size)
        size *= length
    if list(tensor.stride()) == expected:
        return tensor
    import torch

    return tensor.clone(memory_format=torch.contiguous_format)


def _sigmoid(x: NDArray[Any]) -> NDArray[Any]:
    probabilities: NDArray[Any] = 1.0 / (1.0 + np.exp(-x))
    return probabilities


class ShotModelClient:
    """Sends 48x27 frame windows to TransNetV2 on Triton, returns per-frame probabilities."""

    def __init__(
        self,
        url: str,
        *,
        model: str = "transnetv2",
        protocol: str = "grpc",
        timeout_s: float = 60.0,
        keepalive_s: float | None = None,
        batch_windows: int | None = None,
        shared_memory: SharedMemory = "none",
        gpu: int = 0,
    ):
        """`gpu`: with shared_memory="cuda", the GPU whose memory the windows go through (the caller's own)."""
        if protocol not in ("grpc", "http"):
            raise ValueError(f"protocol must be 'grpc' or 'http', not {protocol!r}")
        if shared_memory not in ("none", "cuda"):
            raise ValueError(f"shared_memory must be 'none' or 'cuda', not {shared_memory!r}")
        self.url, self.model_name, self.protocol, self.timeout_s = url, model, protocol, timeout_s
        self.batch_windows = batch_windows
        if protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc
        self._tc = tc
        kwargs: dict[str, Any] = {"connection_timeout": timeout_s, "network_timeout": timeout_s}
        if protocol == "grpc":
            kwargs = {}
            if keepalive_s:  # pings on the channel: a dead link fails the call in about 2 x keepalive_s
                ms = int(keepalive_s * 1000)
                kwargs["keepalive_options"] = tc.KeepAliveOptions(
                    keepalive_time_ms=ms,
                    keepalive_timeout_ms=ms,
                    keepalive_permit_without_calls=False,
                    http2_max_pings_without_data=0,
                )
        self._client = tc.InferenceServerClient(url, **kwargs)
        self._served: ServedModel | None = None
        try:
            self._regions = CudaInputRegions(self._client, self._call, gpu) if shared_memory == "cuda" else None
        except InferenceUnavailable:
            self._client.close()  # the caller gets no client to close
            raise

    def close(self) -> None:
        if self._regions is not None:
            self._regions.close()
        self._client.close()

    def __enter__(self) -> ShotModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            status = str(exc.status() or "")
            unavailable = (
                "UNAVAILABLE" in status
                or "DEADLINE_EXCEEDED" in status
                or "unavailable" in message.lower()
                or "failed to connect" in message.lower()
                or "not ready" in message.lower()
                or "connection" in message.lower()
            )
            kind = InferenceUnavailable if unavailable else InferenceInputError
            raise kind(f"Triton at {self.url}: {what} failed: {message}") from exc
        except (ConnectionError, OSError) as exc:  # the HTTP client raises these directly
            raise InferenceUnavailable(f"Triton at {self.url}: {what} failed: {exc}") from exc

    def served_model(self) -> ServedModel:
        """The model's contract as Triton serves it (cached after the first call)."""
        if self._served is not None:
            return self._served
        ready = self._call("readiness check", self._client.is_model_ready, self.model_name)
        if not ready:
            raise InferenceUnavailable(f"Triton at {self.url}: model {self.model_name!r} is not ready")
        if self.protocol == "grpc":
            config = self._call("model config", self._client.get_model_config, self.model_name, as_json=True)["config"]
            metadata = self._call("model metadata", self._client.get_model_metadata, self.model_name, as_json=True)
        else:
            config = self._call("model config", self._client.get_model_config, self.model_name)
            metadata = self._call("model metadata", self._client.get_model_metadata, self.model_name)
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        (inp,) = config["input"]
        outputs = [o["name"] for o in config["output"]]
        dims = [int(d) for d in inp["dims"]]
        single = params.get("single_frame_output") or outputs[0]
        many = params.get("many_hot_output") or next((o for o in outputs if o != single), None)
        self._served = ServedModel(
            name=self.model_name,
            version=str(max(metadata.get("versions", ["1"]), key=lambda v: int(v))),
            input_name=inp["name"],
            input_datatype=inp["data_type"].removeprefix("TYPE_"),
            window=dims[0] if dims[0] > 0 else None,
            single_frame_output=single,
            many_hot_output=many,
            outputs_are_logits=params.get("outputs") == "logits",
            max_batch_size=int(config.get("max_batch_size", 0)) or 1,
        )
        return self._served

    def predict(self, windows: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any] | None]:
        """Probabilities for windows uint8 [n, time, 27, 48, 3]: (single_frame, many_hot), each [n, time].

        With CUDA shared memory, `windows` may also be a CUDA tensor (torch), which never leaves the GPU.
        """
        served = self.served_model()
        if not isinstance(windows, np.ndarray) and self._regions is None:
            windows = np.asarray(windows)
        dtype_ok = str(windows.dtype) in ("uint8", "torch.uint8")
        if windows.ndim != 5 or tuple(windows.shape[2:]) != FRAME_SHAPE or not dtype_ok:
            raise InferenceInputError(
                f"windows must be uint8 [n, time, 27, 48, 3], got {windows.dtype} {list(windows.shape)}"
            )
        if served.window is not None and windows.shape[1] < served.window:
            # a video's last window is shorter (windows.tail_window); a model with a fixed time axis gets it
            # padded with its last frame, as every window's end was padded before: the kept frames are the same
            windows = _pad_time(windows, served.window)
        if served.window is not None and windows.shape[1] != served.window:
            raise InferenceInputError(
                f"model {served.name} takes {served.window}-frame windows, got {windows.shape[1]}"
            )
        singles: list[NDArray[Any]] = []
        manys: list[NDArray[Any]] = []  # one per chunk when the model has the many-hot output, else none
        chunk = min(served.max_batch_size, self.batch_windows or served.max_batch_size)
        for start in range(0, len(windows), chunk):
            single_chunk, many_chunk = self._infer(served, windows[start : start + chunk])
            singles.append(single_chunk)
            if many_chunk is not None:
                manys.append(many_chunk)
        single = np.concatenate(singles)
        many = np.concatenate(manys) if served.many_hot_output else None
        return single, many

    def _infer(self, served: ServedModel, batch: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any] | None]:
        if self._regions is not None:
            if served.input_datatype != "UINT8":
                raise InferenceInputError(f"shared_memory=cuda needs a UINT8 input; {served.name} takes FP32")
            data = np.ascontiguousarray(batch) if isinstance(batch, np.ndarray) else c_order(batch)
            with self._regions.holding(data) as region:
                inp = self._tc.InferInput(served.input_name, list(batch.shape), "UINT8")
                inp.set_shared_memory(region.name, int(data.nbytes))
                return self._send(served, inp, len(batch))
        data = batch if served.input_datatype == "UINT8" else batch.astype(np.float32)
        datatype = "UINT8" if served.input_datatype == "UINT8" else "FP32"
        inp = self._tc.InferInput(served.input_name, list(data.shape), datatype)
        inp.set_data_from_numpy(np.ascontiguousarray(data))
        return self._send(served, inp, len(batch))

    def _send(self, served: ServedModel, inp: Any, windows: int) -> tuple[NDArray[Any], NDArray[Any] | None]:
        names = [n for n in (served.single_frame_output, served.many_hot_output) if n]
        outputs = [self._tc.InferRequestedOutput(n) for n in names]
        timeout = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        # one span of our own for both protocols, with the batch size (no gRPC instrumentation needed)
        attributes: dict[str, str | int] = {"triton.model": served.name, "triton.batch_windows": windows}
        with span("triton.infer", **attributes):
            started = time.perf_counter()
            try:
                result = self._call("inference", self._client.infer, served.name, [inp], outputs=outputs, **timeout)
            except InferenceError as exc:
                TRITON_ERRORS.labels(type(exc).__name__).inc()
                raise
            TRITON_LATENCY.observe(time.perf_counter() - started)
            TRITON_BATCH.observe(windows)
        arrays = [result.as_numpy(n).reshape(windows, -1) for n in names]
        if served.outputs_are_logits:
            arrays = [_sigmoid(a.astype(np.float32)) for a in arrays]
        return arrays[0], (arrays[1] if len(arrays) > 1 else None)
