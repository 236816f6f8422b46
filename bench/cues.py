"""Technical cues on bench/accuracy.py's sets (expected: no cue but Content), and what the cues cost end to end.

    python bench/cues.py sets --seeds tune|report    # each set's cues; every black run and why it is (not) a slug
    python bench/cues.py cost [--repeats 3]           # speed.py's 1080p clip with a tone track: cues on vs off

`sets` decodes each generated video as the worker does (PyAV, the frame-feature taps) and prints the cues the
default options give, and each run of black frames by Rekognition's plain rule with the time its darkest level
is held (a BlackFrames cue needs min_black_s of it). `cost` runs the in-process engine's `detect` on the 1080p
clip of bench/speed.py (an AAC track muxed in: tone with silent stretches) with the cue taps (picture and audio)
on and off (`VIDEOAPI_TECHNICAL_CUES`), alternating, the model loaded once, and prints both side by side.
Each writes its figures to bench/results/cues-sets-<seeds>-... or cues-cost-<machine>-<date>.json
(bench/envelope.py), or `--out FILE`.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from videoapi.pipeline.cues import SegmentOptions, black_levels, held_seconds, runs, technical_cues  # noqa: E402
from videoapi.pipeline.shots import FrameClock  # noqa: E402
from videoapi.settings import Settings  # noqa: E402

app = typer.Typer(add_completion=False)


def cue_arrays(path: Path, settings: Settings) -> dict:
    """The frame features of one video, decoded as the worker decodes it (the audio heard when there is some)."""
    from videoapi.pipeline.decode import iter_model_frames_pyav
    from videoapi.pipeline.frame_features import FeatureTap, frame_features
    from videoapi.pipeline.probe import probe_timeline

    _, frame_pts = probe_timeline(path)
    tap = FeatureTap(frame_features(settings))
    frames = iter_model_frames_pyav(path, frame_pts=frame_pts, audio=tap.audio)
    for _ in tap.tap(frames, 0):
        pass
    return tap.arrays()


@app.command()
def sets(
    seeds: Annotated[str, typer.Option(help="tune (what min_black_s was chosen on) or report")] = "tune",
    shots: Annotated[int, typer.Option(help="shots per generated video, as bench/accuracy.py")] = 20,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    """Cues on every set of bench/accuracy.py (cached under bench/results/accuracy-cache/)."""
    from accuracy_cache import video
    from testset import HARD_SETS, REPORT_SEEDS, TUNE_SEEDS

    chosen = {"report": REPORT_SEEDS, "tune": TUNE_SEEDS}[seeds]
    options, clock, settings = SegmentOptions(), FrameClock(25.0), Settings()
    print(f"{seeds.upper()} seeds {chosen}; min_black_s {options.min_black_s}")
    false_cues = 0
    by_set: dict[str, dict[str, int]] = {}
    for kind in HARD_SETS:
        counts: Counter[str] = Counter()
        for seed in chosen:
            path, truth = video(kind, seed, shots)
            arrays = cue_arrays(path, settings)
            cues = technical_cues(arrays, clock, options)
            counts.update(cue["type"] for cue in cues)
            for cue in cues:
                if cue["type"] == "FrozenFrames":  # a still picture: the stills of `slideshow`, flat-colour shots
                    print(f"  {kind} {seed}: FrozenFrames {cue['start_frame']}-{cue['end_frame']} (a still shot)")
                elif cue["type"] != "Content":
                    false_cues += 1
                    print(f"  {kind} {seed}: FALSE CUE {cue['type']} {cue['start_frame']}-{cue['end_frame']}")
            levels = black_levels(arrays["cue_luma_percentiles"], options)
            for start, end in runs(levels <= options.black_max_pixel_threshold * 255):
                held = held_seconds(levels[start : end + 1], start, clock)
                fade = next((t for t in truth if t[0] < start and end < t[1]), None)
                what = f"in the {fade[2]} {fade[0] + 1}-{fade[1] - 1}" if fade else "inside a shot"
                print(f"  {kind} {seed}: black run {start}-{end} ({end - start + 1} frames), held {held:.2f} s, {what}")
        print(f"{kind}: {dict(counts)}")
        by_set[kind] = dict(counts)
    print(f"false cues (BlackFrames, ColorBars or Silence: none is in these sets): {false_cues}")
    from envelope import write_result

    parameters = {"seeds": seeds, "sets": list(chosen), "shots": shots, "min_black_s": options.min_black_s}
    write_result(f"cues-sets-{seeds}", parameters, {"cues": by_set, "false_cues": false_cues}, out=out)


def clip_with_sound(work: Path, shots: int) -> Path:
    """speed.py's 1080p clip (testset `cuts`, seed 7) with an AAC stereo track: 1 kHz tone, 3 s of every 10 silent."""
    import av
    import numpy as np
    from testset import write_testset_video

    from local.synthetic import tone

    silent = work / "clip1080-silent.mp4"
    write_testset_video(silent, "cuts", seed=7, shots=shots, width=1920, height=1080)
    path = work / "clip1080.mp4"
    with av.open(str(silent)) as source, av.open(str(path), "w") as target:
        video_in = source.streams.video[0]
        video_out = target.add_stream_from_template(video_in)
        seconds = float(video_in.duration * video_in.time_base)
        rate = 48000
        sound = tone(seconds + 1, rate)
        sound[(np.arange(len(sound)) / rate) % 10 >= 7] = 0.0
        audio = target.add_stream("aac", rate=rate, layout="stereo")
        sample = 0
        for packet in source.demux(video_in):
            if packet.dts is None:
                continue
            packet.stream = video_out
            target.mux(packet)
            until = float((packet.dts + packet.duration) * video_in.time_base) * rate
            while sample < until:
                piece = np.tile(sound[sample : sample + 1024], (2, 1))
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = rate, sample
                for out in audio.encode(frame):
                    target.mux(out)
                sample += 1024
        for out in audio.encode():
            target.mux(out)
    return path


