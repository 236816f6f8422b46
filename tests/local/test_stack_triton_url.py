"""`videoapi local up --triton-url`: a stack over a Triton that runs already (NVIDIA's container on a GPU node)."""

from __future__ import annotations

import json

import pytest

from local.stack import LocalStack, StackPorts
from local.synthetic import write_video
from videoapi.client import VideoApiClient
from videoapi.settings import Settings

pytestmark = pytest.mark.slow


def test_a_stack_given_a_running_triton_starts_none_and_its_jobs_run_on_that_one(triton, tmp_path):
    cuts = write_video(tmp_path / "v.mp4", [60, 80], fps=25, width=160, height=90, seed=7)
    messages: list[str] = []
    stack = LocalStack(
        Settings(window=100),
        StackPorts(api=0),
        triton_url=triton.grpc_url,
        log_dir=tmp_path / "logs",
        write_state=False,
        on_status=messages.append,
    )
    with stack:
        assert stack.triton is None
        assert stack.settings.triton_url == triton.grpc_url
        assert stack.settings.window == 100  # a Triton elsewhere: no window chosen for this CPU
        assert f"Triton       grpc {triton.grpc_url}  (running already: not started or watched here)" in messages
        with VideoApiClient(stack.api_url, stack.api_key) as client:
            job = client.submit(client.upload(tmp_path / "v.mp4"))
            assert client.wait(job["id"], poll_s=0.2, timeout_s=120)["status"] == "succeeded"
            document = json.loads(client.result(job["id"], "json"))
    assert [shot["start_frame"] for shot in document["shots"][1:]] == cuts
    assert triton.alive  # the stack stopped what it started, not the Triton it was given
