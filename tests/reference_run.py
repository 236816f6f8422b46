"""The reference package's own probabilities for a video, computed in a process of its own (issue 38).

torch runs the reference over test.mp4's 5,301 frames in about three CPU-minutes on 2 cores, the largest single
cost of one test (test_stack's end-to-end comparison). The suite starts this process at its first test when a test
that needs them will run in the same process (the same lane under xdist: tests/lanes.py), niced, so that the work
fills the cores that waiting tests leave idle instead of holding up that test; the fixture waits for what is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def reference_frames_of(video: Path, ffmpeg_exe: str) -> np.ndarray:
    """The video decoded exactly as the reference package decodes it (ffmpeg, rgb24, -s 48x27)."""
    command = [ffmpeg_exe, "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "48x27"]
    raw = subprocess.run([*command, "pipe:"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 27, 48, 3)


def reference_probabilities(model: Any, frames: np.ndarray) -> np.ndarray:
    """The reference package's single-frame probabilities for these frames."""
    import torch

    with torch.no_grad():
        single, _ = model.predict_frames(torch.from_numpy(frames.copy()), quiet=True)
    return np.asarray(single.numpy())


class ReferenceInBackground:
    """This module run as a niced child process for one video; result() waits for its probabilities."""

    def __init__(self, video: Path, ffmpeg_exe: str) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="videoapi-reference-"))
        self._out = self._folder / "probabilities.npy"
        self._log = (self._folder / "log.txt").open("w")
        self._process = subprocess.Popen(
            # as a module from the repository's root: run as a file, tests/videoapi/ would hide the package
            [sys.executable, "-m", "tests.reference_run", str(video), ffmpeg_exe, str(self._out)],
            cwd=Path(__file__).resolve().parents[1],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def result(self) -> np.ndarray:
        """The probabilities, once the process has written them; RuntimeError with its output if it failed."""
        self._hurry()
        if self._process.wait() != 0:
            raise RuntimeError(f"the reference run failed: {(self._folder / 'log.txt').read_text()[-2000:]}")
        return np.load(self._out)

    def _hurry(self) -> None:
        """A test waits on it now: back to normal priority, every thread (Linux nices threads one by one, and torch's
        were started niced), so that the other lane's tests cannot starve it (as root only: else it stays niced)."""
        tasks = Path(f"/proc/{self._process.pid}/task")
        for task in tasks.iterdir() if tasks.is_dir() else ():
            with contextlib.suppress(OSError):  # a thread that ended, or not allowed to raise priority
                os.setpriority(os.PRIO_PROCESS, int(task.name), 0)

    def stop(self) -> None:
        """End the process if it still runs, and remove its folder."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._log.close()
        shutil.rmtree(self._folder, ignore_errors=True)


def main(video: str, ffmpeg_exe: str, out: str) -> None:
    from videoapi.model.export import load_reference

    os.nice(19)  # the tests come first: this only takes the cores they leave idle
    probabilities = reference_probabilities(load_reference("cpu"), reference_frames_of(Path(video), ffmpeg_exe))
    np.save(out, probabilities)


if __name__ == "__main__":
    main(*sys.argv[1:4])
