"""Start and stop a Celery worker process (for the local stack and the tests)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from local.netutil import free_port, stop_process_group
from videoapi.errors import StartError
from videoapi.settings import PROJECT_ROOT, Settings


class WorkerStartError(StartError):
    pass


@dataclass
class WorkerProcess:
    """`celery -A workers.celery_app worker` reading `settings`, in its own process group."""

    settings: Settings
    concurrency: int = 2
    name: str = "worker1"
    log_path: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    command_prefix: list[str] = field(default_factory=list)  # e.g. `ip netns exec NAME`: run it on another host
    include: list[str] = field(default_factory=list)  # more modules the worker imports (`celery worker -I`)
    metrics_port: int = field(default=0, init=False)
    _metrics_dir: Path | None = field(default=None, init=False, repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | int | None = field(default=None, init=False, repr=False)  # a log file, or DEVNULL

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout_s: float = 60.0) -> WorkerProcess:
        from workers.celery_app import create_app

        args = [
            *self.command_prefix,
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "--concurrency",
            str(self.concurrency),
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{self.name}@%h",
            "-Q",
            "shots",
            "--without-gossip",
            "--without-mingle",
            *(["--include", ",".join(self.include)] if self.include else []),
        ]
        self._release()  # a restart after kill(): the dead processes' log handle and metrics go
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        # the pool processes' metrics meet in a directory of this worker's own, read by its /metrics
        self._metrics_dir = Path(tempfile.mkdtemp(prefix=f"videoapi-{self.name}-metrics-"))
        # a free port always: several workers share this machine (the local stack, the tests)
        self.metrics_port = free_port()
        observability_env = {
            "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_dir),
            "VIDEOAPI_WORKER_METRICS_PORT": str(self.metrics_port),
        }
        self._process = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.settings.to_env(), **observability_env, **self.extra_env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        app = create_app(self.settings)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise WorkerStartError(f"celery worker exited with code {self._process.returncode}")
                try:
                    replies = app.control.ping(timeout=1.0) or []
                except (OperationalError, RedisConnectionError, OSError):
                    # the broker unreachable for a moment (restarted, a link coming back): ask again
                    app.close()
                    app = create_app(self.settings)
                    time.sleep(0.5)
                    continue
                if any(self.name in next(iter(r)) for r in replies):
                    return self
            raise WorkerStartError(f"celery worker {self.name} did not answer a ping within {timeout_s:.0f}s")
        except BaseException:
            self.stop()
            raise
        finally:
            app.close()

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def alive(self) -> bool:
        """Whether the worker's main process is running."""
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash would."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None

    def terminate(self) -> None:
        """SIGTERM to the main process only, as Kubernetes sends its container's PID 1 at scale-in."""
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int | None:
        """The main process's exit code once it ended within `timeout_s`, else None."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 20.0) -> None:
        process, self._process = self._process, None
        stop_process_group(process, timeout_s)
        self._release()

    def _release(self) -> None:
        """Close the log file and remove the metrics directory of the processes last started."""
        if self._log not in (None, subprocess.DEVNULL) and not isinstance(self._log, int):  # int: only DEVNULL
            self._log.close()
        self._log = None
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            self._metrics_dir = None

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
