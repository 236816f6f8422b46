"""The local stack's supervisor: a dead process is reported and restarted; ready is false while one is down."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from local.supervisor import Supervisor
from local.worker_process import WorkerProcess


def wait_for(condition, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_dead_process_is_reported_and_restarted_with_back_off():
    processes = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])]
    messages = []
    supervisor = Supervisor(on_status=messages.append, interval_s=0.1)
    supervisor.watch(
        "sleeper",
        lambda: processes[-1].poll() is None,
        lambda: processes.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])),
    )
    supervisor.start()
    try:
        assert supervisor.ready
        processes[-1].kill()
        processes[-1].wait()
        assert not supervisor.ready  # never ready over a dead part
        assert wait_for(lambda: len(processes) == 2 and supervisor.ready, 10)
        assert messages[0] == "sleeper died: not ready; restarting it (restart 1)"
        assert "sleeper restarted" in messages
        processes[-1].kill()
        processes[-1].wait()
        assert wait_for(lambda: len(processes) == 3, 10)
        assert supervisor.parts[0].restarts == 2
    finally:
        supervisor.stop()
        for process in processes:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_killed_worker_is_restarted_and_answers_again(stack_settings, tmp_path):
    from workers.celery_app import create_app

    messages = []
    with WorkerProcess(stack_settings, concurrency=1, name="supervised", log_path=tmp_path / "w.log") as worker:
        supervisor = Supervisor(on_status=messages.append, interval_s=0.5)
        supervisor.watch(worker.name, lambda: worker.alive, lambda: (worker.stop(), worker.start()))
        supervisor.start()
        try:
            first_pid = worker.pid
            worker.kill()  # the whole worker, main process and pool
            assert wait_for(lambda: "supervised restarted" in messages, 90), messages  # it answered a ping
            assert worker.alive and worker.pid != first_pid
            app = create_app(stack_settings)
            replies = app.control.ping(timeout=2.0) or []
            app.close()
            assert any("supervised" in next(iter(r)) for r in replies)
            assert messages[:2] == ["supervised died: not ready; restarting it (restart 1)", "supervised restarted"]
        finally:
            supervisor.stop()


def _run_job(api_url: str, key: str, video: bytes) -> dict:
    import httpx

    headers = {"X-API-Key": key}
    with httpx.Client(base_url=api_url, timeout=30) as http:
        upload = http.put(
            "/v1/uploads/direct",
            params={"filename": "s.mp4"},
            content=video,
            headers={**headers, "Content-Type": "video/mp4"},
        )
        assert upload.status_code == 201, upload.text
        job = http.post("/v1/jobs", json={"source": upload.json()["key"]}, headers=headers).json()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            status = http.get(f"/v1/jobs/{job['id']}", headers=headers).json()
            if status["status"] in ("succeeded", "failed", "cancelled"):
                return status
            time.sleep(0.5)
    pytest.fail(f"job {job['id']} did not finish")


@pytest.mark.slow
def test_local_stack_restarts_its_dead_triton_api_redis_and_s3_and_is_not_ready_meanwhile(tmp_path):
    import os
    import signal

    from local.stack import LocalStack, StackPorts
    from local.synthetic import write_video
    from videoapi.settings import Settings

    write_video(tmp_path / "s.mp4", [40, 60], fps=25, width=160, height=90, seed=2)
    video = (tmp_path / "s.mp4").read_bytes()
    messages: list[str] = []
    stack = LocalStack(
        Settings(),
        StackPorts(api=0),
        workers=1,
        worker_concurrency=1,
        log_dir=tmp_path / "logs",
        write_state=False,
        on_status=messages.append,
    )
    stack.supervisor.interval_s = 0.5
    with stack:
        assert stack.ready
        first = {"Triton": stack.triton.pid, "API": stack.api_pid, "Redis": stack.redis.pid}
        for name, pid in first.items():
            os.killpg(pid, signal.SIGKILL)  # the process and its group: a crash, not a stop
            assert wait_for(lambda: not stack.ready, 10), f"ready over a dead {name}"  # noqa: B023
            assert wait_for(lambda: f"{name} restarted" in messages, 120), messages  # noqa: B023
            assert (
                wait_for(lambda: stack.ready, 30) and f"{name} died: not ready; restarting it (restart 1)" in messages
            )
        assert stack.triton.pid != first["Triton"] and stack.api_pid != first["API"]  # new processes
        assert stack.redis.pid != first["Redis"]
        # S3 is moto's server, a thread of this process: its server stopping is its crash. Its restart takes
        # milliseconds, so the test holds it until it has seen the stack not ready over the dead S3.
        s3 = next(part for part in stack.supervisor.parts if part.name == "S3 (moto)")
        held, restart_s3 = threading.Event(), s3.restart
        s3.restart = lambda: (held.wait(30), restart_s3())[-1]
        stack._moto.stop()
        try:
            assert wait_for(lambda: not stack.ready, 10), "ready over a dead S3"
        finally:
            held.set()
        assert wait_for(lambda: "S3 (moto) restarted" in messages, 60), messages
        assert wait_for(lambda: stack.ready, 30) and "S3 (moto) died: not ready; restarting it (restart 1)" in messages
        assert wait_for(lambda: "every part is up again: ready" in messages, 10)
        # the restarted Triton and API serve a job end to end
        status = _run_job(stack.api_url, stack.api_key, video)
        assert status["status"] == "succeeded", status
