"""Probe (issue 19): INT8 post-training quantization of TransNetV2 with OpenVINO's NNCF, calibrated on the
accuracy bench's TUNE videos, timed and run on its REPORT videos side by side with f32 and bf16.

Not part of the service yet. NNCF is not a project dependency: run it with a venv of its own, after
`python bench/accuracy.py` has filled bench/results/accuracy-cache/ and `make install` built the model:
    python3 -m venv /tmp/int8 && /tmp/int8/bin/pip install openvino==2026.4.1 nncf "numpy<2" av
    /tmp/int8/bin/python bench/int8_probe.py OUT_DIR
It writes OUT_DIR/int8.xml, speed.json and probs-*.npz (each video's single_frame and many_hot per variant).
"""

import json
import sys
import time
from pathlib import Path

import av
import nncf
import numpy as np
import openvino as ov

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench/results/accuracy-cache"
ONNX = ROOT / "model_repository/transnetv2/1/model.onnx"
OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)


def frames(path, limit=100000):
    """RGB frames at 48x27, PyAV's scaler."""
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= limit:
                break
            out.append(f.to_ndarray(format="rgb24", width=48, height=27))
    return np.stack(out)


def windows(fr):
    """100-frame windows, step 50, padded as the reference pads (25 copies of the first, 25+ of the last)."""
    n = len(fr)
    pad_end = 25 + 50 - (n % 50 if n % 50 != 0 else 50)
    padded = np.concatenate([np.repeat(fr[:1], 25, 0), fr, np.repeat(fr[-1:], pad_end, 0)])
    return np.stack([padded[i : i + 100] for i in range(0, len(padded) - 50, 50)])


core = ov.Core()
model = core.read_model(str(ONNX))
if not (OUT / "int8.xml").exists():
    calib = []
    for path in sorted(CACHE.glob("*-1001-20.mp4")):  # TUNE seeds only
        w = windows(frames(path, 600))
        calib += [w[i : i + 1] for i in range(0, len(w), 2)]
    print("calibration windows", len(calib), flush=True)
    q = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib), preset=nncf.QuantizationPreset.MIXED)
    ov.save_model(q, str(OUT / "int8.xml"))
int8 = core.read_model(str(OUT / "int8.xml"))

variants = {
    "f32": (model, "f32"),
    "bf16": (model, "bf16"),
    "int8 (f32 rest)": (int8, "f32"),
    "int8 (bf16 rest)": (int8, "bf16"),
}
test = windows(frames(CACHE / "cuts-2001-20.mp4", 800))[:8]
batch = test[:4]
results = {}
for name, (m, prec) in variants.items():
    c = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": prec, "PERFORMANCE_HINT": "LATENCY"})
    r = c.create_infer_request()
    r.infer({0: batch})
    t = time.perf_counter()
    k = 0
    while time.perf_counter() - t < 5:
        r.infer({0: batch})
        k += 1
    fps = k * 4 * 50 / (time.perf_counter() - t)
    results[name] = {"useful_fps_batch4": fps}
    print(name, f"{fps:.0f} useful frames/s (batch 4)", flush=True)
    # probabilities on every REPORT video, for the accuracy comparison
    probs = {}
    for path in sorted(CACHE.glob("*-200[12]-20.mp4")):
        decoded = frames(path)
        w = windows(decoded)
        s_out, m_out = [], []
        for i in range(0, len(w), 4):
            res = (
                r.infer({0: w[i : i + 4]})
                if len(w[i : i + 4]) == 4
                else c.create_infer_request().infer({0: w[i : i + 4]})
            )
            s_out.append(res[c.output(0)][:, 25:75, 0])
            m_out.append(res[c.output(1)][:, 25:75, 0])
        n = len(decoded)
        probs[path.stem] = (np.concatenate(s_out).reshape(-1)[:n], np.concatenate(m_out).reshape(-1)[:n])
    np.savez(
        OUT / f"probs-{name.split()[0]}-{prec}.npz",
        **{k + "|s": v[0] for k, v in probs.items()},
        **{k + "|m": v[1] for k, v in probs.items()},
    )
json.dump(results, open(OUT / "speed.json", "w"), indent=1)
