"""The worker's probe and decode on bench/speed.py's 1080p clip: frames per second, best of `repeats`.

Run it with PYTHONPATH on an older checkout too (it falls back to that decoder's API) to compare before/after:
    PYTHONPATH=. python bench/decode_speed.py [--shots 12] [--repeats 3] [--out FILE]
Writes bench/results/decode_speed-<machine>-<date>.json (bench/envelope.py), or FILE.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testset import write_testset_video  # noqa: E402

from videoapi.pipeline import probe as probing  # noqa: E402
from videoapi.pipeline.decode import iter_model_frames_pyav  # noqa: E402


def probe_and_decode(clip: Path) -> int:
    """What a one-segment job does before inference: probe, then decode every frame to 48x27."""
    if hasattr(probing, "probe_timeline"):
        _, frame_pts = probing.probe_timeline(clip)
        return sum(1 for _ in iter_model_frames_pyav(clip, frame_pts=frame_pts))
    probing.probe(clip)
    return sum(1 for _ in iter_model_frames_pyav(clip))


def main(shots: int = 12, repeats: int = 3, out: Path | None = None) -> None:
    clip = Path(tempfile.mkdtemp(prefix="videoapi-decode-")) / "clip1080.mp4"
    write_testset_video(clip, "cuts", seed=7, shots=shots, width=1920, height=1080)
    best, frames = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        frames = probe_and_decode(clip)
        best = min(best, time.perf_counter() - start)
    print(f"{frames} frames 1920x1080 H.264: probe + decode {best:.2f} s, {frames / best:.1f} fps (best of {repeats})")
    clip.unlink()
    from envelope import write_result

    figures = {"frames": frames, "best_s": best, "fps": frames / best}
    write_result("decode_speed", {"shots": shots, "repeats": repeats, "size": "1920x1080"}, figures, out=out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    main(args.shots, args.repeats, args.out)
