"""Text cues (EndCredits, OpeningCredits, Slate, StudioLogo) on generated sets, and what the text detector costs.

Over 300 lines because its three commands (generated sets, real clips, cost) share the decode and the scoring.

    python bench/text_cues.py sets --seeds tune|report    # every case of bench/text_cue_set.py: cues vs truth
    python bench/text_cues.py cost [--repeats 3]           # bench/cues.py's 1080p clip: text cues on vs off
    python bench/text_cues.py real [--local DIR]           # real clips labelled by eye (bench/text_cue_real.py)

`sets` renders each case (cached under bench/results/text-cues-cache/), decodes it as the worker does (PyAV, the
frame-feature taps, the text sampler fed by the same decode) and scores the cues `technical_cues` gives with the
default options: a credits cue is a hit when its start and its end are each within 1 s of the truth; a slate or
a logo is found when a cue of its type overlaps the truth; any of the four cues on a negative case (lower
thirds, subtitles, documentary captions, a title card mid-programme, a score bug, text typed on a screen, text
filmed in the picture, captions over the picture from the start), or of another type than the truth's on a
positive one, is false. Thresholds were tuned on TUNE and are reported on REPORT.
`cost` runs the in-process engine's `detect` on bench/cues.py's 1080p clip (with its tone track) with every cue
on, and with every cue but the text cues on (`VIDEOAPI_TEXT_CUES`), alternating, the model loaded once; wall
and CPU time; a third arm has the sampler as the first cost runs had it (`sampler_as_before`: 320x192, the
detector in the decode's loop), so that both are measured under the same load; the seconds (and the detector
thread's CPU seconds) spent inside the text sampler in an instrumented run; and the load average (1, 5 and 15
minutes) before and after the runs.
`real` scores the same cues on real clips labelled by eye (bench/realset-cues/): each true cue hit or missed as in
`sets`, any other text cue false unless it overlaps a span labelled as neither (an advert's end cards).
Each writes bench/results/text-cues-{sets-<seeds>,cost,real}-<machine>-<date>.json (bench/envelope.py).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
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
BEFORE = "every cue on, sampler as before"  # the cost arm with the first runs' sampler (sampler_as_before)
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


@contextmanager
def sampler_as_before() -> Iterator[None]:
    """The text sampler as the first cost runs had it: the picture 320x192 for 16:9 (the height to the nearest
    multiple of 32) and the detector in the decode's own loop."""
    import videoapi.pipeline.text_cues as text_cues

    size, add = text_cues.text_tile_size, text_cues.TextSampler.add

    def nearest(width: int, height: int) -> tuple[int, int]:
        return text_cues.TEXT_WIDTH, max(32, round(text_cues.TEXT_WIDTH * height / max(width, 1) / 32) * 32)

    def in_line(self: Any, index: int, bgr: Any) -> None:
        done: Future[Any] = Future()
        done.set_result(text_cues.text_figures(bgr))
        self.pending[index] = done

    text_cues.text_tile_size, text_cues.TextSampler.add = nearest, in_line  # type: ignore[method-assign]
    try:
        yield
    finally:
        text_cues.text_tile_size, text_cues.TextSampler.add = size, add  # type: ignore[method-assign]


@app.command()
def cost(
    repeats: Annotated[int, typer.Option(help="runs of each arm, alternating")] = 3,
    shots: Annotated[int, typer.Option(help="shots in the 1080p clip, as bench/speed.py")] = 24,
    before: Annotated[bool, typer.Option(help="also the sampler as before (320x192, in the decode's loop)")] = True,
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
        asked_none = SegmentOptions(segment_types=("SHOT",))
        on.detect(clip)  # warm-up: model compile, the detector's load, caches
        load_before = os.getloadavg()  # the machine's load (other work shares the cores): said with the figures
        arms: dict[str, tuple[Any, SegmentOptions | None]] = {"text cues off": (off, None), "every cue on": (on, None)}
        if before:
            arms[BEFORE] = (on, None)
        arms["SHOT only asked"] = (on, asked_none)
        wall, cpu_s, documents = alternate(arms, clip, repeats, within={BEFORE: sampler_as_before})
        spent = {"seconds": 0.0, "cpu_seconds": 0.0, "samples": 0}
        figures_of = text_cues.text_figures

        def timed(bgr: Any) -> Any:
            began, began_cpu = time.perf_counter(), time.thread_time()  # the detector's thread's own CPU
            try:
                return figures_of(bgr)
            finally:
                spent["seconds"] += time.perf_counter() - began
                spent["cpu_seconds"] += time.thread_time() - began_cpu
                spent["samples"] += 1

        text_cues.text_figures = timed  # type: ignore[assignment]
        try:
            began, began_cpu = time.perf_counter(), time.process_time()
            on.detect(clip)
            run_s, run_cpu_s = time.perf_counter() - began, time.process_time() - began_cpu
        finally:
            text_cues.text_figures = figures_of  # type: ignore[assignment]
        frames = documents["every cue on"]["video"]["frame_count"]
        medians = {label: statistics.median(v) for label, v in cpu_s.items()}
        wall_medians = {label: statistics.median(v) for label, v in wall.items()}
        shares = {
            arm: {
                "cpu": round(1 - medians["text cues off"] / medians[arm], 4),
                "wall": round(1 - wall_medians["text cues off"] / wall_medians[arm], 4),
            }
            for arm in ("every cue on", BEFORE)
            if arm in arms
        }
        for label in arms:
            print(f"{label:<28} wall {wall_medians[label]:6.2f} s  CPU {medians[label]:6.2f} s  runs {wall[label]}")
        for arm, share in shares.items():
            print(
                f"text cues' share of end-to-end time, {arm}: "
                f"CPU {100 * share['cpu']:.1f}%, wall {100 * share['wall']:.1f}%"
            )
        print(
            f"inside one instrumented run of {run_s:.2f} s ({run_cpu_s:.2f} s CPU): {spent['samples']} samples, "
            f"{spent['seconds']:.2f} s, {spent['cpu_seconds']:.2f} s CPU"
        )
        for label in arms:
            assert documents[label]["shots"] == documents["text cues off"]["shots"], f"shots differ: {label}"
    from envelope import write_result

    figures = {
        "frames": frames,
        "wall_s": wall,
        "cpu_s": cpu_s,
        "median_wall_s": wall_medians,
        "median_cpu_s": medians,
        "text_share_of_cpu": shares["every cue on"]["cpu"],
        "text_share_of_wall": shares["every cue on"]["wall"],
        "shares": shares,
        "inside_one_run": {
            "run_s": run_s,
            "run_cpu_s": run_cpu_s,
            "sampler_s": spent["seconds"],
            "sampler_cpu_s": spent["cpu_seconds"],
            "samples": spent["samples"],
        },
        "load_average": {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()]},
    }
    parameters = {"repeats": repeats, "shots": shots, "size": "1920x1080", "before": before}
    parameters["samples_per_s"] = Settings().text_cue_samples_per_s
    write_result("text-cues-cost", parameters, figures, out=out)


