"""The local stack's window: its Triton runs the model on this CPU, so the workers get the window that suits it."""

from __future__ import annotations

import json

import pytest

from local.stack import LocalStack, StackPorts
from local.synthetic import write_video
from videoapi.client import VideoApiClient
from videoapi.model import runtime
from videoapi.settings import Settings

pytestmark = pytest.mark.slow

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})  # an AMD EPYC Zen 2, as /proc/cpuinfo names it


def test_on_an_avx2_only_cpu_the_stacks_workers_take_windows_of_200(model_repository, monkeypatch, tmp_path):
    """The stack decides in this process (the CPU's flags stood in for); its worker runs the job at 200, and its
    Triton, on this machine's real kernels, serves any window."""
    monkeypatch.setattr(runtime, "cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.delenv("VIDEOAPI_WINDOW", raising=False)
    cuts = write_video(tmp_path / "v.mp4", [90, 120, 110], fps=25, width=160, height=90, seed=4)
    messages: list[str] = []
    stack = LocalStack(
        Settings(), StackPorts(api=0), log_dir=tmp_path / "logs", write_state=False, on_status=messages.append
    )
    with stack:
        assert stack.settings.window == 200
        assert "Window       200 frames (INT8 on AVX2's kernels; VIDEOAPI_WINDOW sets it)" in messages
        with VideoApiClient(stack.api_url, stack.api_key) as client:
            job = client.submit(client.upload(tmp_path / "v.mp4"))
            assert client.wait(job["id"], poll_s=0.2, timeout_s=120)["status"] == "succeeded"
            document = json.loads(client.result(job["id"], "json"))
    assert document["model"]["window"] == 200
    assert [shot["start_frame"] for shot in document["shots"][1:]] == cuts
