"""Shot detection for one stored video: plan, detect (whole or by segment), stitch, publish.

Plain Python over the job store, storage and a model client: the Celery tasks
in workers/ are thin adapters over `ShotDetector`.
"""

from __future__ import annotations

import io
import itertools
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from videoapi.cues import SegmentOptions, technical_cues
from videoapi.decode import iter_model_frames, iter_model_frames_pyav
from videoapi.frame_features import FEATURE_PREFIX, FeatureTap, concatenated, frame_features, stored
from videoapi.jobs import Job, JobStatus, JobStore
from videoapi.pipeline import FrameModel, Predictions, predict_frames
from videoapi.preview import (
    OVERVIEW_COLUMNS,
    KeyframeCandidates,
    OverviewSampler,
    StoredCandidates,
    TileSource,
    keyframe_tiles,
    overview_png,
    thumbnail_sheet,
    tile_size,
)
from videoapi.probe import VideoInfo, VideoLimits, VideoRejected, probe
from videoapi.settings import Settings
from videoapi.shots import ShotList
from videoapi.storage import ObjectNotFound, Storage, StorageError, npz_bytes
from videoapi.triton.client import InferenceError, InferenceUnavailable
from videoapi.windows import MARGIN, step_for

RESULT_SCHEMA = "videoapi.shots/1"


class JobError(Exception):
    """Ends a job as failed with a machine-readable code, unless `transient` (then it is retried)."""

    def __init__(self, code: str, message: str, *, transient: bool = False):
        super().__init__(message)
        self.code, self.message, self.transient = code, message, transient