def score_real(
    cues: list[dict[str, Any]], truth: list[dict[str, Any]], unscored: list[dict[str, Any]], clock: FrameClock
) -> dict[str, Any]:
    """One real clip: each true cue hit or missed (as `score` judges), the text cues matching none (false ones),
    and those overlapping an unscored span (neither)."""
    text = [c for c in cues if c["type"] in TEXT_CUE_TYPES]
    matched: set[int] = set()
    judged = []
    for true in truth:
        start, end = clock.time(true["start"]), clock.end_time(true["end"])
        scored = score([c for i, c in enumerate(text) if i not in matched], [(true["type"], start, end)])
        scored.pop("false")
        if scored["found"]:
            best = min(
                (i for i, c in enumerate(text) if i not in matched and c["type"] == true["type"]),
                key=lambda i: abs(text[i]["start_time"] - start) + abs(text[i]["end_time"] - end),
            )
            matched.add(best)
        judged.append({"truth": [true["type"], round(start, 3), round(end, 3)], **scored})
    rest = [c for i, c in enumerate(text) if i not in matched]

    def on_unscored(cue: dict[str, Any]) -> bool:
        return any(cue["start_frame"] <= span["end"] and cue["end_frame"] >= span["start"] for span in unscored)

    return {
        "truth": judged,
        "false": [[c["type"], c["start_time"], round(c["end_time"], 3)] for c in rest if not on_unscored(c)],
        "on_unscored": [[c["type"], c["start_time"], round(c["end_time"], 3)] for c in rest if on_unscored(c)],
    }


@app.command()
def real(
    local: Annotated[Path | None, typer.Option(help="a folder of clips already fetched (bench/realset.py)")] = None,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    """Real footage labelled by eye (bench/text_cue_real.py): the text cues found against the labels."""
    from realset import fetch_clip
    from text_cue_real import load

    settings, options = Settings(technical_cues=True, text_cues=True), SegmentOptions()
    clips: dict[str, dict[str, Any]] = {}
    for labelled in load():
        path = fetch_clip(labelled.clip, local)
        arrays, clock = decoded_arrays(path, settings)
        scored = score_real(technical_cues(arrays, clock, options), labelled.cues, labelled.unscored, clock)
        clips[labelled.clip.id] = scored
        print(f"  {labelled.clip.id}: {scored}")
    truths = [t for c in clips.values() for t in c["truth"]]
    by_type = {}
    for kind in TEXT_CUE_TYPES:
        mine = [t for t in truths if t["truth"][0] == kind]
        if mine:
            by_type[kind] = {
                "cases": len(mine),
                "hits": sum(t["hit"] for t in mine),
                "found": sum(t["found"] for t in mine),
            }
    false = Counter(f[0] for c in clips.values() for f in c["false"])
    credits_hits = sum(t["hit"] for t in truths if t["truth"][0].endswith("Credits"))
    credits_false = sum(n for kind, n in false.items() if kind.endswith("Credits"))
    precision = credits_hits / (credits_hits + credits_false) if credits_hits + credits_false else None
    negatives = [cid for cid, c in clips.items() if not c["truth"]]
    false_on_negatives = sum(len(clips[c]["false"]) for c in negatives)
    print(f"by type: {by_type}; false cues: {dict(false)}; credits precision {precision}")
    print(f"clips without a true cue: {len(negatives)}, false cues on them: {false_on_negatives}")
    from envelope import write_result

    parameters = {"clips": list(clips), "tolerance_s": TOLERANCE_S, "samples_per_s": settings.text_cue_samples_per_s}
    figures = {"by_type": by_type, "false": dict(false), "credits_precision": precision}
    figures |= {"clips_without_cue": len(negatives), "false_on_clips_without_cue": false_on_negatives}
    figures |= {"on_unscored": sum(len(c["on_unscored"]) for c in clips.values()), "clips": clips}
    write_result("text-cues-real", parameters, figures, out=out)


if __name__ == "__main__":
    app()
