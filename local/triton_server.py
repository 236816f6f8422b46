"""Start and stop a real `tritonserver` (from the nvidia-pytriton wheel) over model_repository/.

The wheel ships the server binary, its shared libraries and the Python backend;
this module assembles a backend directory with the stub matching the running
Python and starts the server on loopback ports.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread
from typing import Any

from local.netutil import free_port, port_is_open, stop_process_group
from videoapi.errors import StartError


class TritonStartError(StartError):
    """tritonserver could not be found, started, or did not become ready."""


def _pytriton_root() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonStartError("tritonserver not found: install the 'serve' extra (pip install nvidia-pytriton)")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class TritonBinary:
    """Where the wheel keeps the server, its libraries and the Python backend."""

    server: Path
    libs: Path
    python_backend: Path
    stub: Path

    @classmethod
    def locate(cls) -> TritonBinary:
        root = _pytriton_root()
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        found = cls(
            server=root / "tritonserver" / "bin" / "tritonserver",
            libs=root.parent / "nvidia_pytriton.libs",
            python_backend=root / "tritonserver" / "backends" / "python",
            stub=root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
        )
        for path in (found.server, found.libs, found.python_backend / "libtriton_python.so", found.stub):
            if not path.exists():
                raise TritonStartError(f"tritonserver install incomplete: {path} is missing (Python {version})")
        return found

    def make_backend_dir(self, into: Path) -> Path:
        """A --backend-directory whose python/ holds the backend and the stub for this Python."""
        python = into / "python"
        python.mkdir(parents=True, exist_ok=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy2(self.python_backend / name, python / name)
        shutil.copy2(self.stub, python / "triton_python_backend_stub")
        return into

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The stub embeds libpython: prefer the running interpreter's own, and let it
        # import this environment's packages (numpy, onnxruntime).
        libdirs = [str(self.libs), sysconfig.get_config_var("LIBDIR") or ""]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in [*libdirs, env.get("LD_LIBRARY_PATH", "")] if p)
        # The embedded interpreter ignores PYTHONPATH; it finds its prefix (and so a
        # virtual environment's site-packages) from the first `python3` on PATH.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.pop("PYTHONHOME", None)
        return env


@dataclass
class TritonServer:
    """A tritonserver process on loopback; use as a context manager or call start()/stop()."""

    model_repository: Path
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    host: str = "127.0.0.1"
    model_config_name: str | None = None
    startup_timeout_s: float = 180.0
    extra_args: list[str] = field(default_factory=list)
    command_prefix: list[str] = field(default_factory=list)  # e.g. `ip netns exec NAME`: run it on another host
    _process: subprocess.Popen[str] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    _log: deque[Any] = field(default_factory=lambda: deque(maxlen=200), init=False, repr=False)

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(list(self._log)[-lines:])

    def failure_reason(self) -> str:
        """The model-load errors from the server's log, or its last lines when there are none."""
        reasons = [
            line.split("] ", 1)[-1].strip('"').split("\\n")[0]
            for line in self._log
            if line.startswith("E") and ("failed to load" in line or "creating server" in line)
        ]
        reasons += [line for line in self._log if line.startswith("error:")]
        return "\n".join(dict.fromkeys(reasons)) or self.log_tail()

    def start(self) -> TritonServer:
        """Start the server and wait until its models are ready."""
        return self.launch().wait_ready()

    def launch(self) -> TritonServer:
        """Start the server without waiting for it (wait_ready() does): its ports are known from here on."""
        repo = Path(self.model_repository)
        if not repo.is_dir():
            raise TritonStartError(f"model repository not found: {repo}")
        binary = TritonBinary.locate()
        for attr in ("http_port", "grpc_port", "metrics_port"):
            port = getattr(self, attr)
            if port == 0:
                setattr(self, attr, free_port(self.host))
            elif port_is_open(self.host, port):
                raise TritonStartError(f"port {port} ({attr}) is already in use")
        self._tmp = tempfile.TemporaryDirectory(prefix="videoapi-triton-")
        backends = binary.make_backend_dir(Path(self._tmp.name) / "backends")
        args = [
            *self.command_prefix,
            str(binary.server),
            f"--model-repository={repo.resolve()}",
            f"--backend-directory={backends}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--strict-readiness=true",
            "--exit-on-error=true",
            *self.extra_args,
        ]
        if self.model_config_name:
            args.append(f"--model-config-name={self.model_config_name}")
        self._process = subprocess.Popen(
            args,
            env=binary.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # so stop() can end the stub processes with the server
        )
        Thread(target=self._pump, daemon=True).start()
        return self

    def wait_ready(self) -> TritonServer:
        """Wait for a launched server's models to be ready; stops it and raises TritonStartError if they are not."""
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        """Whether tritonserver is running (the local stack's supervisor asks)."""
        return self._process is not None and self._process.poll() is None

    def _pump(self) -> None:
        assert self._process and self._process.stdout
        for line in self._process.stdout:
            self._log.append(line.rstrip())

    def _wait_ready(self) -> None:
        import urllib.error
        import urllib.request

        assert self._process is not None  # start() started it just before
        url = f"http://{self.http_url}/v2/health/ready"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                time.sleep(0.2)  # let the pump read the last lines
                raise TritonStartError(
                    f"tritonserver exited with code {self._process.returncode}: {self.failure_reason()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise TritonStartError(f"tritonserver not ready after {self.startup_timeout_s:.0f}s: {self.failure_reason()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        process, self._process = self._process, None
        stop_process_group(process, timeout_s)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
