"""Job scratch folders: removed when the job ends, and swept after a process is killed mid-job."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from videoapi.pipeline.scratch import PREFIX, job_scratch, sweep_scratch

HOLDER = """
import sys, time
from pathlib import Path
from videoapi.pipeline.scratch import job_scratch
with job_scratch(Path(sys.argv[1])) as path:
    (path / "video").write_bytes(b"x" * 1000)
    print(path, flush=True)
    time.sleep(600)
"""


def test_a_finished_job_leaves_nothing(tmp_path):
    with job_scratch(tmp_path) as path:
        (path / "video").write_bytes(b"x")
        assert path.name.startswith(PREFIX) and path.parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_a_killed_process_folder_is_swept_and_a_live_one_is_not(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        held = holder.stdout.readline().strip()
        with job_scratch(tmp_path) as mine:
            assert sweep_scratch(tmp_path) == []  # both jobs running: both kept
            holder.kill()
            holder.wait(timeout=10)
            assert [str(p) for p in sweep_scratch(tmp_path)] == [held]
            assert mine.exists() and (mine / ".lock").exists()
        assert list(tmp_path.iterdir()) == []
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_folders_without_a_lock_wait_out_their_grace_and_others_are_left_alone(tmp_path):
    fresh, stale, other = tmp_path / f"{PREFIX}fresh", tmp_path / f"{PREFIX}stale", tmp_path / "videoapi-redis-x"
    for folder in (fresh, stale, other):
        folder.mkdir()
        (folder / "video").write_bytes(b"x")
    hour_ago = time.time() - 3600
    for folder in (stale, other):
        os.utime(folder, (hour_ago, hour_ago))
    (tmp_path / f"{PREFIX}file").write_bytes(b"not a folder")
    assert sweep_scratch(tmp_path) == [stale]
    assert fresh.exists() and other.exists() and (tmp_path / f"{PREFIX}file").exists()
