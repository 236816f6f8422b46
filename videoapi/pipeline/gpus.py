"""Which GPU a worker process uses on a node of several: its NVDEC sessions, its CUDA shared memory to Triton and its
NVDEC slots are all on that one.

Each worker pool process of a node, whichever pod it is in, claims the GPU that the fewest live processes have
claimed (`VIDEOAPI_GPU` pins one instead): a claim is a lock on a file of its own in the node's shared folder
(`VIDEOAPI_NODE_DIR`; a hostPath in Kubernetes), which the kernel frees when the process dies. Triton places an
instance of the model on every GPU it sees (the GPU configuration names none), so each GPU's decoders feed an
instance on the same GPU through its own memory.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from videoapi.errors import DecoderUnavailable
from videoapi.settings import Settings

logger = logging.getLogger(__name__)

_process_gpu = 0  # this process's GPU, set once at its start (assign_process_gpu)
_node_dir: Path | None = None  # the node's shared folder, where this process placed itself (assign_process_gpu)
_claim: int | None = None  # the descriptor holding this process's GPU claim: its lock lasts as long as the process


def visible_gpus() -> int:
    """How many CUDA GPUs this process sees (0 without torch or a driver); CUDA_VISIBLE_DEVICES narrows them."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "" or importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def node_dir(settings: Settings | None = None) -> Path:
    """The folder every worker process of the node shares: `VIDEOAPI_NODE_DIR`, else one in the temporary directory."""
    chosen = _node_dir if settings is None else settings.node_dir
    return chosen or Path(tempfile.gettempdir()) / "videoapi-node"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def live_claims(folder: Path) -> int:
    """How many live processes hold a claim in `folder`; the files of dead ones are removed."""
    count = 0
    for file in folder.iterdir() if folder.is_dir() else []:
        try:
            fd = os.open(file, os.O_RDWR)
        except FileNotFoundError:  # removed by another process counting
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            count += 1
        else:
            file.unlink(missing_ok=True)  # its process is gone: the kernel freed its lock
        finally:
            os.close(fd)
    return count


def claim_gpu(directory: Path, gpus: int, pinned: int | None = None) -> int:
    """Claim, for this process's life, `pinned` or else the GPU of the `gpus` with the fewest live claims (the
    lowest on a tie); a second claim by the same process replaces its first."""
    global _claim
    if gpus <= 0:
        raise DecoderUnavailable("no CUDA GPU is visible to place this worker process on")
    if pinned is not None and pinned >= gpus:
        raise DecoderUnavailable(f"VIDEOAPI_GPU={pinned}, but this process sees {gpus} GPU(s) (0 to {gpus - 1})")
    directory.mkdir(parents=True, exist_ok=True)
    if _claim is not None:
        os.close(_claim)
        _claim = None
    # one process choosing at a time: two starting together would both see the same GPU as the least claimed
    with _locked(directory / ".choosing"):
        claims = [live_claims(directory / f"gpu{gpu}") for gpu in range(gpus)]
        gpu = pinned if pinned is not None else claims.index(min(claims))
        folder = directory / f"gpu{gpu}"
        folder.mkdir(exist_ok=True)
        # the pod's hostname and a random part: process ids repeat across the node's pods
        fd = os.open(folder / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}", os.O_CREAT | os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _claim = fd
    return gpu


def assign_process_gpu(gpu: int, directory: Path | None = None) -> None:
    """Make `gpu` this process's GPU (torch's current device too, where torch is loaded)."""
    global _process_gpu, _node_dir
    _process_gpu = gpu
    _node_dir = directory
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(gpu)


def process_gpu() -> int:
    """This process's GPU: the one assign_process_gpu set, else 0."""
    return _process_gpu


def place_on_gpu(settings: Settings) -> int | None:
    """Give a worker's pool process its GPU where it decodes on NVDEC (decoder auto or nvdec, and NVDEC there);
    None where it decodes on the CPU."""
    from videoapi.pipeline.decode_nvdec import nvdec_missing  # it imports this module

    if settings.decoder not in ("auto", "nvdec") or nvdec_missing() is not None:
        return None
    directory = node_dir(settings)
    gpu = claim_gpu(directory, visible_gpus(), settings.gpu)
    assign_process_gpu(gpu, directory)
    logger.info("worker process %d decodes on GPU %d", os.getpid(), gpu)
    return gpu
