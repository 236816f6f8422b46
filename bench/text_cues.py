"""Text cues (EndCredits, OpeningCredits, Slate, StudioLogo) on generated sets, and what the text detector costs.

    python bench/text_cues.py sets --seeds tune|report    # every case of bench/text_cue_set.py: cues vs truth
    python bench/text_cues.py cost [--repeats 3]           # bench/cues.py's 1080p clip: text cues on vs off

`sets` renders each case (cached under bench/results/text-cues-cache/), decodes it as the worker does (PyAV, the
frame-feature taps, the text sampler fed by the same decode) and scores the cues `technical_cues` gives with the
default options: a credits cue is a hit when its start and its end are each within 1 s of the truth; a slate or
a logo is found when a cue of its type overlaps the truth; any of the four cues on a negative case (lower
thirds, subtitles, documentary captions, a title card mid-programme, a score bug), or of another type than the
truth's on a positive one, is false. Thresholds were tuned on TUNE and are reported on REPORT.
`cost` runs the in-process engine's `detect` on bench/cues.py's 1080p clip (with its tone track) with every cue
on, and with every cue but the text cues on (`VIDEOAPI_TEXT_CUES`), alternating, the model loaded once; wall
and CPU time, and the seconds spent inside the text sampler in an instrumented run.
Each writes bench/results/text-cues-sets-<seeds>-... or text-cues-cost-<machine>-<date>.json (bench/envelope.py).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from text_cue_set import KINDS, NEGATIVE, REPORT_SEEDS, TUNE_SEEDS, write_case  # noqa: E402

from videoapi.pipeline.cues import SegmentOptions, technical_cues  # noqa: E402
from videoapi.pipeline.shots import FrameClock  # noqa: E402
from videoapi.pipeline.text_cues import TEXT_CUE_TYPES  # noqa: E402
from videoapi.settings import Settings  # noqa: E402

app = typer.Typer(add_completion=False)
CACHE = Path(__file__).resolve().parent / "results" / "text-cues-cache"
TOLERANCE_S = 1.0


def decoded_arrays(path: Path, settings: Settings) -> tuple[dict[str, Any], FrameClock]:
    """The frame features of one video, decoded as the worker decodes it (one decode, the text sampler tapped)."""
    from videoapi.pipeline.decode import iter_model_frames_pyav
    from videoapi.pipeline.frame_features import FeatureTap, frame_features
    from videoapi.pipeline.probe import probe_timeline

    info, frame_pts = probe_timeline(path)
    tap = FeatureTap(frame_features(settings, info))
    frames = iter_model_frames_pyav(path, frame_pts=frame_pts, audio=tap.audio, tiles=[tap.text])
    for _ in tap.tap(frames, 0):
        pass
    return tap.arrays(), FrameClock(info.fps)


def case(kind: str, seed: int) -> tuple[Path, list[tuple[str, float, float]]]:
    """The cached video of one case and its truth (rendered on first use)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path, truth_path = CACHE / f"{kind}-{seed}.mp4", CACHE / f"{kind}-{seed}.json"
    if not path.exists() or not truth_path.exists():
        truth = write_case(path, kind, seed)
        truth_path.write_text(json.dumps(truth))
    return path, [tuple(t) for t in json.loads(truth_path.read_text())]  # type: ignore[misc]


def score(cues: list[dict[str, Any]], truth: list[tuple[str, float, float]]) -> dict[str, Any]:
    """One case: its true cue's hit, start and end errors, and the false text cues."""
    text = [c for c in cues if c["type"] in TEXT_CUE_TYPES]
    if not truth:
        return {"false": [c["type"] for c in text]}
    kind, start, end = truth[0]
    mine = [c for c in text if c["type"] == kind]
    false = [c["type"] for c in text if c["type"] != kind]
    best = min(mine, key=lambda c: abs(c["start_time"] - start) + abs(c["end_time"] - end), default=None)
    if best is None:
        return {"type": kind, "hit": False, "found": False, "false": false}
    start_error, end_error = best["start_time"] - start, best["end_time"] - end
    found = best["start_time"] < end and best["end_time"] > start
    within = abs(start_error) <= TOLERANCE_S and abs(end_error) <= TOLERANCE_S
    false += [c["type"] for c in mine if c is not best]
    return {
        "type": kind,
        "hit": within if kind.endswith("Credits") else found,
        "found": found,
        "start_error_s": round(start_error, 3),
        "end_error_s": round(end_error, 3),
        "false": false,
    }


