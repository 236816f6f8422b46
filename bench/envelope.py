"""The one envelope every bench writes its figures in: date, commit, machine, parameters, figures.

`write_result("speed", parameters, figures)` writes bench/results/speed-<machine tag>-<date>.json (or `out`),
which `python -m bench report` draws the benchmarks page from. The machine is read here, once, so that no
bench describes its CPU in its own way and every figure on the page names the CPU and GPU that gave it.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCHEMA = "videoapi-bench/1"

# The instruction sets that decide which kernels run here (the model's precision and window follow them).
_FLAGS_OF_NOTE = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is no such file)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_kind(flags: set[str] | frozenset[str]) -> str:
    """The CPU's class as the benchmarks page groups them: AMX, AVX-512 BF16, AVX-512, AVX2 or older."""
    if "amx_tile" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    if "avx512f" in flags:
        return "AVX-512"
    return "AVX2" if "avx2" in flags else "pre-AVX2"


def _gpus() -> list[dict[str, str]]:
    """Each NVIDIA GPU's name, memory and driver, as nvidia-smi reports them (none without it)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[part.strip() for part in line.split(",")] for line in out.splitlines() if line.strip()]
    return [{"name": r[0], "memory": r[1], "driver": r[2]} for r in rows if len(r) == 3]


def machine() -> dict[str, Any]:
    """This machine as the envelope records it: CPU model, vendor, family/model, flags of note, cores, GPUs."""
    return copy.deepcopy(_machine())


@functools.cache
def _machine() -> dict[str, Any]:
    """machine(), read once a process (a bench that saves as it goes does not run nvidia-smi at every save)."""
    info = _cpuinfo()
    flags = frozenset(info.get("flags", "").split())
    # ONEDNN_MAX_CPU_ISA caps the kernels oneDNN (OpenVINO) uses: a run under it stands in for a smaller CPU.
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    memory_kib = 0
    try:
        meminfo = Path("/proc/meminfo").read_text()
        memory_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return {
        "cpu_model": info.get("model name", platform.processor() or "unknown"),
        "cpu_vendor": info.get("vendor_id", ""),
        "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "cpu_kind": cpu_kind(flags),
        "cpu_flags": [f for f in _FLAGS_OF_NOTE if f in flags],
        "onednn_max_cpu_isa": cap,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024**2, 1),
        "gpus": _gpus(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def commit() -> str:
    """BENCH_COMMIT where the caller set it (a GPU node's copy of the tree, whose git may not be the checkout's),
    else this checkout's commit (`checkout_commit`)."""
    return os.environ.get("BENCH_COMMIT") or checkout_commit(ROOT)


def checkout_commit(checkout: Path) -> str:
    """A checkout's commit, with '+dirty' when its tree has changes ('unknown' outside git): this one's, or the
    older one a bench runs beside it (`--baseline`)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_tag(described: dict[str, Any]) -> str:
    """A short file-name tag for a machine: its CPU kind, and its first GPU where there is one."""
    kind = described["cpu_kind"].lower().replace(" ", "").replace("-", "")
    if described.get("onednn_max_cpu_isa"):
        kind += "-cap" + str(described["onednn_max_cpu_isa"]).lower()
    gpus = described.get("gpus") or []
    if gpus:
        kind = re.sub(r"[^a-z0-9]+", "", gpus[0]["name"].lower().replace("nvidia", "")) + "-" + kind
    return kind


def envelope(
    bench: str, parameters: dict[str, Any], figures: Any, *, on: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The envelope around one bench's figures; `on` describes another machine (a GPU node's own report)."""
    return {
        "schema": SCHEMA,
        "bench": bench,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": on or machine(),
        "parameters": parameters,
        "figures": figures,
    }


def write_result(
    bench: str,
    parameters: dict[str, Any],
    figures: Any,
    *,
    out: Path | None = None,
    on: dict[str, Any] | None = None,
) -> Path:
    """Write one bench's figures in the envelope and return the file's path."""
    document = envelope(bench, parameters, figures, on=on)
    if out is None:
        day = document["date"][:10]
        out = RESULTS / f"{bench}-{machine_tag(document['machine'])}-{day}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return out


def read_results(folder: Path = RESULTS) -> list[dict[str, Any]]:
    """Every enveloped result under `folder` (files of another shape, such as caches, are passed over)."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get("schema") == SCHEMA:
            document["_path"] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
            found.append(document)
    return found
