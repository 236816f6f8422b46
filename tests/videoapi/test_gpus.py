"""A node of several GPUs: each worker process decodes on one of them, the processes spread over all (issue 40).

What can be checked without several GPUs is: the placement rule, its settings, the per-GPU NVDEC slots and
Triton's GPU configuration; the throughput on 1 to 8 GPUs is bench/gpu/service.py's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from videoapi.errors import DecoderUnavailable
from videoapi.pipeline import decode_nvdec, gpus
from videoapi.settings import PROJECT_ROOT, Settings


@pytest.fixture(autouse=True)
def _restore_process_gpu():
    yield
    gpus._process_gpu, gpus._node_dir = 0, None
    if gpus._claim is not None:
        os.close(gpus._claim)
        gpus._claim = None


HOLD = """
import sys
from pathlib import Path
from videoapi.pipeline.gpus import claim_gpu
pinned = None if sys.argv[3] == "-" else int(sys.argv[3])
print(claim_gpu(Path(sys.argv[1]), int(sys.argv[2]), pinned), flush=True)
sys.stdin.read()  # held until the test closes our stdin (or kills us)
"""


class Node:
    """Worker processes of one node, each claiming a GPU in the node's folder and holding it until stopped.

    Separate interpreters, not forks: a fork of the test process (threads of earlier tests running) can hang."""

    def __init__(self, directory: Path, count: int):
        self.directory, self.count = directory, count
        self.processes: list[tuple[subprocess.Popen[str], int]] = []

    def start(self, pinned: int | None = None) -> int:
        pin = "-" if pinned is None else str(pinned)
        args = [sys.executable, "-c", HOLD, str(self.directory), str(self.count), pin]
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
        assert process.stdout is not None
        gpu = int(process.stdout.readline())
        self.processes.append((process, gpu))
        return gpu

    def kill(self, gpu: int) -> None:
        """SIGKILL one process on `gpu`: no chance to give its claim back."""
        process, _ = next(p for p in self.processes if p[1] == gpu and p[0].poll() is None)
        process.kill()
        process.wait(10)

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                assert process.stdin is not None
                process.stdin.close()
            process.wait(10)


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_the_nodes_processes_spread_over_every_gpu_evenly(count, tmp_path):
    node = Node(tmp_path / "node", count)
    try:
        placed = [node.start() for _ in range(2 * count + 1)]  # a pod's pool and another pod's: one folder
        per_gpu = [placed.count(gpu) for gpu in range(count)]
        assert per_gpu == [3] + [2] * (count - 1)
        assert [gpus.live_claims(tmp_path / "node" / f"gpu{gpu}") for gpu in range(count)] == per_gpu
    finally:
        node.stop()


def test_a_dead_processs_gpu_is_the_next_one_taken(tmp_path):
    node = Node(tmp_path / "node", 4)
    try:
        assert [node.start() for _ in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
        node.kill(2)
        node.kill(2)
        assert node.start() == 2  # its claims freed by the kernel, their files removed on the next count
        assert len(list((tmp_path / "node" / "gpu2").iterdir())) == 1
        assert node.start(pinned=1) == 1  # a pinned process is counted where it is
        assert node.start() == 2
    finally:
        node.stop()


def test_a_pinned_gpu_past_the_last_or_no_gpu_at_all_says_so(tmp_path):
    assert gpus.claim_gpu(tmp_path, 8, pinned=3) == 3
    with pytest.raises(DecoderUnavailable, match="VIDEOAPI_GPU=2, but this process sees 2 GPU"):
        gpus.claim_gpu(tmp_path, 2, pinned=2)
    with pytest.raises(DecoderUnavailable, match="no CUDA GPU"):
        gpus.claim_gpu(tmp_path, 0)


def test_the_setting_reads_from_the_environment(monkeypatch):
    assert Settings().gpu is None
    monkeypatch.setenv("VIDEOAPI_GPU", "5")
    assert Settings().gpu == 5


def test_a_cpu_node_places_no_process(monkeypatch):
    # this machine has no GPU: the worker's processes decode on the CPU and keep GPU 0 as a default
    assert gpus.place_on_gpu(Settings(decoder="auto")) is None
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    assert gpus.place_on_gpu(Settings(decoder="pyav")) is None
    assert gpus.process_gpu() == 0


def test_a_gpu_node_places_each_pool_process_and_its_nvdec_slots_in_the_nodes_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    monkeypatch.setattr(gpus, "visible_gpus", lambda: 4)
    node = Node(tmp_path / "node", 4)
    try:
        assert [node.start() for _ in range(2)] == [0, 1]  # two processes of another pod
        assert gpus.place_on_gpu(Settings(decoder="auto", node_dir=tmp_path / "node")) == 2
        assert gpus.process_gpu() == 2
        assert decode_nvdec.nvdec_slot_dir() == tmp_path / "node" / "nvdec-slots" / "gpu2"
        assert gpus.place_on_gpu(Settings(decoder="nvdec", gpu=1, node_dir=tmp_path / "node")) == 1
        assert gpus.process_gpu() == 1
        assert gpus.live_claims(tmp_path / "node" / "gpu2") == 0  # its first claim given back
    finally:
        node.stop()


def test_each_gpu_has_its_own_nvdec_slots(monkeypatch, tmp_path):
    # two processes on two GPUs, one slot each: both decode on NVDEC; a second on the same GPU goes to the CPU
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    gpus.assign_process_gpu(0, tmp_path)
    with decode_nvdec.claim_decoder("auto", 1) as on_gpu0:
        gpus.assign_process_gpu(1, tmp_path)
        with decode_nvdec.claim_decoder("auto", 1) as on_gpu1, decode_nvdec.claim_decoder("auto", 1) as third:
            assert (on_gpu0, on_gpu1, third) == ("nvdec", "nvdec", "pyav")
    assert sorted(p.name for p in (tmp_path / "nvdec-slots").iterdir()) == ["gpu0", "gpu1"]


def test_tritons_gpu_configuration_puts_an_instance_on_every_gpu():
    # Triton places an instance group with no `gpus` on each GPU it sees: naming GPUs would pin it to those
    config = (PROJECT_ROOT / "model_repository" / "transnetv2" / "configs" / "gpu.pbtxt").read_text()
    groups = re.findall(r"instance_group\s*\{([^}]*)\}", config)
    assert groups and all("KIND_GPU" in group for group in groups)
    assert not any("gpus" in group for group in groups)
