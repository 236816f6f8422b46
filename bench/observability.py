"""What metrics and tracing cost: end to end on bench/speed.py's clip, and the status endpoint's throughput.

Each figure is taken twice in one run, side by side: with tracing off and nothing scraping ("off"), and with
tracing on in the API and the workers (every span exported, as JSON lines to a file through the same
BatchSpanProcessor an OTLP exporter uses) while /metrics of the API and the worker are scraped every second
("on"). Prometheus counters are recorded in both (they have no off switch; a sample costs about a microsecond
and a job records a few dozen). Arms alternate (off, on, off, on, ...) to spread the noise of a shared machine.

Run: `python bench/observability.py [--shots 8] [--repeats 3] [--seconds 10] [--scrape-every 1]`; writes
bench/results/observability[-PARTS]-<machine>-<date>.json (bench/envelope.py; `--out` elsewhere).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testset import write_testset_video  # noqa: E402

from local.stack import LocalStack, StackPorts  # noqa: E402
from videoapi.client import VideoApiClient  # noqa: E402
from videoapi.observability.tracing import TRACE_FILE_ENV  # noqa: E402
from videoapi.settings import Settings  # noqa: E402

app = typer.Typer(add_completion=False)


@contextmanager
def arm(on: bool, work: Path):
    """Tracing on (a trace file) for the processes the stack starts now, or off."""
    if on:
        os.environ[TRACE_FILE_ENV] = str(work / "spans.jsonl")
    try:
        yield
    finally:
        os.environ.pop(TRACE_FILE_ENV, None)


@contextmanager
def scraping(urls: list[str], interval_s: float = 1.0):
    """Scrape every URL each interval in a thread, as Prometheus would."""
    stop = threading.Event()

    def loop():
        while not stop.wait(interval_s):
            for url in urls:
                try:
                    httpx.get(url, timeout=5)
                except httpx.HTTPError:
                    pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def end_to_end(clip: Path, on: bool, work: Path, scrape_every_s: float = 1.0) -> float:
    with arm(on, work):
        stack = LocalStack(Settings(), StackPorts(api=0), write_state=False, on_status=lambda _: None).start()
    try:
        urls = [f"{stack.api_url}/metrics", *stack.worker_metrics_urls] if on else []
        with VideoApiClient(stack.api_url, stack.api_key) as client, scraping(urls, scrape_every_s):
            key = client.upload(clip)
            started = time.perf_counter()
            job = client.submit(key)
            done = client.wait(job["id"], poll_s=0.1, timeout_s=3600)
            assert done["status"] == "succeeded", done
            return time.perf_counter() - started
    finally:
        stack.stop()


def status_throughput(on: bool, work: Path, seconds: float, concurrency: int) -> float:
    with arm(on, work):
        stack = LocalStack(
            Settings(), StackPorts(api=0), with_inference=False, write_state=False, on_status=lambda _: None
        ).start()
    try:
        with VideoApiClient(stack.api_url, stack.api_key) as client:
            response = client.http.put(
                "/v1/uploads/direct",
                params={"filename": "tiny.mp4"},
                content=b"\0" * 1024,
                headers={"Content-Type": "video/mp4"},
            )
            job_id = client.submit(response.json()["key"])["id"]
        load = [sys.executable, str(Path(__file__).parent / "api_load.py"), "--role", "load", "--url", stack.api_url]
        load += ["--key", stack.api_key, "--endpoint", "status", "--target", job_id]
        load += ["--seconds", str(seconds), "--concurrency", str(concurrency)]
        with scraping([f"{stack.api_url}/metrics"] if on else []):
            result = json.loads(subprocess.run(load, capture_output=True, text=True, check=True).stdout)
        return result["count"] / result["seconds"]
    finally:
        stack.stop()


@app.command()
def main(
    shots: Annotated[int, typer.Option(help="shots in speed.py's 1080p clip (~85 frames each)")] = 8,
    repeats: Annotated[int, typer.Option(help="runs per arm")] = 3,
    seconds: Annotated[float, typer.Option(help="seconds of status load per run")] = 10.0,
    concurrency: int = 16,
    parts: Annotated[str, typer.Option(help="what to measure: end_to_end_s, status_rps or both")] = "both",
    scrape_every: Annotated[
        float, typer.Option(help="seconds between scrapes of /metrics (Prometheus' default is 60, common: 15-30)")
    ] = 1.0,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="videoapi-obs-"))
    clip = work / "clip1080.mp4"
    if parts != "status_rps":
        write_testset_video(clip, "cuts", seed=7, shots=shots, width=1920, height=1080)
    runs: dict[str, dict[str, list[float]]] = {name: {"off": [], "on": []} for name in ("end_to_end_s", "status_rps")}
    wanted = {"end_to_end_s", "status_rps"} if parts == "both" else {parts}
    runs = {name: arms for name, arms in runs.items() if name in wanted}
    for _ in range(repeats if "end_to_end_s" in wanted else 0):
        for on in (False, True):
            runs["end_to_end_s"]["on" if on else "off"].append(end_to_end(clip, on, work, scrape_every))
    for _ in range(repeats if "status_rps" in wanted else 0):
        for on in (False, True):
            runs["status_rps"]["on" if on else "off"].append(status_throughput(on, work, seconds, concurrency))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    table = Table(title=f"metrics + tracing off vs on, median of {repeats} alternating runs - {machine}")
    for column in ("figure", "off", "on", "cost", "runs off", "runs on"):
        table.add_column(column, justify="right")
    summary = {}
    for name, arms in runs.items():
        off, on = statistics.median(arms["off"]), statistics.median(arms["on"])
        cost = (on - off) / off if name == "end_to_end_s" else (off - on) / off
        summary[name] = {"off": off, "on": on, "cost": cost, "runs": arms}
        table.add_row(
            name,
            f"{off:.2f}",
            f"{on:.2f}",
            f"{100 * cost:+.1f}%",
            " ".join(f"{v:.1f}" for v in arms["off"]),
            " ".join(f"{v:.1f}" for v in arms["on"]),
        )
    Console().print(table)
    from envelope import write_result

    if out is not None and parts != "both":
        out = out.with_name(f"{out.stem}-{parts}{out.suffix}")
    parameters = {"shots": shots, "repeats": repeats, "seconds": seconds, "concurrency": concurrency}
    parameters |= {"parts": parts, "scrape_every_s": scrape_every}
    bench = "observability" if parts == "both" else f"observability-{parts}"
    write_result(bench, parameters, {"results": summary}, out=out)


if __name__ == "__main__":
    app()
