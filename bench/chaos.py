"""The issue's chaos run: 2 workers, 100 jobs, a random worker SIGKILLed every 10 s and restarted.

    python bench/chaos.py [--jobs 100]

Runs tests/reliability/test_chaos.py with CHAOS_JOBS set (CI runs it with 20) and prints its figures:
kills, jobs retried, frames inferred twice (Triton's own count), and how long retried jobs finished after
the kill before them (median, max).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    env = {**os.environ, "CHAOS_JOBS": str(args.jobs), "PYTHONPATH": str(ROOT)}
    test = "tests/reliability/test_chaos.py"
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "no:logging", test]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
