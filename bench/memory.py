"""Worker memory against video length: peak RSS of the Celery worker's processes for a 10-minute and a
60-minute video (25 fps), each run as a job on the local stack (one worker, one task at a time).

Run: `python bench/memory.py [--minutes 10,60]`; writes bench/results/memory-<machine>-<date>.json
(bench/envelope.py; `--out` elsewhere), which `python -m bench report` draws.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import psutil
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local.stack import LocalStack, StackPorts
from local.synthetic import write_video
from videoapi.client import VideoApiClient
from videoapi.settings import Settings


def worker_processes() -> list[psutil.Process]:
    """This process's Celery worker descendants (main process and pool)."""
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if "celery" in " ".join(p.cmdline()) and "worker" in " ".join(p.cmdline())
    ]


def main(
    minutes: Annotated[str, typer.Option(help="video lengths in minutes")] = "10,60",
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="videoapi-memory-"))
    rows = []
    stack = LocalStack(Settings(), StackPorts(api=0), worker_concurrency=1, write_state=False, on_status=lambda _: None)
    stack.start()
    try:
        with VideoApiClient(stack.api_url, stack.api_key) as client:
            for length in (int(m) for m in minutes.split(",")):
                frames = length * 60 * 25
                video = work / f"{length}min.mp4"
                shot = 250
                write_video(video, [shot] * (frames // shot), fps=25, width=320, height=180, seed=length)
                peaks: dict[int, int] = {}
                running = threading.Event()

                def sample(peaks: dict = peaks, running: threading.Event = running) -> None:
                    while not running.is_set():
                        for process in worker_processes():
                            try:
                                peaks[process.pid] = max(peaks.get(process.pid, 0), process.memory_info().rss)
                            except psutil.NoSuchProcess:
                                pass
                        time.sleep(0.5)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                started = time.perf_counter()
                job = client.submit(client.upload(video))
                done = client.wait(job["id"], poll_s=1.0, timeout_s=7200)
                elapsed = time.perf_counter() - started
                running.set()
                sampler.join()
                assert done["status"] == "succeeded", done
                pool = sorted(peaks.values())
                rows.append(
                    {
                        "minutes": length,
                        "frames": frames,
                        "file_mb": round(video.stat().st_size / 1e6, 1),
                        "seconds": round(elapsed, 1),
                        "fps": round(frames / elapsed, 1),
                        "peak_rss_mb_per_process": [round(v / 2**20) for v in pool],
                        "peak_rss_mb_largest": round(pool[-1] / 2**20),
                    }
                )
                console.print(rows[-1])
                video.unlink()
    finally:
        stack.stop()
    table = Table(title="worker peak RSS (main process and pool; 1 task at a time)")
    for column in ("video", "frames", "job s", "frames/s", "largest process MiB", "all processes MiB"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['minutes']} min",
            f"{row['frames']:,}",
            str(row["seconds"]),
            str(row["fps"]),
            str(row["peak_rss_mb_largest"]),
            ", ".join(map(str, row["peak_rss_mb_per_process"])),
        )
    console.print(table)
    from envelope import write_result

    write_result("memory", {"minutes": minutes, "worker_concurrency": 1}, {"runs": rows}, out=out)


if __name__ == "__main__":
    typer.run(main)
