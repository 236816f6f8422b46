"""F1 on the REPORT sets of the probabilities bench/int8_probe.py wrote, post-processing off and on, per variant.

Run (the project's environment): `python bench/int8_score.py OUT_DIR`.
"""

import json
import sys
from pathlib import Path

import numpy as np
from accuracy import as_pairs, match, pooled_rows

from videoapi.pipeline.postprocess import transitions_for

CACHE = Path(__file__).resolve().parent / "results/accuracy-cache"
for npz in sorted(Path(sys.argv[1]).glob("probs-*.npz")):
    probs = dict(np.load(npz))
    rows = {"off": {}, "on": {}}
    drift = 0.0
    for key in sorted(k for k in probs if k.endswith("|s")):
        stem = key[:-2]
        kind = stem.rsplit("-", 2)[0]
        truth = [tuple(t) for t in json.loads((CACHE / f"{stem}.truth.json").read_text())]
        feats = dict(np.load(CACHE / f"{stem}.service-w100.npz"))
        s, m = probs[key], probs[stem + "|m"]
        for mode in ("off", "on"):
            found = transitions_for(s, m, feats, 0.5, enabled=mode == "on")
            rows[mode].setdefault(kind, []).append(match(as_pairs(found), truth))
    out = []
    for mode in ("off", "on"):
        res = {k: pooled_rows(v)["f1"] for k, v in rows[mode].items()}
        out.append(
            f"{mode}: mean {np.mean(list(res.values())):.3f} " + " ".join(f"{k[:6]} {v:.3f}" for k, v in res.items())
        )
    print(Path(npz).name, "|", " | ".join(out))
