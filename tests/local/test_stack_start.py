"""The local stack loads Triton's model while its workers and API start: a model that fails still stops it all."""

from __future__ import annotations

import psutil
import pytest

from local.stack import LocalStack, StackError, StackPorts
from videoapi.model.repository import cpu_variant
from videoapi.settings import Settings

pytestmark = pytest.mark.slow


def _children() -> dict[int, str]:
    alive = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive[child.pid] = " ".join(child.cmdline())[:80]
        except psutil.NoSuchProcess:
            pass
    return alive


def test_a_model_that_fails_to_load_after_the_workers_started_stops_them_and_says_why(model_repository, tmp_path):
    repo = cpu_variant(model_repository, tmp_path / "repo", cpu_runtime="openvino", cpu_precision="f32")
    config = repo / "transnetv2" / "config.pbtxt"
    config.write_text(config.read_text().replace('string_value: "4x150"', 'string_value: "four"'))
    before = _children()
    messages: list[str] = []
    stack = LocalStack(
        Settings(model_repository=repo),
        StackPorts(api=0),
        log_dir=tmp_path / "logs",
        write_state=False,
        on_status=messages.append,
    )
    with pytest.raises(StackError, match="Triton: .*warm_shape 'four': expected windows x frames"):
        stack.start()
    assert any(message.startswith("Workers") for message in messages)  # they had started beside the model
    assert not any(message.startswith("Triton") for message in messages)
    assert {pid: line for pid, line in _children().items() if pid not in before} == {}
