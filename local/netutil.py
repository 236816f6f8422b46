"""Small helpers for local processes: free loopback ports, waiting for a server's health, and stopping what was
started."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from subprocess import Popen


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]  # (host, port) for AF_INET
        return port


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_healthy(url: str, process: Popen[Any], timeout_s: float = 60.0) -> str | None:
    """Poll `url` until it answers 200: None then, else why not in words (it exited, or the time ran out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"exited with code {process.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return f"not healthy after {timeout_s:.0f}s"


def stop_process_group(process: Popen[Any] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM a process started with start_new_session=True and its whole group; SIGKILL after timeout_s."""
    import os
    import signal
    import subprocess

    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
