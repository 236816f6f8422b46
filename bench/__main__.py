"""`python -m bench NAME [ARGS...]` runs bench/NAME.py with ARGS, as `python bench/NAME.py ARGS` would.

`python -m bench` alone lists the benches, each with its docstring's first line; `python -m bench report` draws
docs/benchmarks/ from the results; the GPU node's benches are named `gpu/NAME` (bench/gpu/NAME.py).
"""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Modules the benches import, not run on their own (`python -m bench NAME` still runs them if named).
HELPERS = {"__init__", "__main__", "envelope", "testset", "accuracy_cache", "disagreements", "scenedetect_run"}
GPU_HELPERS = {"model"}


def summary(path: Path) -> str:
    """The first line of a script's docstring, read without running it."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        return ""
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def benches() -> dict[str, Path]:
    """Every bench by its name: bench/NAME.py as NAME, bench/gpu/NAME.py as gpu/NAME."""
    found = {p.stem: p for p in sorted(HERE.glob("*.py")) if p.stem not in HELPERS}
    found |= {f"gpu/{p.stem}": p for p in sorted((HERE / "gpu").glob("*.py")) if p.stem not in GPU_HELPERS}
    return found


def listing() -> str:
    named = benches()
    width = max(map(len, named)) + 2
    lines = ["python -m bench NAME [ARGS...] runs bench/NAME.py (`python -m bench NAME --help`: its options).", ""]
    lines += [f"  {name:<{width}}{summary(path)}" for name, path in named.items() if not name.startswith("gpu/")]
    lines += ["", "On a GPU node (bench/gpu/; bench/gpu/all.sh runs them on the device machine):", ""]
    lines += [f"  {name:<{width}}{summary(path)}" for name, path in named.items() if name.startswith("gpu/")]
    return "\n".join(lines)


def run(name: str, args: list[str]) -> None:
    """Run bench/NAME.py as __main__ with `args`, its folder first on sys.path (as `python bench/NAME.py` has it)."""
    stem = name.removesuffix(".py").replace(".", "/").removeprefix("bench/")
    path = HERE / f"{stem}.py"
    if not path.is_file() or path.parent not in (HERE, HERE / "gpu"):
        sys.exit(f"no bench named {name!r}\n\n{listing()}")
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.parent))
    runpy.run_path(str(path), run_name="__main__")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "list"):
        print(listing())
        return
    run(sys.argv[1], sys.argv[2:])


if __name__ == "__main__":
    main()
