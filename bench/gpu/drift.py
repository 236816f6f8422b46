"""NVDEC's frames against the CPU path's (run here, on what bench/gpu/nvdec.py brought back from the device).

For each clip and hardware-scaler surface: pixel drift (mean, 99th percentile and largest absolute difference
in grey levels, over every pixel of every frame) and what it does to the shots: the model (the reference
weights, PyTorch on this CPU) on both frame sets, transitions by the reference rule (threshold 0.5), F1 of each
against the clip's truth (2-frame tolerance, as bench/accuracy.py) and of NVDEC's against the CPU path's.

Run: `python bench/gpu/drift.py INPUTS_DIR DEVICE_OUT_DIR [--reference]` (INPUTS_DIR from make_inputs.py, with
cpu_frames.npz; --reference: test.mp4 against the reference package's shots, as bench/accuracy.py). Writes
DEVICE_OUT_DIR/drift.json (drift_reference.json) in bench/envelope.py's envelope: this machine (the model's CPU),
and in its parameters the GPU that decoded (from DEVICE_OUT_DIR/nvdec.json, where it is enveloped).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


class TorchModel:
    def __init__(self):
        import torch

        from videoapi.model.export import exportable_module

        self.torch = torch
        self.module = exportable_module("cpu").eval()

    def predict(self, windows: np.ndarray):
        with self.torch.no_grad():
            single, many = self.module(self.torch.from_numpy(windows))
        return single[..., 0].numpy(), many[..., 0].numpy()


def shots_of(frames: np.ndarray, model) -> list[tuple[int, int]]:
    from videoapi.pipeline.inference import predict_frames
    from videoapi.pipeline.shots import shot_spans, transitions

    predictions = predict_frames(iter(frames), model, batch_windows=8, in_flight=1)
    return transitions(shot_spans(predictions.single_frame))


def against_reference(inputs: Path, device: Path) -> dict:
    """test.mp4 as bench/accuracy.py scores it: F1 against the reference package's own shots (its ffmpeg decode,
    its predict_frames), for the CPU path's frames and NVDEC's (both through the service's windows)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from accuracy import reference_transitions

    from videoapi.model.export import load_reference
    from videoapi.pipeline.shots import score_transitions

    reference = reference_transitions(load_reference("cpu"), inputs / "test.mp4")
    model = TorchModel()
    cpu = shots_of(np.load(inputs / "cpu_frames.npz")["test"], model)
    nvdec = shots_of(np.load(device / "nvdec_frames_160x90_test.npz")["test"], model)
    row = {
        "cpu_vs_reference": score_transitions(cpu, reference).__dict__,
        "nvdec_vs_reference": score_transitions(nvdec, reference).__dict__,
        "nvdec_vs_cpu": score_transitions(nvdec, cpu).__dict__,
    }
    print(json.dumps(row), flush=True)
    write(device, "gpu-drift-reference", row, device / "drift_reference.json")
    return row


def write(device: Path, bench: str, figures, out: Path) -> None:
    """The figures in the envelope; the NVDEC frames' GPU named from the device's nvdec.json where it has one."""
    from envelope import SCHEMA, write_result

    decoded_on = None
    try:
        nvdec = json.loads((device / "nvdec.json").read_text())
        decoded_on = nvdec["machine"]["gpus"] if nvdec.get("schema") == SCHEMA else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    write_result(bench, {"device_out": device.name, "nvdec_frames_from": decoded_on}, figures, out=out)


def main() -> None:
    from videoapi.pipeline.shots import score_transitions

    inputs, device = Path(sys.argv[1]), Path(sys.argv[2])
    if "--reference" in sys.argv:
        against_reference(inputs, device)
        return
    cpu = np.load(inputs / "cpu_frames.npz")
    model = TorchModel()
    cpu_shots: dict[str, list] = {}
    rows = []
    for npz in sorted(device.glob("nvdec_frames_*.npz")):
        label = npz.stem.removeprefix("nvdec_frames_")
        nv = np.load(npz)
        for clip in nv.files:
            a, b = nv[clip].astype(np.int16), cpu[clip].astype(np.int16)
            n = min(len(a), len(b))
            d = np.abs(a[:n] - b[:n])
            row = {
                "surface": label,
                "clip": clip,
                "frames_nvdec": len(a),
                "frames_cpu": len(b),
                "mean": float(d.mean()),
                "p99": float(np.percentile(d, 99)),
                "max": int(d.max()),
            }
            if clip not in cpu_shots:
                cpu_shots[clip] = shots_of(cpu[clip], model)
            mine = shots_of(nv[clip], model)
            row["f1_vs_cpu"] = score_transitions(mine, cpu_shots[clip]).f1
            truth_file = inputs / f"{clip}.truth.json"
            if truth_file.exists():
                truth = [(t[0], t[1]) for t in json.loads(truth_file.read_text()) if len(t) < 3 or t[2] != "none"]
                row["f1_truth_cpu"] = score_transitions(cpu_shots[clip], truth).f1
                row["f1_truth_nvdec"] = score_transitions(mine, truth).f1
            rows.append(row)
            print(json.dumps(row), flush=True)
    write(device, "gpu-drift", rows, device / "drift.json")


if __name__ == "__main__":
    main()
