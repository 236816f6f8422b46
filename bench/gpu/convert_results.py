"""One-off: the GPU results committed before the envelope (bare figures) put in it, in place.

Each file of bench/gpu/results/ that is not enveloped yet keeps its whole content under `figures`; the machine is
what the file itself records (its `info.gpu`: nvidia-smi's "name, driver, memory" or torch's device name alone;
`info.cpus`), everything else "unknown": these files recorded no date, commit, CPU or parameters. `converted`
says so, and names the commit that first added the file and its date (git's, read here): the run was on or before it.
Enveloped files are left alone, so running it again changes nothing.

Run: `python bench/gpu/convert_results.py [FILE ...]` (default: every bench/gpu/results/*.json).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from envelope import SCHEMA  # noqa: E402

RESULTS = ROOT / "bench" / "gpu" / "results"
UNKNOWN = "unknown"


def bench_of(name: str) -> str:
    """The bench that wrote a result file, from its name: gpu-nvdec-a.json was nvdec.py's, and so on."""
    if name.startswith("gpu-nvdec-drift-reference"):
        return "gpu-drift-reference"
    if name.startswith("gpu-nvdec-drift"):
        return "gpu-drift"
    if name.startswith(("gpu-serving", "gpu-direct")):  # serving.py's direct part alone (all.sh's $OUT/direct)
        return "gpu-serving"
    if name.startswith("gpu-model-variants"):
        return "gpu-model-variants"
    if name.startswith("gpu-nvdec"):
        return "gpu-nvdec"
    return name.removesuffix(".json")


def gpus_of(info: dict[str, Any]) -> list[dict[str, str]]:
    """The GPU a result names in info.gpu: 'name, driver, memory' (nvidia-smi) or the name alone (torch)."""
    text = info.get("gpu")
    if not isinstance(text, str) or not text.strip():
        return [{"name": UNKNOWN, "memory": UNKNOWN, "driver": UNKNOWN}]
    parts = [part.strip() for part in text.split(",")]
    if len(parts) == 3:
        return [{"name": parts[0], "memory": parts[2], "driver": parts[1]}]
    return [{"name": text.strip(), "memory": UNKNOWN, "driver": UNKNOWN}]


def added_in(path: Path) -> dict[str, str]:
    """The commit that first added `path` and its date, from git (empty outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H %aI", "--", str(path.relative_to(ROOT))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return {"committed_in": out[-2], "committed_at": out[-1]} if len(out) >= 2 else {}


def enveloped(path: Path, figures: Any) -> dict[str, Any]:
    info = figures.get("info", {}) if isinstance(figures, dict) else {}
    gpus = gpus_of(info)
    unrecorded = ["date", "commit", "parameters", "CPU"]
    unrecorded += [f"GPU {key}" for key in ("name", "driver", "memory") if gpus[0][key] == UNKNOWN]
    unrecorded += [] if info.get("cpus") else ["cores"]
    machine = {
        "cpu_model": UNKNOWN,
        "cpu_vendor": UNKNOWN,
        "cpu_family_model": UNKNOWN,
        "cpu_kind": UNKNOWN,
        "cpu_flags": [],
        "onednn_max_cpu_isa": None,
        "cores": info.get("cpus"),
        "memory_gib": None,
        "gpus": gpus,
        "python": UNKNOWN,
        "hostname": UNKNOWN,
    }
    return {
        "schema": SCHEMA,
        "bench": bench_of(path.name),
        "date": UNKNOWN,
        "commit": UNKNOWN,
        "machine": machine,
        "parameters": {},
        "figures": figures,
        "converted": {
            "from": f"{path.name}: bare figures, no envelope",
            "not_recorded": ", ".join(unrecorded),
            **added_in(path),
        },
    }


def convert(path: Path) -> bool:
    """Envelope one result file in place; False when it already was."""
    figures = json.loads(path.read_text())
    if isinstance(figures, dict) and figures.get("schema") == SCHEMA:
        return False
    path.write_text(json.dumps(enveloped(path, figures), indent=1) + "\n")
    return True


def main() -> None:
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted(RESULTS.glob("*.json"))
    for path in paths:
        print(f"{'enveloped' if convert(path) else 'already enveloped'}: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
