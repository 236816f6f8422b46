"""A node of several GPUs: each worker process decodes on one of them, the processes spread over all (issue 40).

What can be checked without several GPUs is: the placement rule, its settings, the per-GPU NVDEC slots and
Triton's GPU configuration; the throughput on 1 to 8 GPUs is bench/gpu/service.py's."""

from __future__ import annotations

import re

import pytest

from videoapi.errors import DecoderUnavailable
from videoapi.pipeline import decode_nvdec, gpus
from videoapi.settings import PROJECT_ROOT, Settings


@pytest.fixture(autouse=True)
def _restore_process_gpu():
    yield
    gpus._process_gpu = 0


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_a_pool_spreads_over_every_gpu_evenly(count):
    processes = 2 * count + 1
    placed = [gpus.gpu_for_process(None, index, count) for index in range(processes)]
    assert set(placed) == set(range(count))
    per_gpu = [placed.count(gpu) for gpu in range(count)]
    assert max(per_gpu) - min(per_gpu) <= 1


def test_a_pinned_gpu_is_kept_and_one_past_the_last_says_so():
    assert [gpus.gpu_for_process(3, index, 8) for index in range(4)] == [3, 3, 3, 3]
    with pytest.raises(DecoderUnavailable, match="VIDEOAPI_GPU=2, but this process sees 2 GPU"):
        gpus.gpu_for_process(2, 0, 2)
    with pytest.raises(DecoderUnavailable, match="no CUDA GPU"):
        gpus.gpu_for_process(None, 0, 0)


def test_the_setting_reads_from_the_environment(monkeypatch):
    assert Settings().gpu is None
    monkeypatch.setenv("VIDEOAPI_GPU", "5")
    assert Settings().gpu == 5


def test_a_cpu_node_places_no_process(monkeypatch):
    # this machine has no GPU: the worker's processes decode on the CPU and keep GPU 0 as a default
    assert gpus.place_on_gpu(Settings(decoder="auto"), 3) is None
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    assert gpus.place_on_gpu(Settings(decoder="pyav"), 3) is None
    assert gpus.process_gpu() == 0


def test_a_gpu_node_places_each_pool_process(monkeypatch):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    monkeypatch.setattr(gpus, "visible_gpus", lambda: 4)
    assert gpus.place_on_gpu(Settings(decoder="auto"), 6) == 2
    assert gpus.process_gpu() == 2
    assert gpus.place_on_gpu(Settings(decoder="nvdec", gpu=1), 6) == 1
    assert gpus.process_gpu() == 1


def test_each_gpu_has_its_own_nvdec_slots(monkeypatch, tmp_path):
    # two processes on two GPUs, one slot each: both decode on NVDEC; a second on the same GPU goes to the CPU
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    monkeypatch.setattr(decode_nvdec.tempfile, "gettempdir", lambda: str(tmp_path))
    gpus.assign_process_gpu(0)
    with decode_nvdec.claim_decoder("auto", 1) as on_gpu0:
        gpus.assign_process_gpu(1)
        with decode_nvdec.claim_decoder("auto", 1) as on_gpu1, decode_nvdec.claim_decoder("auto", 1) as third:
            assert (on_gpu0, on_gpu1, third) == ("nvdec", "nvdec", "pyav")
    assert sorted(p.name for p in (tmp_path / "videoapi-nvdec-slots").iterdir()) == ["gpu0", "gpu1"]


def test_tritons_gpu_configuration_puts_an_instance_on_every_gpu():
    # Triton places an instance group with no `gpus` on each GPU it sees: naming GPUs would pin it to those
    config = (PROJECT_ROOT / "model_repository" / "transnetv2" / "configs" / "gpu.pbtxt").read_text()
    groups = re.findall(r"instance_group\s*\{([^}]*)\}", config)
    assert groups and all("KIND_GPU" in group for group in groups)
    assert not any("gpus" in group for group in groups)
