"""Technical cues on bench/accuracy.py's generated sets (expected: none but Content) and the cue tap's cost a frame.

Run: python bench/cues.py [--videos 2] [--shots 24]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from testset import SETS, write_testset_video  # noqa: E402

from videoapi.cues import CueFeature, SegmentOptions, technical_cues  # noqa: E402
from videoapi.decode import iter_model_frames  # noqa: E402
from videoapi.shots import FrameClock  # noqa: E402


def main() -> None:
    """Print each set's cue counts by type and the tap's microseconds a frame."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--shots", type=int, default=24)
    args = parser.parse_args()
    tap_s, frames = 0.0, 0
    with tempfile.TemporaryDirectory() as work:
        for kind in SETS:
            counts: Counter[str] = Counter()
            for seed in range(args.videos):
                path = Path(work) / f"{kind}-{seed}.mp4"
                write_testset_video(path, kind, seed=100 + seed, shots=args.shots)
                feature = CueFeature()
                for frame in iter_model_frames(path):
                    started = time.perf_counter()
                    feature.update(frame)
                    tap_s += time.perf_counter() - started
                    frames += 1
                cues = technical_cues(feature.arrays(), FrameClock(25.0), SegmentOptions())
                counts.update(cue["type"] for cue in cues)
                for cue in cues:
                    if cue["type"] != "Content":
                        print(f"  {kind} seed {100 + seed}: {cue['type']} {cue['start_frame']}-{cue['end_frame']}")
            print(f"{kind}: {dict(counts)}")
    print(f"cue tap: {tap_s / max(frames, 1) * 1e6:.1f} us a frame over {frames} frames")


if __name__ == "__main__":
    main()
