"""Decode with the GPU's hardware decoder (NVDEC, through PyNvVideoCodec) into TransNetV2's 48x27 RGB input.

The decoder's own scaler shrinks each picture before it leaves the engine (to `surface`, 160x90 by default:
also the size of a keyframe tile), so the only pixels that move are a small NV12 surface; colour conversion and
the area resize to 48x27 run on the GPU, a batch of frames at a time. The frames stay on the GPU
(`iter_model_batches_nvdec`, torch tensors) or come to host memory as the CPU decoders give them
(`iter_model_frames_nvdec`, 27x48x3 uint8 arrays).

`VIDEOAPI_DECODER=nvdec` asks for it; `auto` takes it where a GPU, its driver's decoder library and
PyNvVideoCodec are all there, else PyAV (`resolve_decoder`).

Over 300 lines because the decoder's setup (finding the driver's library, the CUDA context and how its threads
wait), the batch's colour conversion and resize, and the keyframe tiles all work on the same GPU surfaces and
streams; split, each part would import the others' handles.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypedDict

from numpy.typing import NDArray

from videoapi.errors import DecoderUnavailable, VideoRejected
from videoapi.pipeline.decode import MODEL_HEIGHT, MODEL_WIDTH, TileTap
from videoapi.pipeline.gpus import node_dir, process_gpu

if TYPE_CHECKING:
    from torch import Tensor

logger = logging.getLogger(__name__)
SURFACE = (160, 90)  # the hardware scaler's output: even sides (NVDEC needs them), a keyframe tile's size
# Y'CbCr (limited range) to R'G'B': swscale's default matrix is BT.601 (the CPU path uses it unless the stream
# says otherwise); BT.709 for streams tagged so.
MATRICES = {
    "bt601": ((1.164384, 0.0, 1.596027), (1.164384, -0.391762, -0.812968), (1.164384, 2.017232, 0.0)),
    "bt709": ((1.164384, 0.0, 1.792741), (1.164384, -0.213249, -0.532909), (1.164384, 2.112402, 0.0)),
}


def _nvcuvid_loads() -> bool:
    try:
        ctypes.CDLL("libnvcuvid.so.1")
    except OSError:
        return False
    return True


@lru_cache(maxsize=1)
def nvdec_missing() -> str | None:
    """Why NVDEC cannot be used here, or None when it can (a GPU, the driver's decoder, PyNvVideoCodec, torch)."""
    import importlib.util

    for module in ("PyNvVideoCodec", "torch"):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module} is not installed"
    if not _nvcuvid_loads():
        return "the NVIDIA driver's decoder library (libnvcuvid.so.1) is not there: no GPU driver on this machine"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return None


def resolve_decoder(setting: str) -> str:
    """The decoder to use for a setting: `auto` takes nvdec where it can run, else pyav; nvdec that cannot run
    is an error saying why (a worker told to use the GPU should not quietly decode on its CPU)."""
    if setting == "auto":
        return "nvdec" if nvdec_missing() is None else "pyav"
    if setting == "nvdec":
        missing = nvdec_missing()
        if missing is not None:
            raise DecoderUnavailable(f"VIDEOAPI_DECODER=nvdec, but {missing}; use pyav or auto")
    return setting


CU_CTX_SCHED_BLOCKING_SYNC = 0x04  # cuda.h: a thread waiting on the GPU sleeps on a primitive instead of spinning


