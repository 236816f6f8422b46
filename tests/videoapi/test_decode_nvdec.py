"""Choosing the decoder: NVDEC where it can run, PyAV otherwise (the GPU path itself is measured on a GPU node,
bench/gpu/nvdec.py, not here)."""

import pytest

from videoapi.errors import DecoderUnavailable
from videoapi.pipeline import decode_nvdec
from videoapi.pipeline.decode_nvdec import resolve_decoder
from videoapi.settings import Settings


def test_this_machine_has_no_nvdec_so_auto_is_pyav():
    # CI and the development machines have no GPU: auto must fall back, never fail
    assert decode_nvdec.nvdec_missing() is not None
    assert resolve_decoder("auto") == "pyav"


def test_auto_takes_nvdec_where_it_can_run(monkeypatch):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    assert resolve_decoder("auto") == "nvdec"
    assert resolve_decoder("nvdec") == "nvdec"


def test_nvdec_asked_for_without_a_gpu_says_why(monkeypatch):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: "no CUDA GPU is visible")
    with pytest.raises(DecoderUnavailable, match="VIDEOAPI_DECODER=nvdec, but no CUDA GPU is visible"):
        resolve_decoder("nvdec")


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_cpu_decoders_are_kept(monkeypatch, decoder):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    assert resolve_decoder(decoder) == decoder


def test_setting_defaults_to_auto_and_accepts_nvdec(monkeypatch):
    monkeypatch.delenv("VIDEOAPI_DECODER", raising=False)
    assert Settings().decoder == "auto"
    monkeypatch.setenv("VIDEOAPI_DECODER", "nvdec")
    assert Settings().decoder == "nvdec"


def test_nv12_to_model_converts_bt601_limited_range():
    # the GPU path's conversion, run on the CPU: flat surfaces of known colours come out as those colours
    torch = pytest.importorskip("torch")
    from videoapi.pipeline.decode_nvdec import nv12_to_model

    colours = {(235, 128, 128): (255, 255, 255), (16, 128, 128): (0, 0, 0), (81, 90, 240): (255, 0, 0)}
    y = torch.tensor([c[0] for c in colours], dtype=torch.uint8)[:, None, None].expand(-1, 90, 160)
    uv = torch.tensor([c[1:] for c in colours], dtype=torch.uint8)[:, None, None, :].expand(-1, 45, 80, 2)
    rgb = nv12_to_model(y.contiguous(), uv.contiguous()).numpy()
    assert rgb.shape == (3, 27, 48, 3) and rgb.dtype.name == "uint8"
    for got, want in zip(rgb, colours.values(), strict=True):
        assert abs(got.astype(int) - want).max() <= 1


@pytest.mark.parametrize("frames", [1, 49, 50, 99, 100, 101, 533, 1601])
@pytest.mark.parametrize("batch", [100, 37])
@pytest.mark.parametrize("window", [100, 200])
def test_windows_built_from_tensor_batches_are_the_reference_windows(frames, batch, window):
    """NVDEC's frames stay on the GPU as torch batches; the windows built from them (here on the CPU, the same
    torch operations) are iter_windows' exactly: padding, overlap, the last window's kept frames."""
    import numpy as np
    import torch

    from videoapi.pipeline.windows import iter_tensor_windows, iter_windows

    video = torch.from_numpy(np.random.default_rng(frames).integers(0, 256, (frames, 27, 48, 3), dtype=np.uint8))
    built = list(iter_tensor_windows((video[i : i + batch] for i in range(0, frames, batch)), window, size=16))
    windows = [w.numpy() for group, _ in built for w in group]
    counts = [c for _, group in built for c in group]
    expected = list(iter_windows(video.numpy(), window))
    assert [w.count for w in expected] == counts
    assert all(w.shape == (window, 27, 48, 3) for w in windows[:-1])
    assert all(np.array_equal(w.frames, got) for w, got in zip(expected, windows, strict=True))
    assert all(len(w) <= 16 for w, _ in built)


def test_nvdec_slots_fill_first_then_the_cpu_takes_the_rest(monkeypatch, tmp_path):
    # a node with a GPU, two NVDEC slots: the first two jobs decode on it, a third on the CPU until one ends
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    monkeypatch.setattr(decode_nvdec, "nvdec_slot_dir", lambda: tmp_path / "slots")
    with decode_nvdec.claim_decoder("auto", 2) as first, decode_nvdec.claim_decoder("auto", 2) as second:
        assert (first, second) == ("nvdec", "nvdec")
        with decode_nvdec.claim_decoder("auto", 2) as third:
            assert third == "pyav"
    with decode_nvdec.claim_decoder("auto", 2) as again:
        assert again == "nvdec"


