"""Per-video inputs of the accuracy bench, computed once and kept under bench/results/accuracy-cache/.

For each generated video: the service's decode (videoapi.pipeline.decode, as the worker does it) run through
the model in-process (ONNX Runtime on model_repository's model.onnx, what Triton's CPU model runs)
with the post-processing's frame features tapped on the way; the reference package's probabilities;
PySceneDetect's boundaries. None of these depend on the post-processing, so re-tuning it re-runs nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
from testset import write_hard_video

from videoapi.model.runtime import cpu_flags, int8_model_path
from videoapi.pipeline.decode import iter_model_frames_pyav
from videoapi.pipeline.engine import LocalModel
from videoapi.pipeline.frame_features import FeatureTap, frame_features
from videoapi.pipeline.inference import predict_frames
from videoapi.pipeline.probe import probe_timeline
from videoapi.settings import Settings

CACHE = Path("bench/results/accuracy-cache")
TAIL = "-tail"  # predictions made with the video's last window cut to what it needs (0eb8724)


class OnnxModel:
    """TransNetV2 in-process on ONNX Runtime (the FrameModel protocol)."""

    def __init__(self, settings: Settings):
        import onnxruntime as ort

        path = settings.model_repository / settings.model_name / "1" / "model.onnx"
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        single, many = self.session.run(None, {"frames": windows})
        return single[..., 0], many[..., 0]


def video(kind: str, seed: int, shots: int) -> tuple[Path, list[tuple[int, int, str]]]:
    """The generated video and its typed truth, made on first use."""
    path = CACHE / f"{kind}-{seed}-{shots}.mp4"
    truth_path = path.with_suffix(".truth.json")
    if not truth_path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        write_hard_video(path, kind, seed=seed, shots=shots)
    return path, [tuple(t) for t in json.loads(truth_path.read_text())]


def service_inputs(path: Path, settings: Settings, model: OnnxModel) -> dict[str, np.ndarray]:
    """single_frame, many_hot and the frame features, as the worker computes them."""
    # the window changes the probabilities, and so did the short last window (windows.tail_window): TAIL in the name
    cached = path.with_suffix(f".service-w{settings.window}{TAIL}.npz")
    if not cached.exists():
        tap = FeatureTap(frame_features(settings))
        frames = tap.tap(
            iter_model_frames_pyav(path, skip_loop_filter=settings.skip_loop_filter, frame_pts=_frame_pts(path)), 0
        )
        predictions = predict_frames(frames, model, window=settings.window, batch_windows=4)
        np.savez(cached, single_frame=predictions.single_frame, many_hot=predictions.many_hot, **tap.arrays())
    with np.load(cached) as data:
        return {name: data[name] for name in data.files}


def _frame_pts(path: Path) -> np.ndarray:
    """The probe's timestamps, as the worker passes them: frames numbered by their positions among them, not by
    timestamp times the rate (which differ on a file with variable frame rate or gaps in its timestamps)."""
    return probe_timeline(path)[1]


def int8_model(settings: Settings) -> LocalModel:
    """TransNetV2's INT8 OpenVINO model (`videoapi model build` writes it beside model.onnx), in-process."""
    return LocalModel(settings.model_repository / settings.model_name, precision="int8")


def _int8_digest(settings: Settings) -> str:
    """Eight hex digits of the INT8 model's weights and graph: its probabilities are cached per build."""
    onnx = settings.model_repository / settings.model_name / "1" / "model.onnx"
    return _file_digest(int8_model_path(str(onnx), cpu_flags()))  # the build this CPU (or oneDNN cap) runs


@functools.cache
def _file_digest(xml_path: str) -> str:
    """The digest of an OpenVINO model's .xml and .bin, read once per process (23 MB, asked for per video)."""
    xml = Path(xml_path)
    digest = hashlib.sha256(xml.read_bytes())
    digest.update(xml.with_suffix(".bin").read_bytes())
    return digest.hexdigest()[:8]


def int8_probabilities(path: Path, settings: Settings, model: LocalModel) -> dict[str, np.ndarray]:
    """single_frame and many_hot of the INT8 model on the service's decode (the features are the f32 run's)."""
    # another CPU's kernels stood in for (oneDNN's cap) round otherwise: their own file
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").lower()
    # and a rebuilt INT8 model (another quantization) has its own file too
    cached = path.with_suffix(
        f".service-int8-{_int8_digest(settings)}{'-' + isa if isa else ''}-w{settings.window}{TAIL}.npz"
    )
    if not cached.exists():
        frames = iter_model_frames_pyav(path, skip_loop_filter=settings.skip_loop_filter, frame_pts=_frame_pts(path))
        predictions = predict_frames(frames, model, window=settings.window, batch_windows=4)
        np.savez(cached, single_frame=predictions.single_frame, many_hot=predictions.many_hot)
    with np.load(cached) as data:
        return {name: data[name] for name in data.files}


def reference_single(path: Path, reference_model, frames_of) -> np.ndarray:
    """The reference package's single-frame probabilities."""
    cached = path.with_suffix(".reference.npy")
    if not cached.exists():
        import torch

        with torch.no_grad():
            single, _ = reference_model.predict_frames(torch.from_numpy(frames_of(path).copy()), quiet=True)
        np.save(cached, single.numpy().reshape(-1).astype(np.float32))
    return np.load(cached)


def scenedetect_boundaries(path: Path, name: str, run) -> list[tuple[int, int]]:
    """PySceneDetect's transitions with one detector (`name`: detector and version), `run(path)` on first use."""
    cached = path.with_suffix(f".{name}.json")
    if not cached.exists():
        cached.write_text(json.dumps(run(path)))
    return [tuple(t) for t in json.loads(cached.read_text())]
