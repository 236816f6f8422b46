"""The fault tests across network namespaces (tests/hosts), their figures gathered into a result file.

Runs `pytest tests/hosts -m network_faults` (root: namespaces, veth pairs, a bridge) with each fault test
appending its figures (jobs, succeeded, lost, callbacks delivered twice, the slowest affected job and the whole
burst after the heal) to a file, then writes them in the envelope, for the benchmarks page and
docs/reliability.md. Run: `python -m bench network_faults [-k EXPR]`; the load average at the start and the end
is recorded beside them (the burst's pace is the machine's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envelope import ROOT, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.hosts.stack import FIGURES_ENV  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="pytest's -k: some of the faults only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        figures_file = Path(scratch) / "figures.jsonl"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/hosts",
            "-m",
            "network_faults",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        command += ["-k", args.k] if args.k else []
        load_before, started = os.getloadavg()[0], time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, FIGURES_ENV: str(figures_file)})
        seconds, load_after = time.perf_counter() - started, os.getloadavg()[0]
        rows = [json.loads(line) for line in figures_file.read_text().splitlines()] if figures_file.exists() else []
    for row in rows:
        print(json.dumps(row))
    figures = {
        "faults": rows,
        "pytest_exit": done.returncode,
        "seconds": round(seconds, 1),
        "load_average": {"start": round(load_before, 1), "end": round(load_after, 1)},
    }
    write_result("network_faults", {"k": args.k or "all", "burst": 100}, figures, out=args.out)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
