"""A job's scratch folder (its downloaded video), and the sweep that removes those of killed processes.

A folder is removed when its job ends; a process killed mid-job (SIGKILL, the OOM killer, a lost node's
restart on the same disk) never gets there, and its video would stay on disk for good. Each folder holds an
advisory lock for as long as its process lives (the kernel drops it at death, however the process ends), so
a worker starting later can tell a dead job's folder from a running one's and remove it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

PREFIX = "videoapi-job-"
LOCK = ".lock"
# a folder without its lock file may be one whose creator is between mkdtemp and the lock (or one made before
# folders had locks): left alone until this old
UNLOCKED_GRACE_S = 600.0

logger = logging.getLogger(__name__)


@contextmanager
def job_scratch(root: Path | None = None) -> Iterator[Path]:
    """A fresh folder for one job, locked while the job runs and removed after it."""
    path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
    try:
        # locked under a temporary name, then renamed: a sweep never sees `.lock` unlocked in a live folder
        fd = os.open(path / ".lock-new", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(path / ".lock-new", path / LOCK)
            yield path
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep_scratch(root: Path | None = None, *, unlocked_grace_s: float = UNLOCKED_GRACE_S) -> list[Path]:
    """Remove the job folders under `root` (the temporary directory) whose process is gone; the ones removed."""
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed = []
    for path in base.glob(f"{PREFIX}*"):
        if path.is_dir() and not path.is_symlink() and _abandoned(path, unlocked_grace_s):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        logger.info("removed %d job folder(s) left by killed processes under %s", len(removed), base)
    return removed


def _abandoned(path: Path, unlocked_grace_s: float) -> bool:
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        with suppress(FileNotFoundError):
            return time.time() - path.stat().st_mtime > unlocked_grace_s
        return False
    except OSError:  # another user's folder, say: not ours to judge
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its job is running
    finally:
        os.close(fd)  # closing drops the lock just taken: the folder is removed next, and nothing reuses it
    return True