def as_job_error(exc: BaseException) -> JobError:
    """Map what the pipeline raises to the job's error code and retry policy."""
    if isinstance(exc, JobError):
        return exc
    if isinstance(exc, VideoRejected):
        return JobError(exc.code, exc.message)
    if isinstance(exc, ObjectNotFound):
        return JobError("video_not_found", str(exc))
    if isinstance(exc, StorageError):
        return JobError("storage_unavailable", str(exc), transient=exc.transient)
    if isinstance(exc, InferenceUnavailable):
        return JobError("triton_unavailable", str(exc), transient=True)
    if isinstance(exc, InferenceError):
        return JobError("inference_error", str(exc))
    return JobError("internal_error", f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Segment:
    """Frames start..stop-1 (stop None: to the end of the video)."""

    start: int
    stop: int | None


@dataclass(frozen=True)
class DecodedVideo:
    """What decoding a whole video gave (in one pass or stitched from segments): the result's makings."""

    predictions: Predictions
    overview_stride: int
    overview: np.ndarray  # every overview_stride-th model frame
    candidates: TileSource  # keyframe candidates
    open_video: Callable[[], AbstractContextManager[Path]]  # for shots shorter than the candidates' stride
    features: dict[str, np.ndarray]  # per-frame feature arrays (videoapi.frame_features), one row per frame


def _stop_if_cancelled(status: JobStatus) -> None:
    """Called between batches: a cancelled job stops using the GPU within one batch."""
    if status == JobStatus.cancelled:
        raise JobError("cancelled", "the job was cancelled")


def plan_segments(frame_count: int, segment_frames: int, window: int = 100) -> list[Segment]:
    """Split into segments of about segment_frames on the window grid; one segment when short."""
    step = step_for(window)
    length = max(step, segment_frames // step * step)
    if frame_count <= length:
        return [Segment(0, None)]
    starts = list(range(0, frame_count, length))
    return [Segment(s, s + length) for s in starts[:-1]] + [Segment(starts[-1], None)]


def _tiles_key(segment_key: str) -> str:
    return segment_key.removesuffix(".npz") + "-tiles.bin"


def _result_keys(job_id: str) -> tuple[str, str]:
    return f"results/{job_id}/shots.json", f"results/{job_id}/probabilities.npz"


class ShotDetector:
    """Runs jobs: everything a worker does, with no Celery in sight."""

    def __init__(self, settings: Settings, store: JobStore, storage: Storage, model_factory: Callable[[], FrameModel]):
        self.settings, self.store, self.storage = settings, store, storage
        self._model_factory = model_factory
        self._model: FrameModel | None = None
        self.limits = VideoLimits(
            max_width=settings.max_width,
            max_height=settings.max_height,
            max_duration_s=settings.max_duration_s,
        )

    @property
    def model(self) -> FrameModel:
        if self._model is None:
            self._model = self._model_factory()
        return self._model

    @contextmanager
    def fetched(self, job: Job) -> Iterator[Path]:
        """The job's video in a temporary file, deleted afterwards."""
        storage = self.storage.for_bucket(job.bucket)
        size = storage.size(job.key)
        if size > self.settings.max_video_bytes:
            raise JobError("file_too_large", f"{size} bytes exceeds the limit of {self.settings.max_video_bytes}")
        with tempfile.TemporaryDirectory(prefix="videoapi-job-") as tmp:
            yield storage.download(job.key, Path(tmp) / "video")

    def begin(self, job_id: str) -> list[Segment] | dict | None:
        """Fetch and probe the video and mark the job running.

        Short videos are detected right here, on the file already fetched (the
        result document is returned); long ones return the segments to run in
        parallel; None when the job had already finished (a redelivery).
        """
        job = self.store.get(job_id)
        if job.status.finished:
            return None
        with self.fetched(job) as path:
            info = probe(path, self.limits)
            if not self.store.start(job_id, info.frame_count):
                return None
            self.store.redis.hset(f"job:{job_id}", "video_info", json.dumps(asdict(info)))
            segments = plan_segments(info.frame_count, self.settings.segment_frames, self.settings.window)
            if len(segments) > 1:
                return segments
            sampler = OverviewSampler.for_video(info.frame_count, self.settings.overview_max_frames)
            candidates = KeyframeCandidates.for_video(info.width, info.height, info.frame_count)
            features = FeatureTap(frame_features(self.settings))
            try:
                predictions = self.predict_file(
                    path,
                    segments[0],
                    lambda done: _stop_if_cancelled(self.store.set_progress(job_id, done)),
                    sampler,
                    candidates,
                    features,
                )
                overview = sampler.arrays()[0]
                decoded_video = DecodedVideo(
                    predictions, sampler.stride, overview, candidates, lambda: nullcontext(path), features.arrays()
                )
                return self.publish(job_id, decoded_video)
            finally:
                candidates.close()

    def claim_fan_out(self, job_id: str) -> bool:
        """True once per job: whoever gets it sends the segments."""
        return bool(self.store.redis.hsetnx(f"job:{job_id}", "segments_sent", "1"))

    def info(self, job_id: str) -> VideoInfo:
        return VideoInfo(**json.loads(self.store.redis.hget(f"job:{job_id}", "video_info")))

    def predict_file(
        self,
        path: Path,
        segment: Segment,
        progress: Callable[[int], None],
        sampler: OverviewSampler | None = None,
        candidates: KeyframeCandidates | None = None,
        features: FeatureTap | None = None,
    ) -> Predictions:
        """Probabilities for the segment's frames; `sampler`, `candidates` and `features` take theirs on the way."""
        first = max(0, segment.start - MARGIN)
        last = None if segment.stop is None else segment.stop + MARGIN
        if self.settings.decoder == "pyav":
            frames = iter_model_frames_pyav(
                path,
                first,
                last,
                skip_loop_filter=self.settings.skip_loop_filter,
                threads=self.settings.decoder_threads,
                tiles=candidates,
            )
        else:
            frames = iter_model_frames(path, first, last, tiles=candidates)
        if features is not None:
            frames = features.tap(frames, first)
        return predict_frames(
            sampler.tap(frames, first) if sampler else frames,
            self.model,
            window=self.settings.window,
            batch_windows=self.settings.batch_windows,
            in_flight=self.settings.inflight_batches,
            on_progress=progress,
            start=segment.start,
            stop=segment.stop,
        )

    def run_segment(self, job_id: str, segment: Segment) -> str:
        """Predict one segment and park its probabilities in storage; returns their key."""
        job = self.store.get(job_id)
        _stop_if_cancelled(job.status)
        reported = 0

        def progress(done: int) -> None:
            nonlocal reported
            status = self.store.add_progress(job_id, done - reported)
            reported = done
            _stop_if_cancelled(status)

        info = self.info(job_id)
        span = {"start": segment.start, "stop": segment.stop}
        sampler = OverviewSampler.for_video(info.frame_count, self.settings.overview_max_frames, **span)
        candidates = KeyframeCandidates.for_video(info.width, info.height, info.frame_count, **span)
        features = FeatureTap(frame_features(self.settings), **span)
        key = f"work/{job_id}/segment-{segment.start:09d}.npz"
        try:
            with self.fetched(job) as path:
                predictions = self.predict_file(path, segment, progress, sampler, candidates, features)
            # the keyframe tiles' spill file goes as it is; the npz says where each tile lies in it
            self.storage.upload_fileobj(candidates.spill, _tiles_key(key), "application/octet-stream")
            arrays = {"single_frame": predictions.single_frame, "many_hot": predictions.many_hot}
            arrays |= {"overview": sampler.arrays()[0], **candidates.index_arrays(), **stored(features.arrays())}
        finally:
            candidates.close()
        self.storage.put_bytes(key, npz_bytes(**arrays), "application/x-npz")
        return key

    def stitch(self, job_id: str, segment_keys: list[str]) -> dict:
        """Concatenate segment probabilities in order and publish them like a single pass."""
        info = self.info(job_id)
        parts, tiles, feature_parts = [], {}, []
        for key in sorted(segment_keys):
            with np.load(io.BytesIO(self.storage.get_bytes(key))) as data:
                parts.append((data["single_frame"], data["many_hot"], data["overview"]))
                feature_parts.append({name: data[name] for name in data.files if name.startswith(FEATURE_PREFIX)})
                if "candidate_places" in data.files:  # a segment from an older worker has none
                    tiles[_tiles_key(key)] = {name: data[name] for name in ("candidate_frames", "candidate_places")}
        candidates = StoredCandidates(tile_size(info.width, info.height), tiles, self.storage.download)
        predictions = Predictions(
            np.concatenate([p[0] for p in parts]).astype(np.float32),
            np.concatenate([p[1] for p in parts]).astype(np.float32),
        )
        stride = OverviewSampler.for_video(info.frame_count, self.settings.overview_max_frames).stride
        overview = np.concatenate([p[2] for p in parts])
        job = self.store.get(job_id)
        try:  # the video is fetched again only for shots shorter than the candidates' stride
            decoded_video = DecodedVideo(
                predictions, stride, overview, candidates, lambda: self.fetched(job), concatenated(feature_parts)
            )
            document = self.publish(job_id, decoded_video)
        finally:
            candidates.close()
        for key in segment_keys:
            self.storage.delete(key)
            self.storage.delete(_tiles_key(key))
        return document

    def publish(self, job_id: str, decoded_video: DecodedVideo) -> dict:
        """Check the decode was complete; write shots.json, probabilities.npz and the pictures; succeed the job."""
        predictions = decoded_video.predictions
        job, info = self.store.get(job_id), self.info(job_id)
        _stop_if_cancelled(job.status)
        decoded = predictions.frame_count
        if decoded == 0:
            raise JobError("zero_frames", "no frame could be decoded")
        if decoded < info.frame_count - max(2, info.frame_count // 200):
            raise JobError(
                "truncated_video", f"only {decoded} of {info.frame_count} frames could be decoded: truncated or corrupt"
            )
        fps = info.fps
        shots = ShotList.from_predictions(predictions.single_frame, fps=fps, threshold=job.threshold)
        shots_key, probs_key = _result_keys(job_id)
        previews = self._publish_previews(job_id, shots, decoded_video)
        served = getattr(self.model, "served_model", None)
        model = served() if callable(served) else None
        document = {
            "schema": RESULT_SCHEMA,
            "job_id": job_id,
            "video": {
                "source": f"s3://{job.bucket}/{job.key}",
                "fps": fps,
                "frame_count": decoded,
                "duration": round(decoded / fps, 6),
                "width": info.width,
                "height": info.height,
                "codec": info.codec,
            },
            "model": {
                "name": model.name if model else self.settings.model_name,
                "version": model.version if model else "",
                "window": self.settings.window,
            },
            "threshold": job.threshold,
            "shot_count": len(shots.shots),
            "shots": [
                {**shot, "keyframe": frame}
                for shot, frame in itertools.zip_longest(shots.to_dicts(), previews["thumbnails"]["keyframes"])
                if shot
            ],
            "probabilities": {"key": probs_key, "format": "npz", "arrays": ["single_frame", "many_hot"]},
            "previews": previews,
        }
        segments = SegmentOptions.from_record(job.extra.get("segment_options"))
        document["segment_types"] = list(segments.segment_types)
        if "TECHNICAL_CUE" in segments.segment_types and "cue_luma_percentiles" in decoded_video.features:
            document["technical_cues"] = technical_cues(decoded_video.features, fps, segments)
        self.storage.put_bytes(
            probs_key,
            npz_bytes(single_frame=predictions.single_frame, many_hot=predictions.many_hot),
            "application/x-npz",
        )
        self.storage.put_json(shots_key, document)
        self.store.set_progress(job_id, decoded)
        self.store.succeed(job_id, shots_key)
        return document

    def _publish_previews(self, job_id: str, shots: ShotList, video: DecodedVideo) -> dict:
        """overview.png (frames and predictions) and thumbnails.jpg (a keyframe per shot); their keys and layout."""
        overview_key, sheet_key = f"results/{job_id}/overview.png", f"results/{job_id}/thumbnails.jpg"
        stride, overview, candidates = video.overview_stride, video.overview, video.candidates
        png = overview_png(overview, video.predictions.single_frame, video.predictions.many_hot, stride)
        self.storage.put_bytes(overview_key, png, "image/png")
        spans = [(shot.start_frame, shot.end_frame) for shot in shots.shots][: self.settings.max_thumbnails]
        frames, tiles = keyframe_tiles(candidates, spans, video.open_video)
        sheet = thumbnail_sheet(tiles, len(frames), candidates.size, columns=max(10, -(-len(frames) // 700)))
        self.storage.put_bytes(sheet_key, sheet.jpeg, "image/jpeg")
        return {
            "overview": {"key": overview_key, "stride": stride, "columns": OVERVIEW_COLUMNS, "tiles": len(overview)},
            "thumbnails": {"key": sheet_key, "keyframes": frames, **sheet.layout()},
        }

    def fail(self, job_id: str, error: JobError) -> None:
        self.store.fail(job_id, error.code, error.message)
