"""The issue's chaos run: 2 workers, 100 jobs, a random worker SIGKILLed every 10 s and restarted.

    python bench/chaos.py [--jobs 100]

Runs tests/reliability/test_chaos.py with CHAOS_JOBS set (CI runs it with 20) and prints its figures:
kills, jobs retried, frames inferred twice (Triton's own count), and how long retried jobs finished after
the kill before them (median, max). Those figures, read off the test's line, and whether it passed are written to
bench/results/chaos-<machine>-<date>.json (bench/envelope.py), or `--out FILE`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
# the line tests/reliability/test_chaos.py prints
FIGURES = re.compile(
    r"jobs (?P<jobs>\d+), kills (?P<kills>\d+), jobs retried (?P<retried>\d+), "
    r"frames inferred twice (?P<frames_inferred_twice>-?\d+).*?finished after a kill: "
    r"(?:median (?P<after_kill_median_s>[\d.]+) s, max (?P<after_kill_max_s>[\d.]+) s)?"
)


def figures_of(output: str) -> dict:
    """The test's figures from its printed line (none where it did not get that far)."""
    found = FIGURES.search(output)
    if found is None:
        return {}
    return {k: (float(v) if "." in v else int(v)) for k, v in found.groupdict().items() if v is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--out", type=Path, help="where to write (default: bench/results/)")
    args = parser.parse_args()
    env = {**os.environ, "CHAOS_JOBS": str(args.jobs), "PYTHONPATH": str(ROOT)}
    test = "tests/reliability/test_chaos.py"
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "no:logging", test]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    output = []
    for line in process.stdout or ():
        print(line, end="", flush=True)
        output.append(line)
    returncode = process.wait()
    from envelope import write_result

    figures = {"passed": returncode == 0, **figures_of("".join(output))}
    write_result("chaos", {"jobs": args.jobs, "workers": 2, "kill_every_s": 10}, figures, out=args.out)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
