"""`videoapi batch` with nothing running: many videos through the in-process engine into one table, resumable."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from local.synthetic import write_video
from tests.local.test_cli_engine import cli_env

CLI = [sys.executable, "-m", "videoapi"]

pytestmark = pytest.mark.slow  # two runs, each loading the model (minutes on 2 cores)


def test_batch_of_a_folder_writes_one_parquet_table_and_resume_runs_only_the_new_videos(tmp_path):
    folder = tmp_path / "library"
    (folder / "sub").mkdir(parents=True)
    cuts = {
        str(folder / "a.mp4"): write_video(folder / "a.mp4", [40, 45], fps=25, seed=1),
        str(folder / "sub" / "b.mp4"): write_video(folder / "sub" / "b.mp4", [60, 30, 40], fps=25, seed=2),
    }
    (folder / "notes.txt").write_text("not a video: left out of a folder")
    output = tmp_path / "shots.parquet"
    run = subprocess.run(
        [*CLI, "batch", str(folder), "-o", str(output)], env=cli_env(tmp_path), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    rows = pq.read_table(output).to_pylist()
    assert {item: sorted(r["start_frame"] for r in rows if r["item_id"] == item) for item in cuts} == {
        item: [0, *c] for item, c in cuts.items()
    }
    assert {r["transition_type"] for r in rows if r["shot_index"]} == {"cut"}

    c = str(folder / "c.mp4")
    cuts[c] = write_video(folder / "c.mp4", [50, 40], fps=25, seed=3)
    run = subprocess.run(
        [*CLI, "batch", str(folder / "**" / "*.mp4"), "-o", str(output), "--resume"],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "1 videos to run in this process (2 already" in run.stderr
    rows = pq.read_table(output).to_pylist()
    keys = [(r["item_id"], r["shot_index"]) for r in rows]
    assert len(keys) == len(set(keys)) == sum(len(c) + 1 for c in cuts.values())
