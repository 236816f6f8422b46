"""The dashboard's picture, from real scrapes: the local stack under a few minutes of jobs, plotted.

Starts the local stack (Triton on CPU, one worker), submits a generated clip every few seconds (one in six a
file that is not a video), scrapes the API's, the worker's and Triton's /metrics every 2 s, and draws what
infra/grafana/videoapi-dashboard.json's main panels show, computed the way PromQL's rate() and
histogram_quantile() compute them. Triton on CPU has no GPU utilisation: that panel shows Triton's CPU
utilisation (nv_cpu_utilization) instead.

Run: `python bench/dashboard.py [--seconds 120]` (needs matplotlib, the bench extra); writes
docs/dashboard.png and the scrapes, in bench/envelope.py's envelope, to bench/results/dashboard-scrapes.json
(large: kept out of git by .gitignore; the picture is what is committed).
"""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testset import write_testset_video  # noqa: E402

from local.stack import LocalStack, StackPorts  # noqa: E402
from videoapi.client import VideoApiClient  # noqa: E402
from videoapi.settings import Settings  # noqa: E402

app = typer.Typer(add_completion=False)


def scrape(url: str) -> list[tuple[str, dict, float]]:
    text = httpx.get(url, timeout=5).text
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def total(samples, name: str, **labels) -> float:
    return sum(v for n, found, v in samples if n == name and all(found.get(k) == w for k, w in labels.items()))


def buckets(samples, name: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for n, labels, v in samples:
        if n == f"{name}_bucket":
            le = float(labels["le"])
            out[le] = out.get(le, 0.0) + v
    return out


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """histogram_quantile over the increase between two scrapes (linear within a bucket, as Prometheus does)."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank, lower, below = q * counts[-1], 0.0, 0.0
    for edge, count in zip(edges, counts):
        if count >= rank:
            if math.isinf(edge):
                return lower
            return lower + (edge - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = edge, count
    return lower


@app.command()
def main(
    seconds: Annotated[float, typer.Option(help="how long jobs are submitted")] = 120.0,
    every_s: Annotated[float, typer.Option(help="seconds between submissions")] = 3.0,
    out: Path = Path("docs/dashboard.png"),
    scrapes_out: Path = Path("bench/results/dashboard-scrapes.json"),
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    work = Path(tempfile.mkdtemp(prefix="videoapi-dash-"))
    clips = []
    for n, shots in enumerate((3, 5, 8)):
        clip = work / f"clip{n}.mp4"
        write_testset_video(clip, "cuts", seed=n, shots=shots)
        clips.append(clip)
    bad = work / "not-a-video.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 1000)

    history: list[tuple[float, dict[str, list]]] = []
    stop = threading.Event()
    with LocalStack(Settings(), StackPorts(api=0), write_state=False, on_status=lambda _: None) as stack:
        urls = {
            "api": f"{stack.api_url}/metrics",
            "worker": stack.worker_metrics_urls[0],
            "triton": stack.triton_metrics_url,
        }
        started = time.monotonic()

        def scraper():
            while not stop.wait(2.0):
                point = {}
                for name, url in urls.items():
                    try:
                        point[name] = scrape(url)
                    except httpx.HTTPError:
                        point[name] = []
                history.append((time.monotonic() - started, point))

        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        with VideoApiClient(stack.api_url, stack.api_key) as client:
            keys = [client.upload(c) for c in clips]
            bad_key = client.upload(bad)
            n = 0
            while time.monotonic() - started < seconds:
                client.submit(bad_key if n % 6 == 5 else keys[n % len(keys)])
                n += 1
                time.sleep(every_s)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:  # let the queue drain, and the graphs show it
                jobs = client.http.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
                if all(j["status"] in ("succeeded", "failed") for j in jobs):
                    break
                time.sleep(2)
            time.sleep(10)
        stop.set()
        thread.join()

    from envelope import write_result

    parameters = {"seconds": seconds, "every_s": every_s, "scrape_every_s": 2.0, "picture": str(out)}
    write_result("dashboard-scrapes", parameters, {"scrapes": [{"t": t, **p} for t, p in history]}, out=scrapes_out)
    draw(history, out, plt)
    print(f"written: {out} ({len(history)} scrapes)")


def draw(history, out: Path, plt) -> None:
    window = 5  # scrapes (10 s) per rate
    ts, series = [], {}

    def put(name, value):
        series.setdefault(name, []).append(value)

    for i in range(window, len(history)):
        (t0, a), (t1, b) = history[i - window], history[i]
        dt = t1 - t0
        ts.append(t1)
        for status in ("succeeded", "failed"):
            put(
                f"jobs/s {status}",
                (
                    total(b["worker"], "videoapi_jobs_finished_total", status=status)
                    - total(a["worker"], "videoapi_jobs_finished_total", status=status)
                )
                / dt,
            )
        put("queue depth", total(b["api"], "videoapi_queue_depth"))
        for q in (0.5, 0.95):
            put(
                f"wait p{int(q * 100)}",
                quantile(
                    q,
                    buckets(a["worker"], "videoapi_job_queue_wait_seconds"),
                    buckets(b["worker"], "videoapi_job_queue_wait_seconds"),
                ),
            )
            put(
                f"duration p{int(q * 100)}",
                quantile(
                    q,
                    buckets(a["worker"], "videoapi_job_duration_seconds"),
                    buckets(b["worker"], "videoapi_job_duration_seconds"),
                ),
            )
        put(
            "frames/s worker1",
            (total(b["worker"], "videoapi_frames_total") - total(a["worker"], "videoapi_frames_total")) / dt,
        )
        put("triton CPU utilisation", total(b["triton"], "nv_cpu_utilization"))
        put(
            "triton p95 (worker side)",
            quantile(
                0.95,
                buckets(a["worker"], "videoapi_triton_request_duration_seconds"),
                buckets(b["worker"], "videoapi_triton_request_duration_seconds"),
            ),
        )
    codes = sorted(
        {
            labels["error_code"]
            for n, labels, _ in history[-1][1]["worker"]
            if n == "videoapi_jobs_finished_total" and labels.get("status") == "failed"
        }
    )
    failed_ts = [t for t, _ in history]
    failed = {
        c: [total(p["worker"], "videoapi_jobs_finished_total", status="failed", error_code=c) for _, p in history]
        for c in codes
    }

    plt.style.use("dark_background")
    fig, axes = plt.subplots(2, 3, figsize=(16, 8), constrained_layout=True)
    panels = [
        ("Jobs per second (10 s rate)", ["jobs/s succeeded", "jobs/s failed"], "jobs/s"),
        ("Queue depth and wait", ["queue depth"], "tasks"),
        ("Queue wait (submitted to started)", ["wait p50", "wait p95"], "s"),
        ("Job duration", ["duration p50", "duration p95"], "s"),
        ("Frames per second, per node", ["frames/s worker1"], "frames/s"),
        ("Triton utilisation (CPU here: no GPU)", ["triton CPU utilisation"], "fraction"),
    ]
    for ax, (title, names, unit) in zip(axes.flat, panels):
        for name in names:
            ax.plot(ts, series[name], label=name)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.set_xlabel("seconds")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.2)
    errors_ax = axes.flat[1].twinx()
    for code, values in failed.items():
        errors_ax.step(failed_ts, values, color="tab:red", where="post", label=f"failed: {code}")
    errors_ax.set_ylabel("failed jobs (total)")
    errors_ax.legend(loc="upper right", fontsize=8)
    fig.suptitle("videoapi - the Grafana dashboard's main panels, from real scrapes of the local stack")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    app()
