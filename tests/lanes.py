"""The whole suite in two lanes at once (`make test`: `pytest -n 2`, pytest-xdist's two workers; issue 38).

Run one test after another, the suite keeps 2 cores 44% busy: the fault tests wait out partitions, leases and
restarts, the stacks' processes wait on each other. Two lanes share the cores instead, a worker process each:
TIMED holds the tests whose promises are times (a fault healed within 60 s, a lease lapsing, a host lost) and
what shares their stacks, one after another as before; REST holds everything else. Each lane keeps its order, its
session fixtures (its own Redis, moto and Triton) and its temporary folders. The lanes are xdist's scopes (its
`loadscope` scheduling with a lane for a scope): `--dist loadgroup` cannot carry them, as pytest 9.2 ignores the
id suffix that xdist 3.8 writes for its groups. Without `-n` (`pytest tests/x.py`) nothing changes.

PYTEST_DONT_REWRITE: conftest imports it before pytest loads it as a plugin.
"""

from __future__ import annotations

from typing import Any

import pytest

TIMED, REST = "timed", "rest"
# by path from the repository's root: the fault tests and the 500-job load (the same stacks and workers), and the
# wheel's install, which mostly waits on pip, to even the lanes out (about half the suite's time each, run alone)
TIMED_PATHS = ("tests/hosts/", "tests/reliability/", "tests/local/test_supervisor.py", "tests/packaging/")


def lane_of(nodeid: str) -> str:
    """The lane of a test, by its id (or its file's path) from the repository's root."""
    return TIMED if nodeid.startswith(TIMED_PATHS) else REST


def in_worker(config: pytest.Config) -> bool:
    """Whether this process is one of xdist's workers (it runs one lane's tests, not all collected)."""
    return hasattr(config, "workerinput")


def runs_here(config: pytest.Config, first: pytest.Item, item: pytest.Item) -> bool:
    """Whether `item` runs in this process, which ran `first` first (a worker runs its lane only)."""
    return not in_worker(config) or lane_of(item.nodeid) == lane_of(first.nodeid)


@pytest.hookimpl(optionalhook=True)  # xdist's hook, in the controller: its scheduling, with a lane for a scope
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):
        """Each lane whole to one worker (more workers than lanes are shut down)."""

        def _split_scope(self, nodeid: str) -> str:
            return lane_of(nodeid)

    return LaneScheduling(config, log)
