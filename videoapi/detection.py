"""Shot detection for one stored video: plan, detect (whole or by segment), stitch, publish.

Plain Python over the job store, storage and a model client: the Celery tasks
in workers/ are thin adapters over `ShotDetector`.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from videoapi.analysis import (
    DecodedVideo,
    JobError,
    Segment,
    decode_whole,
    detect_result,
    frame_clock,
    predict_file,
)
from videoapi.cues import SegmentOptions
from videoapi.decode import DecodeLog
from videoapi.frame_features import FEATURE_PREFIX, FeatureTap, concatenated, frame_features, stored
from videoapi.jobs import POSTPROCESS_FIELD, Job, JobStatus, JobStore
from videoapi.pipeline import FrameModel, Predictions
from videoapi.preview import KeyframeCandidates, OverviewSampler, StoredCandidates, tile_size
from videoapi.probe import VideoInfo, VideoLimits, VideoRejected, probe_timeline
from videoapi.result import RESULT_SCHEMA, ModelIdentity, ResultKeys
from videoapi.settings import Settings
from videoapi.storage import ObjectNotFound, Storage, StorageError, npz_bytes
from videoapi.triton.client import InferenceError, InferenceUnavailable
from videoapi.url_source import SourceError, SourceRules, download, is_url
from videoapi.windows import step_for

__all__ = ["RESULT_SCHEMA", "DecodedVideo", "JobError", "Segment", "ShotDetector", "as_job_error", "plan_segments"]


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


def _frame_pts_key(job_id: str) -> str:
    return f"work/{job_id}/frame-pts.npz"


def _result_keys(job_id: str) -> ResultKeys:
    return ResultKeys.under(f"results/{job_id}/")


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
        self.source_rules = SourceRules(
            max_bytes=settings.max_video_bytes,
            allow_http=settings.url_source_allow_http,
            allow_private=settings.url_source_allow_private,
            allow_loopback=settings.url_source_allow_loopback,
            timeout_s=settings.url_source_timeout_s,
        )

    @property
    def model(self) -> FrameModel:
        if self._model is None:
            self._model = self._model_factory()
        return self._model

    @contextmanager
    def fetched(self, job: Job) -> Iterator[Path]:
        """The job's video in a temporary file, deleted afterwards."""
        if is_url(job.key):
            with tempfile.TemporaryDirectory(prefix="videoapi-job-") as tmp:
                try:
                    yield download(job.key, Path(tmp) / "video", self.source_rules)
                except SourceError as exc:
                    raise JobError(exc.code, exc.message) from exc
            return
        storage = self.storage.for_bucket(job.bucket)
        version = job.extra.get("source_version") or None
        size = storage.size(job.key, version)
        if size > self.settings.max_video_bytes:
            raise JobError("file_too_large", f"{size} bytes exceeds the limit of {self.settings.max_video_bytes}")
        with tempfile.TemporaryDirectory(prefix="videoapi-job-") as tmp:
            yield storage.download(job.key, Path(tmp) / "video", version)

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
            info, frame_pts = probe_timeline(path, self.limits)
            if not self.store.start(job_id, info.frame_count):
                return None
            self.store.redis.hset(f"job:{job_id}", "video_info", json.dumps(asdict(info)))
            segments = plan_segments(info.frame_count, self.settings.segment_frames, self.settings.window)
            if len(segments) > 1:
                # the segments find their frames by these timestamps, and the result is timed by them
                self.storage.put_bytes(_frame_pts_key(job_id), npz_bytes(frame_pts=frame_pts), "application/x-npz")
                return segments

            def progress(done: int) -> None:
                _stop_if_cancelled(self.store.set_progress(job_id, done))

            with decode_whole(path, info, self.settings, self.model, progress, frame_pts=frame_pts) as decoded_video:
                return self.publish(job_id, decoded_video)

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
        *,
        frame_pts: np.ndarray | None = None,
        log: DecodeLog | None = None,
    ) -> Predictions:
        """Probabilities for the segment's frames (videoapi.analysis.predict_file with this worker's model)."""
        return predict_file(
            path,
            segment,
            self.settings,
            self.model,
            progress,
            sampler,
            candidates,
            features,
            frame_pts=frame_pts,
            log=log,
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
        log = DecodeLog(segment.start, segment.stop)
        key = f"work/{job_id}/segment-{segment.start:09d}.npz"
        frame_pts = self._frame_pts(job_id)
        try:
            with self.fetched(job) as path:
                predictions = self.predict_file(
                    path, segment, progress, sampler, candidates, features, frame_pts=frame_pts, log=log
                )
            # the keyframe tiles' spill file goes as it is; the npz says where each tile lies in it
            self.storage.upload_fileobj(candidates.spill, _tiles_key(key), "application/octet-stream")
            arrays = {"single_frame": predictions.single_frame, "many_hot": predictions.many_hot}
            arrays |= {"overview": sampler.arrays()[0], **candidates.index_arrays(), **stored(features.arrays())}
            arrays |= log.arrays()
        finally:
            candidates.close()
        self.storage.put_bytes(key, npz_bytes(**arrays), "application/x-npz")
        return key

    def _frame_pts(self, job_id: str) -> np.ndarray | None:
        """The probe's frame timestamps, parked for a split job (None from a job begun by an older worker)."""
        try:
            with np.load(io.BytesIO(self.storage.get_bytes(_frame_pts_key(job_id)))) as data:
                return data["frame_pts"]
        except ObjectNotFound:
            return None

    def stitch(self, job_id: str, segment_keys: list[str]) -> dict:
        """Concatenate segment probabilities in order and publish them like a single pass."""
        info = self.info(job_id)
        parts, tiles, feature_parts, errors, damaged = [], {}, [], 0, []
        for key in sorted(segment_keys):
            with np.load(io.BytesIO(self.storage.get_bytes(key))) as data:
                parts.append((data["single_frame"], data["many_hot"], data["overview"]))
                if "decode_errors" in data.files:
                    errors += int(data["decode_errors"].sum())
                    damaged.append(data["decode_damaged"])
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
                predictions,
                stride,
                overview,
                candidates,
                lambda: self.fetched(job),
                concatenated(feature_parts),
                self._frame_pts(job_id),
                errors,
                np.concatenate(damaged) if damaged else np.zeros(0, dtype=np.int64),
            )
            document = self.publish(job_id, decoded_video)
        finally:
            candidates.close()
        for key in segment_keys:
            self.storage.delete(key)
            self.storage.delete(_tiles_key(key))
        self.storage.delete(_frame_pts_key(job_id))
        return document

    def publish(self, job_id: str, decoded_video: DecodedVideo) -> dict:
        """Check the decode was complete; write shots.json, probabilities.npz and the pictures; succeed the job."""
        job, info = self.store.get(job_id), self.info(job_id)
        _stop_if_cancelled(job.status)
        keys = _result_keys(job_id)
        detection = detect_result(
            decoded_video,
            info,
            self.settings,
            threshold=job.threshold,
            postprocess=job.extra.get(POSTPROCESS_FIELD, "1" if self.settings.postprocess else "0") == "1",
            segments=SegmentOptions.from_record(job.extra.get("segment_options")),
            job_id=job_id,
            source=job.key if is_url(job.key) else f"s3://{job.bucket}/{job.key}",
            keys=keys,
            model=self.model_identity(),
        )
        self.storage.put_bytes(keys.overview, detection.overview_png, "image/png")
        self.storage.put_bytes(keys.thumbnails, detection.thumbnails_jpeg, "image/jpeg")
        self.storage.put_bytes(keys.probabilities, detection.probabilities_npz(), "application/x-npz")
        self.storage.put_json(keys.shots, detection.document)
        self.store.set_progress(job_id, detection.predictions.frame_count)
        self.store.succeed(job_id, keys.shots)
        return detection.document

    frame_clock = staticmethod(frame_clock)

    def model_identity(self) -> ModelIdentity:
        """The served model's name and version, as the document names them."""
        served = getattr(self.model, "served_model", None)
        model = served() if callable(served) else None
        return ModelIdentity(
            name=model.name if model else self.settings.model_name,
            version=model.version if model else "",
            window=self.settings.window,
        )

    def fail(self, job_id: str, error: JobError) -> None:
        self.store.fail(job_id, error.code, error.message)