@app.command()
def cost(
    repeats: Annotated[int, typer.Option(help="runs of each arm, alternating")] = 3,
    shots: Annotated[int, typer.Option(help="shots in the 1080p clip, as bench/speed.py")] = 24,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    """End-to-end `Detector.detect` on the 1080p clip with the cue taps on and off, alternating."""
    from videoapi.pipeline.engine import Detector

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    with tempfile.TemporaryDirectory() as tmp:
        clip = clip_with_sound(Path(tmp), shots)
        on = Detector(Settings(technical_cues=True))
        off = Detector(Settings(technical_cues=False), model=on.model)
        off.detect(clip)  # warm-up: model compile, caches
        wall, cpu_s, documents = alternate({"cues off": (off, None), "cues on": (on, None)}, clip, repeats)
        spent, run_s = tap_seconds(on, clip)
        frames = documents["cues on"]["video"]["frame_count"]
        print(f"CPU: {model_name}; {platform.machine()}, {len(os.sched_getaffinity(0))} cores")
        print(f"clip: 1920x1080 H.264 + AAC stereo, {frames} frames; {repeats} alternating runs of each, end to end")
        print(f"{'arm':<10} {'wall s':>7} {'frames/s':>9} {'CPU s':>7}  wall runs | CPU runs")
        for label in wall:
            median = statistics.median(wall[label])
            print(
                f"{label:<10} {median:7.2f} {frames / median:9.1f} {statistics.median(cpu_s[label]):7.2f}  "
                f"{' '.join(f'{s:.2f}' for s in wall[label])} | {' '.join(f'{s:.2f}' for s in cpu_s[label])}"
            )
        for figure, runs_s in (("wall", wall), ("CPU", cpu_s)):
            on_s, off_s = (statistics.median(runs_s[k]) for k in ("cues on", "cues off"))
            print(f"cues add {100 * (on_s / off_s - 1):+.1f}% ({figure} time, median over median)")
        taps = sum(spent.values())
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in spent.items())
        print(f"inside one instrumented run of {run_s:.2f} s: {parts}: {100 * taps / run_s:.1f}% of it")
        cues = Counter(c["type"] for c in documents["cues on"].get("technical_cues", []))
        print(f"cues found: {dict(cues)}; audio: {documents['cues on'].get('audio')}")
        assert documents["cues on"]["shots"] == documents["cues off"]["shots"], "shots differ with the taps"
    from envelope import write_result

    figures = {
        "frames": frames,
        "wall_s": wall,
        "cpu_s": cpu_s,
        "median_wall_s": {label: statistics.median(runs_s) for label, runs_s in wall.items()},
        "median_cpu_s": {label: statistics.median(runs_s) for label, runs_s in cpu_s.items()},
        "inside_one_run": {"run_s": run_s, **spent},
        "cues_found": dict(cues),
    }
    write_result("cues-cost", {"repeats": repeats, "shots": shots, "size": "1920x1080"}, figures, out=out)


def alternate(arms: dict, clip: Path, repeats: int, within: dict | None = None) -> tuple[dict, dict, dict]:
    """Each arm's `detector.detect(clip, segments=asked)` in turn, `repeats` rounds: (wall s, CPU s, last document)
    by label, the arms given as {label: (detector, asked segments or None)}; `within` {label: a context manager's
    factory} runs that arm's detects inside it (a variant patched in for the arm alone)."""
    wall: dict[str, list[float]] = {label: [] for label in arms}
    cpu_s: dict[str, list[float]] = {label: [] for label in arms}
    documents = {}
    for _ in range(repeats):
        for label, (detector, asked) in arms.items():
            with (within or {}).get(label, nullcontext)():
                began, began_cpu = time.perf_counter(), time.process_time()
                documents[label] = detector.detect(clip, segments=asked).document
                wall[label].append(time.perf_counter() - began)
                cpu_s[label].append(time.process_time() - began_cpu)
    return wall, cpu_s, documents


def tap_seconds(detector, clip: Path) -> tuple[dict[str, float], float]:
    """Seconds spent inside the cue taps (the picture's, the audio's decode and levels) during one detect."""
    import videoapi.pipeline.decode as decode
    from videoapi.pipeline.cues import CueFeature

    spent = {"picture taps": 0.0, "audio decode + levels": 0.0}

    def timed(function, name):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - began

        return wrapper

    update, hear = CueFeature.update, decode._hear
    CueFeature.update, decode._hear = timed(update, "picture taps"), timed(hear, "audio decode + levels")
    try:
        began = time.perf_counter()
        detector.detect(clip)
        return spent, time.perf_counter() - began
    finally:
        CueFeature.update, decode._hear = update, hear


if __name__ == "__main__":
    app()
