"""Requests/s and p50/p99 latency of the API's status and submit endpoints under the local emulator.

The API runs under uvicorn with real Redis and moto S3 (`LocalStack(with_inference=False)`: submitted
jobs just queue up); the load comes from a second process on loopback (`--role load`). Submit is driven twice:
with a source the API stored itself (a direct upload, whose size the API noted) and with one stored straight to S3
(as a presigned upload is: the API asks S3 for its size with a HEAD). Each row also says what
share of the machine's CPU went to the load generator, the API, S3 (moto, in the bench's own process) and Redis,
and how busy the machine was in all (the rest: other programs), since all of them share its cores.
`--baseline DIR` also runs the API from another checkout (an older commit) on the same Redis and S3, the two
measured alternately `--rounds` times, so that old and new are compared under the same load; under Gunicorn
(`--gunicorn-workers`) too, each checkout with its own gunicorn.conf.py.
Run: `python bench/api_load.py [--seconds 10] [--concurrency 16] [--client raw|aiohttp] [--baseline DIR]`; writes
bench/results/api_load-<machine>-<date>.json (bench/envelope.py; `--out` elsewhere), which `python -m bench report`
draws.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import psutil
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False)
ROOT = Path(__file__).resolve().parent.parent


async def _hammer_aiohttp(
    url: str, key: str, endpoint: str, target: str, concurrency: int, seconds: float
) -> tuple[list[float], int]:
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
    return latencies, errors


def _request_bytes(host: str, key: str, endpoint: str, target: str) -> bytes:
    """The one request a raw client sends again and again (HTTP/1.1, kept alive)."""
    if endpoint == "status":
        head, body = f"GET /v1/jobs/{target} HTTP/1.1\r\n", b""
    else:
        body = json.dumps({"source": target}).encode()
        head = f"POST /v1/jobs HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return f"{head}Host: {host}\r\nX-API-Key: {key}\r\n\r\n".encode() + body


async def _hammer_raw(
    url: str, key: str, endpoint: str, target: str, concurrency: int, seconds: float
) -> tuple[list[float], int]:
    # a prepared request written to a kept-alive socket and the answer read by its Content-Length: about a third
    # of aiohttp's CPU per request, so more of the shared cores are left to what is measured
    host, _, port = url.removeprefix("http://").partition(":")
    request = _request_bytes(f"{host}:{port}", key, endpoint, target)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one_user() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                errors += int(head[9:12]) >= 400
        finally:
            writer.close()

    await asyncio.gather(*(one_user() for _ in range(concurrency)))
    return latencies, errors


HAMMERS = {"raw": _hammer_raw, "aiohttp": _hammer_aiohttp}


def _processes(pids: list[int]) -> list[psutil.Process]:
    """The processes with these ids and all their children (Gunicorn's workers, the stack's Redis)."""
    found = []
    for pid in pids:
        process = psutil.Process(pid)
        found += [process, *process.children(recursive=True)]
    return found


def _cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _load(
    url: str,
    key: str,
    endpoint: str,
    target: str,
    seconds: float,
    concurrency: int,
    client: str,
    watched: dict[str, list[psutil.Process]],
) -> dict:
    """Drive one endpoint from a second process; requests, req/s, p50 and p99, and who took the CPU meanwhile."""
    before = {name: _cpu_s(processes) for name, processes in watched.items()}
    busy_before, started = _machine_busy_s(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--role", "load", "--url", url, "--key", key, "--endpoint", endpoint,
         "--target", target, "--seconds", str(seconds), "--concurrency", str(concurrency), "--client", client],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall_s, busy_s = time.perf_counter() - started, _machine_busy_s() - busy_before
    result = json.loads(done.stdout)
    ms = np.array(result["latencies"]) * 1000
    capacity_s = result["seconds"] * (os.cpu_count() or 1)
    # the load generator's own share is of its timed run; the others' of the whole call (its start included)
    shares = {"load generator": result["cpu_s"] / capacity_s}
    shares |= {name: (_cpu_s(watched[name]) - before[name]) / capacity_s for name in watched}
    shares["machine busy"] = busy_s / (wall_s * (os.cpu_count() or 1))
    return {
        "requests": result["count"],
        "requests_per_s": result["count"] / result["seconds"],
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": result["errors"],
        "cpu_share": {name: round(share, 3) for name, share in shares.items()},
        # what a request costs the API, whatever else the machine runs: the figure to compare across loads
        "api_cpu_ms_per_request": shares["API"] * capacity_s / max(1, result["count"]) * 1000,
    }


def _settle(pid: int, quiet_cpu_s: float = 0.05, interval_s: float = 0.5, most_s: float = 60.0) -> None:
    """Wait until the server and its children are idle: Gunicorn answers once its first worker is up, while the
    others still import the app, CPU that would otherwise count to the first endpoint's requests."""
    deadline = time.monotonic() + most_s
    while time.monotonic() < deadline:
        before = _cpu_s(_processes([pid]))
        time.sleep(interval_s)
        if _cpu_s(_processes([pid])) - before < quiet_cpu_s:
            return


