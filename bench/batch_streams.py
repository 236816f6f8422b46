"""Many short files in one process: the model compiled for one call at a time against one stream per file in flight.

    python bench/batch_streams.py --files 30 --rounds 3

Alternates the two in each round (so both see the same machine load) and checks the shots are the same.
Writes bench/results/batch_streams-<machine>-<date>.json (bench/envelope.py), or `--out FILE`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local.synthetic import write_video
from videoapi.pipeline.engine import Detector
from videoapi.settings import Settings


def main(
    files: Annotated[int, typer.Option(help="short clips (3 s, 320x180)")] = 30,
    rounds: Annotated[int, typer.Option(help="alternating rounds")] = 3,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="videoapi-streams-"))
    videos = []
    for k in range(files):
        videos.append(folder / f"clip{k:03d}.mp4")
        write_video(videos[-1], [30 + k % 20, 45], fps=25, seed=k)
    streams = min(files, os.cpu_count() or 1)
    detectors = {1: Detector(Settings()), streams: Detector(Settings(), streams=streams)}
    first = None
    runs = []
    for round_ in range(rounds):
        for count, detector in detectors.items():
            started = time.perf_counter()
            results = [result for _, result in detector.detect_many(videos)]
            seconds = time.perf_counter() - started
            shots = [[(s.start_frame, s.end_frame) for s in r.shots] for r in results]
            first = first or shots
            runs.append({"round": round_, "streams": count, "seconds": seconds, "same_shots": shots == first})
            print(
                f"round {round_}: {count} stream(s) {seconds:.2f} s ({seconds / files:.3f} s a file), "
                f"same shots: {shots == first}, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    from envelope import write_result

    write_result("batch_streams", {"files": files, "rounds": rounds}, {"streams": streams, "runs": runs}, out=out)


if __name__ == "__main__":
    typer.run(main)
