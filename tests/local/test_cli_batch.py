"""`videoapi batch` with nothing running: many videos through the in-process engine into one table, with clips,
resumable from a local manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import pyarrow.parquet as pq
import pytest

from local.synthetic import write_video
from tests.local.test_cli_engine import cli_env

CLI = [sys.executable, "-m", "videoapi"]

pytestmark = pytest.mark.slow  # two runs, each loading the model (minutes on 2 cores)


def test_batch_of_a_folder_writes_one_parquet_table_with_clips_and_a_manifest_resumes_it(tmp_path):
    folder = tmp_path / "library"
    (folder / "sub").mkdir(parents=True)
    cuts = {
        str(folder / "a.mp4"): write_video(folder / "a.mp4", [40, 45], fps=25, seed=1),
        str(folder / "sub" / "b.mp4"): write_video(folder / "sub" / "b.mp4", [60, 30, 40], fps=25, seed=2),
    }
    (folder / "notes.txt").write_text("not a video: left out of a folder")
    output, clips = tmp_path / "shots.parquet", tmp_path / "clips"
    run = subprocess.run(
        [*CLI, "batch", str(folder), "-o", str(output), "--clips", str(clips), "--clip-mode", "exact"]
        + ["--min-duration", "1.7"],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    rows = pq.read_table(output).to_pylist()
    assert {item: sorted(r["start_frame"] for r in rows if r["item_id"] == item) for item in cuts} == {
        item: [0, *c] for item, c in cuts.items()
    }
    assert {r["transition_type"] for r in rows if r["shot_index"]} == {"cut"}
    # 1.6 and 1.8 s, then 2.4, 1.2 and 1.6 s: a clip for each shot of 1.7 s or more, holding exactly its frames
    kept = [r for r in rows if r["clip_key"]]
    assert [(Path(r["item_id"]).name, r["shot_index"]) for r in kept] == [("a.mp4", 1), ("b.mp4", 0)]
    for r in kept:
        assert Path(r["clip_key"]).parent.parent == clips
        with av.open(r["clip_key"]) as container:
            assert sum(1 for _ in container.decode(video=0)) == r["end_frame"] - r["start_frame"] + 1

    c = str(folder / "c.mp4")
    cuts[c] = write_video(folder / "c.mp4", [50, 40], fps=25, seed=3)
    manifest = tmp_path / "library.jsonl"  # rows name local files, with the ids the first run gave them
    lines = [json.dumps({"source": path, "id": path}) for path in cuts] + ['{"source": "missing.mp4"}']
    manifest.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        [*CLI, "batch", str(manifest), "-o", str(output), "--resume"],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "row 4 left out (source_not_found)" in run.stderr
    assert "1 videos to run in this process (2 already" in run.stderr
    rows = pq.read_table(output).to_pylist()
    keys = [(r["item_id"], r["shot_index"]) for r in rows]
    assert len(keys) == len(set(keys)) == sum(len(c) + 1 for c in cuts.values())
