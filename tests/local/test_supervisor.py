"""The local stack's supervisor: a dead process is reported and restarted; ready is false while one is down."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from local.supervisor import Supervisor
from workers.process import WorkerProcess


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
        assert messages[0] == "sleeper died; restarting it (restart 1)"
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
            assert messages[:2] == ["supervised died; restarting it (restart 1)", "supervised restarted"]
        finally:
            supervisor.stop()