@contextmanager
def _server(command: list[str], root: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """An API server started from `root`'s code; its URL and process id while it runs."""
    from local.netutil import free_port, stop_process_group, wait_healthy

    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    env = {**os.environ, **env, "VIDEOAPI_API_BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        problem = wait_healthy(f"{url}/v1/health", process)
        if problem is not None:
            raise RuntimeError(f"{' '.join(command[1:4])} from {root}: {problem}")
        _settle(process.pid)
        yield url, process.pid
    finally:
        stop_process_group(process)


def _uvicorn(root: Path, settings_env: dict[str, str]) -> contextlib.AbstractContextManager[tuple[str, int]]:
    """The API under uvicorn (one process), as the local stack starts it, from `root`'s code."""
    command = [sys.executable, "-m", "uvicorn", "functions.asgi:app", "--host", "127.0.0.1", "--port", "{port}"]
    return _server([*command, "--no-access-log"], root, {**settings_env, "VIDEOAPI_API_METRICS": "true"})


def _gunicorn(
    root: Path, settings_env: dict[str, str], workers: int, metrics_dir: Path
) -> contextlib.AbstractContextManager[tuple[str, int]]:
    """The API under Gunicorn (`root`'s infra/api/gunicorn.conf.py, Uvicorn workers) over the stack's Redis and S3."""
    command = [sys.executable, "-m", "gunicorn", "-c", str(root / "infra/api/gunicorn.conf.py"), "functions.asgi:app"]
    # a metrics directory of its own: Gunicorn empties it at start, and a baseline's Gunicorn runs beside this one
    env = {**settings_env, "VIDEOAPI_API_WORKERS": str(workers), "VIDEOAPI_API_METRICS_PORT": "0",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}  # fmt: skip
    return _server(command, root, env)


def _median(rounds: list[dict]) -> dict:
    """The round with the median requests/s (the lower middle one of an even count)."""
    return sorted(rounds, key=lambda row: row["requests_per_s"])[(len(rounds) - 1) // 2]


@app.command()
def main(
    role: Annotated[str, typer.Option(help="'run' (start the API and drive it) or 'load' (the load process)")] = "run",
    url: str = "",
    key: str = "",
    endpoint: str = "status",
    target: str = "",
    seconds: Annotated[float, typer.Option(help="seconds per endpoint")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="concurrent clients")] = 16,
    client: Annotated[str, typer.Option(help="the load generator: raw (prepared requests) or aiohttp")] = "raw",
    baseline: Annotated[
        Path | None, typer.Option(help="a checkout (e.g. a git worktree of an older commit) measured alternately")
    ] = None,
    rounds: Annotated[int, typer.Option(help="runs of each endpoint (and API); the median one is reported")] = 1,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
    gunicorn_workers: Annotated[str, typer.Option(help="also under Gunicorn with these worker counts")] = "1,2",
    endpoints: Annotated[
        str, typer.Option(help="comma-separated: status, submit, submit-s3 (a source stored straight to S3); all")
    ] = "",
) -> None:
    if role == "load":
        started = time.process_time()
        latencies, errors = asyncio.run(HAMMERS[client](url, key, endpoint, target, concurrency, seconds))
        cpu_s = time.process_time() - started
        if errors:
            print(f"warning: {errors} error responses", file=sys.stderr)
        print(json.dumps({"count": len(latencies), "seconds": seconds, "latencies": latencies, "errors": errors,
                          "cpu_s": cpu_s}))  # fmt: skip
        return

    from local.stack import LocalStack, StackPorts
    from videoapi.adapters.storage import Storage
    from videoapi.client import VideoApiClient
    from videoapi.settings import Settings

    # the server itself is measured: its keys' rate limit and quota are off (as before they existed), so the
    # figures stay comparable with earlier ones
    settings = Settings(client_rate_limit=0, client_max_active_jobs=10**9)
    only = [name.strip() for name in endpoints.split(",") if name.strip()]
    if set(only) - {"status", "submit", "submit-s3"}:
        raise typer.BadParameter(
            f"{endpoints!r}: the endpoints are status, submit and submit-s3", param_hint="--endpoints"
        )
    by_round: dict[str, list[dict]] = {}
    with LocalStack(
        settings, StackPorts(api=0), with_inference=False, write_state=False, on_status=lambda _: None
    ) as stack, contextlib.ExitStack() as servers:  # fmt: skip
        with VideoApiClient(stack.api_url, stack.api_key) as api:
            response = api.http.put(
                "/v1/uploads/direct",
                params={"filename": "tiny.mp4"},
                content=b"\0" * 1024,
                headers={"Content-Type": "video/mp4"},
            )
            source = response.json()["key"]  # stored by the API: a submit of it may skip S3's HEAD
            job_id = api.submit(source)["id"]
            # stored straight to S3 (as a presigned upload is): a submit of it asks S3 for its size
            presigned = api.http.post(
                "/v1/uploads", json={"filename": "tiny.mp4", "content_type": "video/mp4", "size_bytes": 1024}
            ).json()
            Storage.from_settings(stack.settings).put_bytes(presigned["key"], b"\0" * 1024, "video/mp4")
        assert stack._api is not None  # started above
        bench_process = psutil.Process()  # moto's S3 runs in it
        redis = [p for p in bench_process.children(recursive=True) if p.name().startswith("redis")]
        every = {  # the option's name: (the row's, the endpoint, its target)
            "status": ("status", "status", job_id),
            "submit": ("submit", "submit", source),
            "submit-s3": ("submit, S3 upload", "submit", presigned["key"]),
        }
        endpoints = [every[name] for name in only] if only else list(every.values())

        def drive(apis: dict[str, tuple[str, int]], suffix: str = "") -> None:
            """Each endpoint of each API, `rounds` times, the APIs alternately (the machine's other load falls
            on both)."""
            for _ in range(rounds):
                for label, (api_url, pid) in apis.items():
                    watched = {"API": _processes([pid]), "S3 (moto) and bench": [bench_process], "Redis": redis}
                    for name, endpoint, target in endpoints:
                        row = _load(api_url, stack.api_key, endpoint, target, seconds, concurrency, client, watched)
                        by_round.setdefault(f"{name}{suffix}{label}", []).append(row)

        roots = {"": ROOT} | ({", baseline": baseline.resolve()} if baseline is not None else {})
        apis = {"": (stack.api_url, stack._api.pid)}
        if baseline is not None:
            apis[", baseline"] = servers.enter_context(_uvicorn(roots[", baseline"], stack.settings.to_env()))
        drive(apis)
        for workers in [int(w) for w in gunicorn_workers.split(",") if w]:
            with contextlib.ExitStack() as gunicorns, tempfile.TemporaryDirectory() as metrics_dirs:
                apis = {
                    label: gunicorns.enter_context(
                        _gunicorn(root, stack.settings.to_env(), workers, Path(metrics_dirs) / f"api{index}")
                    )
                    for index, (label, root) in enumerate(roots.items())
                }
                drive(apis, f", Gunicorn {workers} worker(s)")
    rows = {name: _median(runs) for name, runs in by_round.items()}
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    table = Table(
        title=f"API under uvicorn (1 process) and Gunicorn, {concurrency} concurrent clients ({client}), "
        f"{seconds:g}s each, median of {rounds} - {machine}; CPU: share of the machine's cores"
    )
    columns = ("endpoint", "requests", "req/s", "p50 ms", "p99 ms", "API CPU ms/req", "req/s a core of API",
               "CPU load gen", "API", "S3+bench")  # fmt: skip
    for column in (*columns, "busy"):
        table.add_column(column, justify="right")
    for endpoint, row in rows.items():
        share = row["cpu_share"]
        table.add_row(
            endpoint,
            str(row["requests"]),
            f"{row['requests_per_s']:.0f}",
            f"{row['p50_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            f"{row['api_cpu_ms_per_request']:.2f}",
            f"{1000 / row['api_cpu_ms_per_request']:.0f}" if row["api_cpu_ms_per_request"] else "-",
            *(f"{share[name]:.0%}" for name in ("load generator", "API", "S3 (moto) and bench", "machine busy")),
        )
    Console(width=170).print(table)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from envelope import checkout_commit, write_result

    parameters = {"seconds": seconds, "concurrency": concurrency, "gunicorn_workers": gunicorn_workers,
                  "client": client, "rounds": rounds, "load_average": os.getloadavg()}  # fmt: skip
    if baseline is not None:
        parameters["baseline_commit"] = checkout_commit(baseline)
    write_result("api_load", parameters, {"results": rows, "rounds": by_round}, out=out)


if __name__ == "__main__":
    app()
