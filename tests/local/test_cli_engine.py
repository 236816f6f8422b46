"""`videoapi detect` with nothing running: the in-process engine, as a user runs it (real processes)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from local.synthetic import write_video
from videoapi.pipeline.engine import Detector
from videoapi.settings import Settings

CLI = [sys.executable, "-m", "videoapi"]


def cli_env(runtime: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIDEOAPI_API_URL", "VIDEOAPI_API_KEY")}
    env["XDG_RUNTIME_DIR"] = str(runtime)  # no local stack's address here
    return env | extra


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[tuple[Path, list[int]]]:
    folder = tmp_path_factory.mktemp("clips")
    made = []
    for k, lengths in enumerate(([40, 45, 40], [60, 30], [50, 40, 45])):
        path = folder / f"clip {k}.mp4"
        made.append((path, write_video(path, lengths, fps=25, seed=k)))
    return made


def test_detect_with_nothing_running_stays_in_this_process(clips, tmp_path):
    video, cuts = clips[0]
    process = psutil.Popen(
        [*CLI, "detect", str(video)],
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children = set()
    while process.poll() is None:  # a stack would live for seconds: Triton, Redis, moto, workers, the API
        children |= {child.pid for child in process.children(recursive=True)}
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr
    assert children == set() and "ephemeral" not in stderr
    document = json.loads(stdout)
    assert [shot["start_frame"] for shot in document["shots"][1:]] == cuts
    assert document["video"]["source"] == str(video.resolve())


def test_several_files_get_one_result_each(clips, tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [*CLI, "detect", *(str(path) for path, _ in clips), "-f", "csv", "-o", str(out)],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["clip 0.csv", "clip 1.csv", "clip 2.csv"]
    detector = Detector(Settings())
    for path, _ in clips:  # as when each file is detected on its own
        assert (out / f"{path.stem}.csv").read_text() == detector.detect(path).export("csv")
    rows = (out / "clip 0.csv").read_text().strip().splitlines()
    assert rows[0].startswith("index,start_frame")
    shots = [row for row in csv.DictReader(rows) if row["kind"] == "shot"]
    assert [int(row["start_frame"]) for row in shots[1:]] == clips[0][1]


def test_several_files_without_an_output_folder_are_refused(clips, tmp_path):
    done = subprocess.run(
        [*CLI, "detect", str(clips[0][0]), str(clips[1][0])],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and done.stderr.strip() == "error: several videos need -o DIR (one result file each)"


def test_a_missing_model_is_named_in_one_line(clips, tmp_path):
    env = cli_env(tmp_path, VIDEOAPI_MODEL_REPOSITORY=str(tmp_path / "no-models"), VIDEOAPI_ENGINE_BUILD_MODEL="false")
    done = subprocess.run([*CLI, "detect", str(clips[0][0])], env=env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: no model in") and "videoapi model build" in lines[0]
