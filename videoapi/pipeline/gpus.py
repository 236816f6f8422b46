"""Which GPU a worker process uses on a node of several: its NVDEC sessions, its CUDA shared memory to Triton and its
NVDEC slots are all on that one.

A node's worker processes are spread over its GPUs (process k on GPU k mod the count) unless `VIDEOAPI_GPU` pins
them; Triton places an instance of the model on every GPU it sees (the GPU configuration names none), so each
GPU's decoders feed an instance on the same GPU through its own memory.
"""

from __future__ import annotations

import importlib.util
import logging
import os

from videoapi.errors import DecoderUnavailable
from videoapi.settings import Settings

logger = logging.getLogger(__name__)

_process_gpu = 0  # this process's GPU, set once at its start (assign_process_gpu)


def visible_gpus() -> int:
    """How many CUDA GPUs this process sees (0 without torch or a driver); CUDA_VISIBLE_DEVICES narrows them."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "" or importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def gpu_for_process(pinned: int | None, process_index: int, gpus: int) -> int:
    """The GPU of the pool's process `process_index` on a node of `gpus` GPUs: `pinned` when set, else spread."""
    if gpus <= 0:
        raise DecoderUnavailable("no CUDA GPU is visible to place this worker process on")
    if pinned is not None:
        if pinned >= gpus:
            raise DecoderUnavailable(f"VIDEOAPI_GPU={pinned}, but this process sees {gpus} GPU(s) (0 to {gpus - 1})")
        return pinned
    return process_index % gpus


def assign_process_gpu(gpu: int) -> None:
    """Make `gpu` this process's GPU (torch's current device too, where torch is loaded)."""
    global _process_gpu
    _process_gpu = gpu
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(gpu)


def process_gpu() -> int:
    """This process's GPU: the one assign_process_gpu set, else 0."""
    return _process_gpu


def place_on_gpu(settings: Settings, process_index: int) -> int | None:
    """Give a worker's pool process its GPU where it decodes on NVDEC (decoder auto or nvdec, and NVDEC there);
    None where it decodes on the CPU."""
    from videoapi.pipeline.decode_nvdec import nvdec_missing  # it imports this module

    if settings.decoder not in ("auto", "nvdec") or nvdec_missing() is not None:
        return None
    gpu = gpu_for_process(settings.gpu, process_index, visible_gpus())
    assign_process_gpu(gpu)
    logger.info("pool process %d decodes on GPU %d", process_index, gpu)
    return gpu