@cache
def block_on_gpu_waits(gpu_id: int) -> bool:
    """Make this process's threads sleep, not spin, while they wait on GPU `gpu_id` (its primary context's
    CU_CTX_SCHED_BLOCKING_SYNC, which torch, PyNvVideoCodec and the Triton client's CUDA memory share); True when set.

    CUDA's default (auto) spins a core for every wait when the process has fewer contexts than the node has cores:
    each NVDEC job waiting on the engines then holds a core busy doing nothing, the cores CPU decoders could use."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    device = ctypes.c_int()
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(device), gpu_id) != 0:
        return False
    set_flags = getattr(cuda, "cuDevicePrimaryCtxSetFlags_v2", None) or cuda.cuDevicePrimaryCtxSetFlags
    done = bool(set_flags(device, CU_CTX_SCHED_BLOCKING_SYNC) == 0)
    logger.info("GPU %d: waits on the GPU %s", gpu_id, "block" if done else "spin (the driver refused blocking sync)")
    return done


def nvdec_slot_dir() -> Path:
    """Where this process's GPU's NVDEC slots live: one lock file per slot, shared by every worker process of the
    node that decodes on that GPU (each GPU has its own decoders, so its own slots)."""
    return node_dir() / "nvdec-slots" / f"gpu{process_gpu()}"


SLOT_POLL_S = 0.025  # a job waiting for an NVDEC slot tries them again this often
BACKLOG_CHECK_S = 0.5  # and asks again this often whether the queue has grown enough for the CPU to help
SLOT_WAIT_MAX_S = 120.0  # the longest a job waits for a slot before it decodes on the CPU after all


def _lock_free_slot(slots: Path, count: int) -> int | None:
    """An exclusive flock on the first free slot file of `count`: its descriptor, or None when all are held."""
    for n in range(count):
        fd = _open_slot(slots, n)
        if _locked(fd):
            return fd
        os.close(fd)
    return None


def _open_slot(slots: Path, n: int) -> int:
    return os.open(slots / str(n), os.O_CREAT | os.O_RDWR, 0o666)


def _locked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_for_slot(slots: Path, count: int, backlog: Callable[[], int], min_backlog: int) -> int | None:
    """Wait for a free slot while fewer than `min_backlog` jobs are queued (at most SLOT_WAIT_MAX_S): the slot's
    descriptor, or None when the CPU should take the job after all. The slot files stay open while it waits, so a
    try is one flock a slot."""
    fds = [_open_slot(slots, n) for n in range(count)]
    held = None
    t0 = time.monotonic()
    try:
        while held is None and time.monotonic() - t0 < SLOT_WAIT_MAX_S and _cpu_would_end_last(backlog, min_backlog):
            checked = time.monotonic()
            while held is None and time.monotonic() - checked < BACKLOG_CHECK_S:
                time.sleep(SLOT_POLL_S)
                held = next((fd for fd in fds if _locked(fd)), None)
    finally:
        for fd in fds:
            if fd != held:
                os.close(fd)
    return held


def _cpu_would_end_last(backlog: Callable[[], int], min_backlog: int) -> bool:
    """True when fewer than `min_backlog` jobs wait in the queue: the NVDEC slots will drain them before a CPU
    decode (several times an NVDEC job's time) ends, so this job had better wait for a slot. A queue that cannot
    be read counts as full (the CPU takes the job, as with no backlog rule)."""
    try:
        return backlog() < min_backlog
    except Exception:  # noqa: BLE001 - Redis away: fall back to filling the cores
        logger.warning("the queue's backlog could not be read; the job decodes on the CPU", exc_info=True)
        return False


@contextmanager
def claim_decoder(
    setting: str,
    nvdec_streams: int = 0,
    backlog: Callable[[], int] | None = None,
    cpu_min_backlog: int = 0,
) -> Iterator[str]:
    """The decoder one job runs on, held while the block runs: `resolve_decoder`'s, except that with `auto` and
    `nvdec_streams` > 0 a job decodes on NVDEC only while fewer than that many jobs on its GPU do, and on the CPU
    (pyav) otherwise: the worker pool fills the GPU's decoders first and its cores with the rest.

    With `backlog` (the jobs waiting in the queue) and `cpu_min_backlog` > 0, a job that finds every slot taken
    goes to the CPU only while at least that many jobs wait; with fewer it waits for a slot (re-reading the
    backlog every BACKLOG_CHECK_S, at most SLOT_WAIT_MAX_S): a CPU decode takes several times an NVDEC job's
    time, so one started as the queue drains ends the burst late while the NVDEC slots sit idle.

    A slot is an exclusive flock on a file: the kernel frees it when the job ends or its process dies, so a
    killed worker leaves no slot taken."""
    decoder = resolve_decoder(setting)
    if decoder != "nvdec" or setting != "auto" or nvdec_streams <= 0:
        yield decoder
        return
    slots = nvdec_slot_dir()
    slots.mkdir(parents=True, exist_ok=True)
    held = _lock_free_slot(slots, nvdec_streams)
    waited = 0.0
    if held is None and backlog is not None and cpu_min_backlog > 0:
        t0 = time.monotonic()
        held = _wait_for_slot(slots, nvdec_streams, backlog, cpu_min_backlog)
        waited = time.monotonic() - t0
    decoder = "nvdec" if held is not None else "pyav"
    # one line a job: how the pool splits its jobs between NVDEC and the cores (bench/gpu/service.py counts them)
    logger.info(
        "decoding on %s (%d NVDEC slots on GPU %s; waited %.2f s for a slot)",
        decoder,
        nvdec_streams,
        process_gpu(),
        waited,
    )
    try:
        yield decoder
    finally:
        if held is not None:
            os.close(held)  # closing the descriptor releases its lock


class _Resize(TypedDict):
    """torch.nn.functional.interpolate's keywords for the scale to the model's size."""

    size: tuple[int, int]
    mode: str
    antialias: bool
    align_corners: bool


def _planes(frame: Any, torch: ModuleType) -> tuple[Tensor, Tensor]:
    """The decoded NV12 surface as torch views on the GPU: Y (h, w) and interleaved UV (h/2, w/2, 2)."""
    views = frame.cuda() if hasattr(frame, "cuda") else []
    if len(views) >= 2:
        y = torch.as_tensor(views[0], device="cuda")
        uv = torch.as_tensor(views[1], device="cuda")
        return y.reshape(y.shape[0], y.shape[1]), uv.reshape(uv.shape[0], -1, 2)
    whole = torch.from_dlpack(frame)  # one (h * 3/2, w) plane
    h = whole.shape[0] * 2 // 3
    return whole[:h], whole[h:].reshape(h // 2, -1, 2)


@lru_cache(maxsize=16)
def _matrix(matrix: str, device: Any) -> Tensor:
    """MATRICES[matrix] on `device`, made once: a fresh host tensor each time is a copy that waits on the GPU."""
    import torch

    return torch.tensor(MATRICES[matrix], device=device, dtype=torch.float32)


def nv12_to_model(y: Tensor, uv: Tensor, matrix: str = "bt601") -> Tensor:
    """NV12 batches (B, h, w) and (B, h/2, w/2, 2), uint8 on the GPU, to (B, 27, 48, 3) RGB uint8.

    Each plane is scaled to 48x27 first (antialiased bicubic, as swscale scales the planes before converting: the
    CPU path's filter), then converted.
    """
    import torch.nn.functional as F

    size = (MODEL_HEIGHT, MODEL_WIDTH)
    resize: _Resize = {"size": size, "mode": "bicubic", "antialias": True, "align_corners": False}
    luma = F.interpolate(y.unsqueeze(1).float(), **resize) - 16.0
    chroma = F.interpolate(uv.permute(0, 3, 1, 2).float(), **resize) - 128.0
    return _to_rgb(luma, chroma, matrix)


def _to_rgb(luma: Tensor, chroma: Tensor, matrix: str) -> Tensor:
    """Scaled planes less their offsets, luma (B, 1, h, w) and chroma (B, 2, h, w), to (B, h, w, 3) RGB uint8."""
    import torch

    rgb = torch.einsum("ck,bkhw->bhwc", _matrix(matrix, luma.device), torch.cat([luma, chroma], dim=1))
    return rgb.round_().clamp_(0, 255).to(torch.uint8)


def iter_model_batches_nvdec(
    path: Path,
    start: int = 0,
    stop: int | None = None,
    *,
    batch: int = 100,
    gpu_id: int | None = None,
    surface: tuple[int, int] = SURFACE,
    matrix: str = "bt601",
    tiles: TileTap | None = None,
    blocking_sync: bool = False,
) -> Iterator[Tensor]:
    """Frames start..stop-1 as (n, 27, 48, 3) uint8 CUDA tensors, up to `batch` frames each.

    Frames are numbered in the order the decoder shows them (display order, as OpenCV's path numbers them).
    `tiles`, when given, gets BGR copies of the frames it wants, scaled to its size on the GPU. `gpu_id`: the
    GPU that decodes (default: this process's, videoapi.pipeline.gpus). `blocking_sync`: the process's waits on
    that GPU sleep instead of spinning a core (`block_on_gpu_waits`).
    """
    import PyNvVideoCodec as nvc
    import torch

    gpu_id = process_gpu() if gpu_id is None else gpu_id
    if blocking_sync:
        block_on_gpu_waits(gpu_id)

    try:
        demuxer = nvc.CreateDemuxer(filename=str(path))
    except Exception as exc:  # PyNvVideoCodec raises plain exceptions for unreadable files
        raise VideoRejected("not_a_video", f"{Path(path).name} is not a video NVDEC's demuxer can open") from exc
    width, height = demuxer.Width(), demuxer.Height()
    sw = min(surface[0], width) // 2 * 2
    sh = min(surface[1], height) // 2 * 2
    torch.cuda.set_device(gpu_id)
    stream = torch.cuda.Stream(gpu_id)  # type: ignore[no-untyped-call]  # torch leaves Stream.__new__ unannotated
    decoder = nvc.CreateDecoder(
        gpuid=gpu_id,
        codec=demuxer.GetNvCodecId(),
        cudacontext=0,
        cudastream=stream.cuda_stream,
        usedevicememory=True,
        maxwidth=width,
        maxheight=height,
    )
    if (sw, sh) != (width, height):
        try:
            decoder.setReconfigParams(sw, sh)  # the decoder's hardware scaler: ulTargetWidth/Height
        except Exception as exc:  # noqa: BLE001 - full-size surfaces, resized on the GPU, still give the frames
            logger.warning("NVDEC's scaler refused %dx%d (%s): full-size surfaces, resized on the GPU", sw, sh, exc)
    ybuf: Tensor | None = None
    uvbuf: Tensor | None = None
    filled, index = 0, 0
    wanted: list[tuple[int, int]] = []  # (slot in the batch, frame number) of the tiles the tap wants

    def flush_tiles(ybuf: Tensor, uvbuf: Tensor) -> None:
        # the batch's tiles in one conversion and one copy to the host, not a wait on the GPU per tile
        if tiles is not None and wanted:
            slots = [slot for slot, _ in wanted]
            for (_, number), tile in zip(wanted, _tiles(ybuf[slots], uvbuf[slots], tiles, matrix), strict=True):
                tiles.add(number, tile)
        wanted.clear()

    with torch.cuda.stream(stream):
        for packet in demuxer:
            for frame in decoder.Decode(packet):
                if stop is not None and index >= stop:
                    break
                if index >= start:
                    y, uv = _planes(frame, torch)
                    if ybuf is None or uvbuf is None:  # both made at the first frame
                        ybuf = torch.empty((batch, *y.shape), dtype=torch.uint8, device=y.device)
                        uvbuf = torch.empty((batch, *uv.shape), dtype=torch.uint8, device=y.device)
                    ybuf[filled].copy_(y)  # the surface is the decoder's again at the next Decode call
                    uvbuf[filled].copy_(uv)
                    if tiles is not None and tiles.wants(index):
                        wanted.append((filled, index))
                    filled += 1
                    if filled == batch:
                        flush_tiles(ybuf, uvbuf)
                        yield nv12_to_model(ybuf, uvbuf, matrix)
                        filled = 0
                index += 1
            if stop is not None and index >= stop:
                break
        if filled:
            assert ybuf is not None and uvbuf is not None  # made at the first frame filled
            flush_tiles(ybuf, uvbuf)
            yield nv12_to_model(ybuf[:filled], uvbuf[:filled], matrix)


def _tiles(y: Tensor, uv: Tensor, tiles: TileTap, matrix: str) -> NDArray[Any]:
    """Frames' keyframe tiles (k, h, w, 3 BGR, the tap's size) from the small surfaces y (k, h, w), uv (k, h/2, w/2,
    2)."""
    import torch.nn.functional as F

    width, height = tiles.size
    size = (height, width)
    luma = F.interpolate(y.unsqueeze(1).float(), size=size, mode="area") - 16.0
    chroma = F.interpolate(uv.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", align_corners=False) - 128.0
    return _to_rgb(luma, chroma, matrix).flip(-1).cpu().numpy()


def iter_model_frames_nvdec(
    path: Path, start: int = 0, stop: int | None = None, **kwargs: Any
) -> Iterator[NDArray[Any]]:
    """Like iter_model_frames_pyav, decoding on the GPU: 27x48x3 RGB uint8 frames in host memory."""
    for batch in iter_model_batches_nvdec(path, start, stop, **kwargs):
        yield from batch.cpu().numpy()
