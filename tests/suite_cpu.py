"""How busy each test file keeps the machine: wall time and CPU seconds of the test process tree (issue 38).

The suite's time is what CI pays; its CPU seconds over wall time say which files could share the 2 cores with
others (a fault test waiting out a partition) and which already use both (a stack inferring). The CPU of the tree
is the pytest process's own and reaped children's, plus every live descendant's (with what it reaped): processes
that leave the tree (daemonised) are not counted.
"""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_TABLES = ("wall", "cpu", "test_wall", "test_cpu")


def _descendants_cpu_s(root: int) -> float:
    """CPU seconds of the live descendants of `root` (each with the children it reaped)."""
    children: dict[int, list[int]] = defaultdict(list)
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        pid = int(entry.name)
        children[int(fields[1])].append(pid)  # fields after the name: state, ppid, ... utime at 11
        cpu[pid] = sum(int(value) for value in fields[11:15]) / _TICK
    total, stack = 0.0, list(children[root])
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack += children[pid]
    return total


def tree_cpu_s() -> float:
    """CPU seconds used so far by this process, the children it reaped and its live descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    return used + _descendants_cpu_s(os.getpid())


class SuiteCpu:
    """Per test file, and per test: wall seconds and the process tree's CPU seconds, shown at the end of the run."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.test_wall: dict[str, float] = defaultdict(float)
        self.test_cpu: dict[str, float] = defaultdict(float)

    def measure(self, path: str, test: str = ""):
        """A context for one test's setup, call and teardown (a shared fixture's start counts to its first test)."""
        return _Measured(self, path, test or path)

    def state(self) -> dict[str, dict[str, float]]:
        """What was measured, for another process to merge (an xdist worker's lane, sent to the controller)."""
        return {name: dict(getattr(self, name)) for name in _TABLES}

    def merge(self, state: dict[str, dict[str, float]]) -> None:
        """Add a lane's figures (a state() of another process) to these."""
        for name in _TABLES:
            table = getattr(self, name)
            for key, value in state.get(name, {}).items():
                table[key] += value

    def lines(self, cores: int, top: int = 25, session_wall: float | None = None) -> list[str]:
        """The files that took longest, with the share of the machine's cores their tree kept busy; with
        session_wall (lanes run at once), the whole session's CPU over its wall time too."""
        wall, cpu = sum(self.wall.values()), sum(self.cpu.values())
        if not wall:
            return []
        rows = [f"{'wall s':>8} {'CPU s':>8} {'busy':>5}  file (busy: CPU s over wall s x {cores} cores)"]
        for path in sorted(self.wall, key=self.wall.get, reverse=True)[:top]:
            rows.append(f"{self.wall[path]:8.1f} {self.cpu[path]:8.1f} {self._busy(path, cores):5.0%}  {path}")
        rows.append(f"{wall:8.1f} {cpu:8.1f} {cpu / (wall * cores):5.0%}  all {len(self.wall)} files")
        if session_wall:
            busy = cpu / (session_wall * cores)
            rows.append(f"{session_wall:8.1f} {cpu:8.1f} {busy:5.0%}  the session (lanes at once)")
        rows.append("")
        rows.append(f"{'wall s':>8} {'CPU s':>8}  the {top} tests that took most CPU (their fixtures' set-up included)")
        for test in sorted(self.test_cpu, key=self.test_cpu.get, reverse=True)[:top]:
            rows.append(f"{self.test_wall[test]:8.1f} {self.test_cpu[test]:8.1f}  {test}")
        return rows

    def _busy(self, path: str, cores: int) -> float:
        return self.cpu[path] / (self.wall[path] * cores) if self.wall[path] else 0.0


class _Measured:
    def __init__(self, suite: SuiteCpu, path: str, test: str) -> None:
        self.suite, self.path, self.test = suite, path, test

    def __enter__(self) -> None:
        self.started, self.cpu = time.monotonic(), tree_cpu_s()

    def __exit__(self, *exc: object) -> None:
        wall, cpu = time.monotonic() - self.started, tree_cpu_s() - self.cpu
        self.suite.wall[self.path] += wall
        self.suite.cpu[self.path] += cpu
        self.suite.test_wall[self.test] += wall
        self.suite.test_cpu[self.test] += cpu