def test_nvdec_slot_of_a_killed_process_is_free_again(monkeypatch, tmp_path):
    # the slot is a lock the kernel drops with its process: a worker killed mid-job leaves none taken
    import multiprocessing

    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    monkeypatch.setattr(decode_nvdec, "nvdec_slot_dir", lambda: tmp_path / "slots")
    (tmp_path / "slots").mkdir()
    ready = multiprocessing.get_context("fork").Event()

    def hold_slot():
        import fcntl
        import os
        import time

        fd = os.open(tmp_path / "slots" / "0", os.O_CREAT | os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        ready.set()
        time.sleep(60)

    holder = multiprocessing.get_context("fork").Process(target=hold_slot)
    holder.start()
    try:
        assert ready.wait(10)
        with decode_nvdec.claim_decoder("auto", 1) as busy:
            assert busy == "pyav"
    finally:
        holder.kill()
        holder.join(10)
    with decode_nvdec.claim_decoder("auto", 1) as freed:
        assert freed == "nvdec"


def test_as_the_queue_drains_a_job_past_the_slots_waits_for_one_instead_of_the_cpu(monkeypatch, tmp_path):
    # the tail rule (cpu_decode_min_backlog): with fewer jobs queued than the rule's number, a job that finds the
    # slot taken waits for it and decodes on NVDEC once it is free; with as many queued, it goes to the CPU at once
    import threading
    import time

    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    monkeypatch.setattr(decode_nvdec, "nvdec_slot_dir", lambda: tmp_path / "slots")
    queued = [8]
    with decode_nvdec.claim_decoder("auto", 1) as busy:
        assert busy == "nvdec"
        t0 = time.monotonic()
        with decode_nvdec.claim_decoder("auto", 1, lambda: queued[0], 8) as full_queue:
            assert full_queue == "pyav" and time.monotonic() - t0 < 0.2
    queued[0] = 7
    seen = []
    holding, release = threading.Event(), threading.Event()

    def first_job():
        with decode_nvdec.claim_decoder("auto", 1) as decoder:
            seen.append(decoder)
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=first_job)
    holder.start()
    assert holding.wait(10)
    threading.Timer(0.3, release.set).start()
    t0 = time.monotonic()
    with decode_nvdec.claim_decoder("auto", 1, lambda: queued[0], 8) as waited:
        assert waited == "nvdec"
        assert time.monotonic() - t0 >= 0.3
        seen.append(waited)
    holder.join(10)
    assert seen == ["nvdec", "nvdec"]


def test_a_job_waiting_for_a_slot_goes_to_the_cpu_when_the_queue_grows_or_cannot_be_read(monkeypatch, tmp_path):
    import os
    import time

    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    monkeypatch.setattr(decode_nvdec, "nvdec_slot_dir", lambda: tmp_path / "slots")
    reads = []

    def growing() -> int:  # a new burst arrives while the job waits: the cores should take it after all
        reads.append(time.monotonic())
        return 0 if len(reads) < 3 else 50

    def unreadable() -> int:
        raise ConnectionError("Redis is away")

    with decode_nvdec.claim_decoder("auto", 1) as busy:
        assert busy == "nvdec"
        open_before = len(os.listdir("/proc/self/fd"))
        with decode_nvdec.claim_decoder("auto", 1, growing, 8) as later:
            assert later == "pyav"
        assert len(os.listdir("/proc/self/fd")) == open_before  # the slot files it waited on are closed again
        assert len(reads) == 3 and reads[2] - reads[0] >= 2 * decode_nvdec.BACKLOG_CHECK_S * 0.9
        t0 = time.monotonic()
        with decode_nvdec.claim_decoder("auto", 1, unreadable, 8) as at_once:
            assert at_once == "pyav" and time.monotonic() - t0 < 0.2


@pytest.mark.parametrize("setting", ["nvdec", "pyav"])
def test_a_decoder_named_outright_takes_no_slot(monkeypatch, tmp_path, setting):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    monkeypatch.setattr(decode_nvdec, "nvdec_slot_dir", lambda: tmp_path / "slots")
    with decode_nvdec.claim_decoder(setting, 1) as one, decode_nvdec.claim_decoder(setting, 1) as two:
        assert one == two == setting