@app.command()
def sets(
    seeds: Annotated[str, typer.Option(help="tune (what the rules were chosen on) or report")] = "tune",
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    """Every generated case: the text cues found against the truth."""
    chosen = {"report": REPORT_SEEDS, "tune": TUNE_SEEDS}[seeds]
    settings, options = Settings(technical_cues=True, text_cues=True), SegmentOptions()
    print(f"{seeds.upper()} seeds {chosen}; {settings.text_cue_samples_per_s} samples/s")
    cases: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        for seed in chosen:
            path, truth = case(kind, seed)
            arrays, clock = decoded_arrays(path, settings)
            cues = technical_cues(arrays, clock, options)
            scored = score(cues, truth)
            cases[f"{kind}-{seed}"] = scored
            found = [(c["type"], c["start_time"], round(c["end_time"], 2)) for c in cues if c["type"] in TEXT_CUE_TYPES]
            print(f"  {kind} {seed}: truth {truth} found {found} -> {scored}")
    by_type: dict[str, dict[str, Any]] = {}
    for kind in TEXT_CUE_TYPES:
        mine = [c for c in cases.values() if c.get("type") == kind]
        errors = [abs(c[e]) for c in mine for e in ("start_error_s", "end_error_s") if e in c]
        by_type[kind] = {
            "cases": len(mine),
            "hits": sum(c["hit"] for c in mine),
            "hit_rate": round(sum(c["hit"] for c in mine) / len(mine), 3) if mine else None,
            "median_abs_error_s": round(statistics.median(errors), 3) if errors else None,
            "max_abs_error_s": round(max(errors), 3) if errors else None,
        }
    negatives = {k: v for k, v in cases.items() if k.rsplit("-", 1)[0] in NEGATIVE}
    false_on_negatives = Counter(t for c in negatives.values() for t in c["false"])
    false_on_positives = Counter(t for k, c in cases.items() if k not in negatives for t in c["false"])
    credits_true = sum(c["hit"] for c in cases.values() if str(c.get("type", "")).endswith("Credits"))
    credits_false = sum(n for t, n in (false_on_negatives + false_on_positives).items() if t.endswith("Credits"))
    precision = credits_true / (credits_true + credits_false) if credits_true + credits_false else None
    for kind, figures in by_type.items():
        print(f"{kind}: {figures}")
    print(f"negative cases {len(negatives)}: false cues {dict(false_on_negatives)}")
    print(f"false cues on positive cases (another type than the truth's): {dict(false_on_positives)}")
    print(f"credits precision (hits over hits and false credits cues): {precision}")
    from envelope import write_result

    parameters = {"seeds": seeds, "sets": list(chosen), "kinds": list(KINDS), "tolerance_s": TOLERANCE_S}
    parameters["samples_per_s"] = settings.text_cue_samples_per_s
    figures = {
        "by_type": by_type,
        "negative_cases": len(negatives),
        "false_on_negatives": dict(false_on_negatives),
        "false_on_positives": dict(false_on_positives),
        "credits_precision": precision,
        "cases": cases,
    }
    write_result(f"text-cues-sets-{seeds}", parameters, figures, out=out)


@app.command()
def cost(
    repeats: Annotated[int, typer.Option(help="runs of each arm, alternating")] = 3,
    shots: Annotated[int, typer.Option(help="shots in the 1080p clip, as bench/speed.py")] = 24,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    """End-to-end `Detector.detect` on the 1080p clip with every cue on, and with the text cues off, alternating."""
    from cues import alternate, clip_with_sound

    import videoapi.pipeline.text_cues as text_cues
    from videoapi.pipeline.engine import Detector

    with tempfile.TemporaryDirectory() as tmp:
        clip = clip_with_sound(Path(tmp), shots)
        on = Detector(Settings(technical_cues=True, text_cues=True))
        off = Detector(Settings(technical_cues=True, text_cues=False), model=on.model)
        none = Detector(Settings(technical_cues=True, text_cues=True), model=on.model)
        asked_none = SegmentOptions(segment_types=("SHOT",))
        on.detect(clip)  # warm-up: model compile, the detector's load, caches
        arms = {"text cues off": (off, None), "every cue on": (on, None), "SHOT only asked": (none, asked_none)}
        wall, cpu_s, documents = alternate(arms, clip, repeats)
        spent = {"seconds": 0.0, "samples": 0}
        figures_of = text_cues.text_figures

        def timed(bgr: Any) -> Any:
            began = time.perf_counter()
            try:
                return figures_of(bgr)
            finally:
                spent["seconds"] += time.perf_counter() - began
                spent["samples"] += 1

        text_cues.text_figures = timed  # type: ignore[assignment]
        try:
            began = time.perf_counter()
            on.detect(clip)
            run_s = time.perf_counter() - began
        finally:
            text_cues.text_figures = figures_of  # type: ignore[assignment]
        frames = documents["every cue on"]["video"]["frame_count"]
        medians = {label: statistics.median(v) for label, v in cpu_s.items()}
        wall_medians = {label: statistics.median(v) for label, v in wall.items()}
        share_cpu = 1 - medians["text cues off"] / medians["every cue on"]
        share_wall = 1 - wall_medians["text cues off"] / wall_medians["every cue on"]
        for label in arms:
            print(f"{label:<16} wall {wall_medians[label]:6.2f} s  CPU {medians[label]:6.2f} s  runs {wall[label]}")
        print(
            f"text cues' share of end-to-end time with every cue on: CPU {100 * share_cpu:.1f}%, "
            f"wall {100 * share_wall:.1f}%"
        )
        print(f"inside one instrumented run of {run_s:.2f} s: {spent['samples']} samples, {spent['seconds']:.2f} s")
        assert documents["every cue on"]["shots"] == documents["text cues off"]["shots"], "shots differ with the taps"
    from envelope import write_result

    figures = {
        "frames": frames,
        "wall_s": wall,
        "cpu_s": cpu_s,
        "median_wall_s": wall_medians,
        "median_cpu_s": medians,
        "text_share_of_cpu": round(share_cpu, 4),
        "text_share_of_wall": round(share_wall, 4),
        "inside_one_run": {"run_s": run_s, "sampler_s": spent["seconds"], "samples": spent["samples"]},
    }
    parameters = {"repeats": repeats, "shots": shots, "size": "1920x1080"}
    parameters["samples_per_s"] = Settings().text_cue_samples_per_s
    write_result("text-cues-cost", parameters, figures, out=out)


if __name__ == "__main__":
    app()
