"""A batch through the local stack: items/s and frames/s against the same clips as single jobs and PySceneDetect.

Generates N clips of 3 to 10 s (320x180, 25 fps, a cut every 1 to 3 s), starts `videoapi local up`'s stack on
free ports, uploads them, then times (1) one batch of the N, (2) the N as single jobs submitted at once by one
client and polled, (3) PySceneDetect's CLI (`scenedetect -i X detect-content list-scenes`) in a loop, one
process per file. It also times the submission of a 100,000-row manifest (its 202; the rows are items that
the feeder makes only as the quota frees). Run: `python -m bench batch [--clips 12] [--manifest-rows 100000]`.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from envelope import write_result  # noqa: E402

from local.stack import LocalStack, StackPorts  # noqa: E402
from local.synthetic import write_video  # noqa: E402
from videoapi.client import VideoApiClient  # noqa: E402
from videoapi.settings import Settings  # noqa: E402


def make_clips(folder: Path, count: int, seed: int = 7) -> list[tuple[Path, int]]:
    rng = random.Random(seed)
    clips = []
    for index in range(count):
        seconds = rng.uniform(3, 10)
        shots, left = [], int(seconds * 25)
        while left > 0:
            shots.append(min(left, rng.randint(25, 75)))
            left -= shots[-1]
        path = folder / f"clip{index:04d}.mp4"
        write_video(path, shots, fps=25, seed=index)
        clips.append((path, sum(shots)))
    return clips


def time_batch(client: VideoApiClient, keys: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    batch = client.submit_batch([{"source": key, "id": key} for key in keys])
    batch = client.wait_batch(batch["id"], poll_s=0.2)
    wall = time.perf_counter() - start
    assert batch["counts"]["succeeded"] == len(keys), batch
    return {"wall_s": round(wall, 2), "frames": batch["frames_done"]}


def time_singles(client: VideoApiClient, keys: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    ids = [client.submit(key, priority="batch")["id"] for key in keys]
    frames = 0
    for job_id in ids:
        job = client.wait(job_id, poll_s=0.2)
        assert job["status"] == "succeeded", job
        frames += job["frames_total"]
    return {"wall_s": round(time.perf_counter() - start, 2), "frames": frames}


def time_scenedetect(paths: list[Path]) -> dict[str, float] | None:
    exe = shutil.which("scenedetect") or str(Path(sys.executable).with_name("scenedetect"))
    if not Path(exe).exists():
        return None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        for path in paths:
            command = [exe, "-q", "-i", str(path), "-o", out, "detect-content", "list-scenes", "-q"]
            subprocess.run(command, check=True, capture_output=True)
    return {"wall_s": round(time.perf_counter() - start, 2)}


def time_manifest_submit(client: VideoApiClient, folder: Path, rows: int, key: str) -> dict[str, float]:
    manifest = folder / "manifest.jsonl"
    with manifest.open("w") as file:
        for row in range(rows):
            file.write(json.dumps({"source": key, "id": f"row{row}"}) + "\n")
    manifest_key = client.upload(manifest, content_type="application/x-ndjson")
    start = time.perf_counter()
    batch = client.submit_batch({"manifest": manifest_key})
    submit_s = time.perf_counter() - start
    client.cancel_batch(batch["id"])
    return {"rows": batch["items"], "submit_s": round(submit_s, 3), "manifest_bytes": manifest.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--manifest-rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        clips = make_clips(folder, args.clips)
        frames = sum(n for _, n in clips)
        stack = LocalStack(Settings(), StackPorts(api=0), write_state=False, on_status=lambda line: None).start()
        try:
            with VideoApiClient(stack.api_url, stack.api_key) as client:
                keys = [client.upload(path) for path, _ in clips]
                client.wait(client.submit(keys[0])["id"])  # warm: Triton's first request, the workers' clients
                batch = time_batch(client, keys)
                singles = time_singles(client, keys)
                manifest = time_manifest_submit(client, folder, args.manifest_rows, keys[0])
        finally:
            stack.stop()
        scenedetect = time_scenedetect([path for path, _ in clips])

    def rates(wall_s: float) -> dict[str, float]:
        return {"items_per_s": round(len(clips) / wall_s, 3), "frames_per_s": round(frames / wall_s, 1)}

    figures = {
        "clips": len(clips),
        "frames": frames,
        "batch": {**batch, **rates(batch["wall_s"])},
        "single_jobs": {**singles, **rates(singles["wall_s"])},
        "scenedetect_cli_loop": {**scenedetect, **rates(scenedetect["wall_s"])} if scenedetect else None,
        "manifest_submit": manifest,
    }
    print(json.dumps(figures, indent=1))
    parameters = {"clips": len(clips), "clip_seconds": "3-10", "size": "320x180", "manifest_rows": args.manifest_rows}
    write_result("batch", parameters, figures, out=args.out)


if __name__ == "__main__":
    main()
