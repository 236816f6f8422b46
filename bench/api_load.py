"""Requests/s and p50/p99 latency of the API's status and submit endpoints under the local emulator.

The API runs under uvicorn with real Redis and moto S3 (`LocalStack(with_inference=False)`: submitted
jobs just queue up); the load comes from a second process on loopback (`--role load`).
Run: `python bench/api_load.py [--seconds 10] [--concurrency 16]`; writes bench/results/api_load-<machine>-<date>.json
(bench/envelope.py; `--out` elsewhere), which `python -m bench report` draws.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False)


async def _hammer(url: str, key: str, endpoint: str, target: str, concurrency: int, seconds: float) -> list[float]:
    # aiohttp, not httpx: the load shares the machine's cores with the server, and aiohttp's client costs a
    # request about a third of httpx's CPU, which would otherwise be taken from the server being measured
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url=url, headers={"X-API-Key": key}, connector=connector) as client:
        deadline = time.perf_counter() + seconds

        async def one_user() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if endpoint == "status":
                    request = client.get(f"/v1/jobs/{target}")
                else:
                    request = client.post("/v1/jobs", json={"source": target})
                async with request as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                errors += response.status >= 400

        await asyncio.gather(*(one_user() for _ in range(concurrency)))
    if errors:
        print(f"warning: {errors} error responses", file=sys.stderr)
    return latencies


def _load(url: str, key: str, endpoint: str, target: str, seconds: float, concurrency: int) -> dict:
    """Drive one endpoint from a second process; requests, req/s, p50 and p99."""
    done = subprocess.run(
        [sys.executable, __file__, "--role", "load", "--url", url, "--key", key, "--endpoint", endpoint,
         "--target", target, "--seconds", str(seconds), "--concurrency", str(concurrency)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    ms = np.array(result["latencies"]) * 1000
    return {
        "requests": result["count"],
        "requests_per_s": result["count"] / result["seconds"],
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


@contextmanager
def _gunicorn(settings_env: dict[str, str], workers: int) -> Iterator[str]:
    """The API under Gunicorn (infra/api/gunicorn.conf.py, Uvicorn workers) over the stack's Redis and S3."""
    from local.netutil import free_port, stop_process_group, wait_healthy

    port = free_port()
    env = {**os.environ, **settings_env, "VIDEOAPI_API_BIND": f"127.0.0.1:{port}",
           "VIDEOAPI_API_WORKERS": str(workers), "VIDEOAPI_API_METRICS_PORT": "0"}  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(root / "infra/api/gunicorn.conf.py"), "functions.asgi:app"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        problem = wait_healthy(f"{url}/v1/health", process)
        if problem is not None:
            raise RuntimeError(f"gunicorn {problem}")
        yield url
    finally:
        stop_process_group(process)


@app.command()
def main(
    role: Annotated[str, typer.Option(help="'run' (start the API and drive it) or 'load' (the load process)")] = "run",
    url: str = "",
    key: str = "",
    endpoint: str = "status",
    target: str = "",
    seconds: Annotated[float, typer.Option(help="seconds per endpoint")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="concurrent clients")] = 16,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
    gunicorn_workers: Annotated[str, typer.Option(help="also status under Gunicorn with these worker counts")] = "1,2",
) -> None:
    if role == "load":
        latencies = asyncio.run(_hammer(url, key, endpoint, target, concurrency, seconds))
        print(json.dumps({"count": len(latencies), "seconds": seconds, "latencies": latencies}))
        return

    from local.stack import LocalStack, StackPorts
    from videoapi.client import VideoApiClient
    from videoapi.settings import Settings

    rows = {}
    # the server itself is measured: its keys' rate limit and quota are off (as before they existed), so the
    # figures stay comparable with earlier ones
    settings = Settings(client_rate_limit=0, client_max_active_jobs=10**9)
    with LocalStack(
        settings, StackPorts(api=0), with_inference=False, write_state=False, on_status=lambda _: None
    ) as stack:
        with VideoApiClient(stack.api_url, stack.api_key) as client:
            response = client.http.put(
                "/v1/uploads/direct",
                params={"filename": "tiny.mp4"},
                content=b"\0" * 1024,
                headers={"Content-Type": "video/mp4"},
            )
            source = response.json()["key"]
            job_id = client.submit(source)["id"]
        for endpoint, target in (("status", job_id), ("submit", source)):
            rows[endpoint] = _load(stack.api_url, stack.api_key, endpoint, target, seconds, concurrency)
        for workers in [int(w) for w in gunicorn_workers.split(",") if w]:
            with _gunicorn(stack.settings.to_env(), workers) as url:
                rows[f"status, Gunicorn {workers} worker(s)"] = _load(
                    url, stack.api_key, "status", job_id, seconds, concurrency
                )
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    table = Table(
        title=f"API under uvicorn (1 process) and Gunicorn, {concurrency} concurrent clients, {seconds:g}s each - "
        f"{machine}"
    )
    for column in ("endpoint", "requests", "req/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for endpoint, row in rows.items():
        table.add_row(
            endpoint,
            str(row["requests"]),
            f"{row['requests_per_s']:.0f}",
            f"{row['p50_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
        )
    Console().print(table)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from envelope import write_result

    parameters = {"seconds": seconds, "concurrency": concurrency, "gunicorn_workers": gunicorn_workers}
    write_result("api_load", parameters, {"results": rows}, out=out)


if __name__ == "__main__":
    app()
