"""Shot detection for one stored video: plan, detect (whole or by segment), stitch, publish.

Plain Python over the job store, storage and a model client: the Celery tasks
in workers/ are thin adapters over `ShotDetector`.

Over 300 lines because planning, checkpointed segments, stitching and publishing share one job's state
(its keys, parts and leases); split apart, each piece would need the others' private naming.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.adapters.redis_client import texts
from videoapi.adapters.storage import Storage
from videoapi.domain import redis_keys
from videoapi.domain.fairness import FairQueue
from videoapi.domain.jobs import POSTPROCESS_FIELD, Job, JobStatus, JobStore
from videoapi.domain.result import RESULT_SCHEMA, ModelIdentity, ResultKeys, npz_bytes
from videoapi.errors import JobError, ObjectNotFound, Preempted, SourceError, VideoapiError
from videoapi.pipeline.analysis import (
    WHOLE_VIDEO,
    DecodedVideo,
    Segment,
    decode_whole,
    detect_result,
    frame_clock,
    predict_file,
)
from videoapi.pipeline.cues import SegmentOptions
from videoapi.pipeline.decode import DecodeLog
from videoapi.pipeline.frame_features import FEATURE_PREFIX, FeatureTap, concatenated, frame_features, stored
from videoapi.pipeline.inference import FrameModel, Predictions
from videoapi.pipeline.preview import KeyframeCandidates, OverviewSampler, StoredCandidates, keyframe_geometry
from videoapi.pipeline.probe import VideoInfo, VideoLimits, probe_timeline
from videoapi.pipeline.scratch import job_scratch
from videoapi.pipeline.url_source import SourceRules, download, is_url
from videoapi.pipeline.windows import MARGIN, step_for
from videoapi.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["RESULT_SCHEMA", "DecodedVideo", "JobError", "Segment", "ShotDetector", "as_job_error", "plan_segments"]


def as_job_error(exc: BaseException) -> JobError:
    """The job's error for what the pipeline raised: the family's code and retry policy; internal_error else."""
    if isinstance(exc, JobError):
        return exc
    if isinstance(exc, VideoapiError):
        return JobError(exc.code, exc.message, transient=exc.transient)
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


STATE_PREFIX = "state_"  # a checkpoint's frame features' carried state (the stitch reads only their arrays)


def _tiles_key(segment_key: str) -> str:
    return segment_key.removesuffix(".npz") + "-tiles.bin"


def _frame_pts_key(job_id: str) -> str:
    return f"work/{job_id}/frame-pts.npz"


def _result_keys(job_id: str) -> ResultKeys:
    return ResultKeys.under(f"results/{job_id}/")


def _part_key(job_id: str, part: Segment) -> str:
    """Where a checkpoint (the npz a segment writes) of frames part.start..part.stop-1 lies."""
    stop = "end" if part.stop is None else f"{part.stop:09d}"
    return f"work/{job_id}/part-{part.start:09d}-{stop}.npz"


def _part_stop(key: str) -> int | None:
    tail = key.removesuffix(".npz").rsplit("-", 1)[1]
    return None if tail == "end" else int(tail)


_PUBLISHERS = ThreadPoolExecutor(3, thread_name_prefix="publish")  # a result's files written at once (boto3's
# clients are thread-safe); one pool per process, its threads idle between jobs
STAGES_FIELD = "stage_s"  # a short job's seconds: fetch, probe, predict (decode and inference), publish
FRAMES_INFERRED_FIELD = "frames_inferred"  # the job's frames sent to the model, over all its attempts

Preempt = Callable[[float], bool]  # given the task's remaining seconds: should it stop now (its worker is leaving)?


class _Cut:
    """Ends a part early, on the window grid, so that a worker leaving checkpoints what it has inferred.

    The last tap before the windows: it counts the frames gone by; `request` picks the first grid frame not
    yet decoded, stops the part's taps there, and lets the frames through to 25 past it (the context its
    last window needs), then ends the stream. The one window after the cut is padded and thrown away.
    """

    def __init__(self, part: Segment, step: int, taps: list[Any]):
        self.part, self.step, self.taps = part, step, taps
        self.next_index = part.start
        self.at: int | None = None

    def request(self) -> bool:
        """Cut at the next grid frame; False when the part ends there anyway (it finishes as it is)."""
        if self.at is None:
            at = max(self.part.start, -(-self.next_index // self.step) * self.step)
            if self.part.stop is not None and at >= self.part.stop:
                return False
            self.at = at
            for tap in self.taps:
                tap.stop = at
        return True

    def tap(self, frames: Iterator[NDArray[Any]], first: int) -> Iterator[NDArray[Any]]:
        for index, frame in enumerate(frames, start=first):
            if self.at is not None and index >= self.at + MARGIN:
                return
            self.next_index = max(self.next_index, index + 1)
            yield frame


class ShotDetector:
    """Runs jobs: everything a worker does, with no Celery in sight."""

    def __init__(self, settings: Settings, store: JobStore, storage: Storage, model_factory: Callable[[], FrameModel]):
        self.settings, self.store, self.storage = settings, store, storage
        self._model_factory = model_factory
        self._model: FrameModel | None = None
        self.last_published: tuple[str, dict[str, Any]] | None = None  # (job id, document): for its batch's part
        self.limits = VideoLimits.from_settings(settings)
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
            with job_scratch() as tmp:
                try:
                    yield download(job.key, tmp / "video", self.source_rules)
                except SourceError as exc:
                    raise JobError(exc.code, exc.message) from exc
            return
        storage = self.storage.for_bucket(job.bucket)
        version = job.extra.get("source_version") or None

        def check_size(size: int) -> None:
            if size > self.settings.max_video_bytes:
                raise JobError("file_too_large", f"{size} bytes exceeds the limit of {self.settings.max_video_bytes}")

        with job_scratch() as tmp:  # one GET, its length checked before the body is read (no HEAD first)
            yield storage.download(job.key, tmp / "video", version, check_size=check_size)

    def begin(self, job_id: str, preempt: Preempt | None = None) -> list[Segment] | dict[str, Any] | None:
        """Fetch and probe the video and mark the job running.

        Short videos are detected right here, on the file already fetched (the
        result document is returned); long ones return the segments to run in
        parallel; None when the job had already finished (a redelivery). Progress is checkpointed every
        `checkpoint_windows` windows: a retry resumes there. `preempt` (scale-in) can stop it at a batch,
        raising Preempted.
        """
        job = self.store.get(job_id)
        if job.status.finished:
            return None
        began = time.perf_counter()
        with self.fetched(job) as path:
            fetched = time.perf_counter()
            info, frame_pts = probe_timeline(path, self.limits)
            probed = time.perf_counter()
            if not self.store.start(job_id, info.frame_count):
                return None
            self.store.set_field(job_id, "video_info", json.dumps(asdict(info)))
            segments = plan_segments(info.frame_count, self.settings.segment_frames, self.settings.window)
            if len(segments) > 1:
                # the segments find their frames by these timestamps, and the result is timed by them
                self.storage.put_bytes(_frame_pts_key(job_id), npz_bytes(frame_pts=frame_pts), "application/x-npz")
                return segments

            def progress(done: int) -> None:
                _stop_if_cancelled(self.store.set_progress(job_id, done))

            if self._checkpointed(job_id, info.frame_count):
                parts = self.predict_span(job_id, path, info, WHOLE_VIDEO, frame_pts, progress, preempt)
                document = self._publish_parts(job_id, parts, frame_pts, lambda: nullcontext(path))
                self._drop_parts(job_id, parts)
                return document
            predicting = time.perf_counter()
            asked = SegmentOptions.from_record(job.extra.get("segment_options"))
            with decode_whole(
                path, info, self.settings, self.model, progress, frame_pts=frame_pts, segments=asked
            ) as decoded_video:
                predicted = time.perf_counter()
                document = self.publish(job_id, decoded_video)
            # where a short job's time went, in its record: decode and inference against the service's own work
            stages = {
                "fetch": fetched - began,
                "probe": probed - fetched,
                "predict": predicted - predicting,
                "publish": time.perf_counter() - predicted,
            }
            self.store.set_field(job_id, STAGES_FIELD, json.dumps({k: round(v, 4) for k, v in stages.items()}))
            return document

    def _checkpointed(self, job_id: str, frame_count: int) -> bool:
        """Whether a whole-video job runs in checkpointed parts: not when its first part would be its only one
        (which would only be written and read back: 0.5 s of an 8 s job), unless a part is saved already."""
        if not self.settings.checkpoint_windows:
            return False
        return self._part_stop(0, frame_count) < frame_count or bool(self._checkpoints(job_id, WHOLE_VIDEO))

    def _part_stop(self, at: int, end: int) -> int:
        """Where a checkpointed part starting at frame `at` of a span ending at `end` stops: `checkpoint_windows`
        windows on, or at the end when less than half a part would be left (a part opens and seeks the video);
        without checkpoints, at the end."""
        length = self.settings.checkpoint_windows * step_for(self.settings.window) or math.inf
        return end if end - (at + length) < length / 2 else int(at + length)

    def claim_fan_out(self, job_id: str) -> bool:
        """True once per job: whoever gets it sends the segments."""
        return self.store.set_once(job_id, "segments_sent")

    def info(self, job_id: str) -> VideoInfo:
        return VideoInfo(**json.loads(self.store.field(job_id, "video_info") or "{}"))

    def predict_file(
        self,
        path: Path,
        segment: Segment,
        progress: Callable[[int], None],
        sampler: OverviewSampler | None = None,
        candidates: KeyframeCandidates | None = None,
        features: FeatureTap | None = None,
        *,
        frame_pts: NDArray[Any] | None = None,
        log: DecodeLog | None = None,
        last_tap: Callable[[Iterator[NDArray[Any]], int], Iterator[NDArray[Any]]] | None = None,
    ) -> Predictions:
        """Probabilities for the segment's frames (videoapi.pipeline.analysis.predict_file with this worker's model)."""
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
            last_tap=last_tap,
            backlog=self.queue_backlog,
        )

    def queue_backlog(self) -> int:
        """Jobs queued for the workers and not yet taken, every client's (the decoder split's tail rule)."""
        return FairQueue(self.store.redis).backlog()

    def run_segment(self, job_id: str, segment: Segment, preempt: Preempt | None = None) -> list[str]:
        """Predict one segment and park its probabilities in storage, as checkpoints; returns their keys in order."""
        job = self.store.get(job_id)
        _stop_if_cancelled(job.status)
        reported = 0

        def progress(done: int) -> None:
            nonlocal reported
            status = self.store.add_progress(job_id, done - reported)
            reported = done
            _stop_if_cancelled(status)

        info = self.info(job_id)
        frame_pts = self._frame_pts(job_id)
        resumed = self._checkpoints(job_id, segment)
        if resumed and _part_stop(resumed[-1]) in (None, segment.stop):
            return resumed  # a retry of a segment that had finished (its worker died before acknowledging)
        with self.fetched(job) as path:
            resumed_at = _part_stop(resumed[-1]) if resumed else None
            reported = resumed_at - segment.start if resumed_at is not None else 0  # counted by the earlier attempt
            return self.predict_span(job_id, path, info, segment, frame_pts, progress, preempt)

    def _checkpoints(self, job_id: str, span: Segment) -> list[str]:
        return list(dict.fromkeys(texts(self.store.redis.lrange(redis_keys.checkpoints(job_id, span.start), 0, -1))))

    def predict_span(
        self,
        job_id: str,
        path: Path,
        info: VideoInfo,
        span: Segment,
        frame_pts: NDArray[Any] | None,
        progress: Callable[[int], None],
        preempt: Preempt | None = None,
    ) -> list[str]:
        """Predict the span's frames as checkpoints of `checkpoint_windows` windows each, resuming after the last saved.

        Each checkpoint is a part on the window grid, written as a segment's npz (probabilities, overview,
        keyframe candidates, frame features, decode log): its decode starts 25 frames (the window's context)
        before it, so the parts stitch into exactly the single pass. `progress` gets the span's frames done.
        """
        parts = self._checkpoints(job_id, span)
        at = span.start if not parts else _part_stop(parts[-1])
        if at is None or at == span.stop:
            return parts
        end = info.frame_count if span.stop is None else span.stop
        redis = self.store.redis
        state = self._carried_state(parts[-1]) if parts else {}
        began, inferred, leaving = time.monotonic(), 0, False
        while True:
            stop = self._part_stop(at, end)
            if span.stop is None and stop >= info.frame_count:
                part = Segment(at, None)  # the last part runs to the video's end, whatever the probe counted
            else:
                part = Segment(at, int(min(stop, end)))
            counted = 0
            cut = _Cut(part, step_for(self.settings.window), [])

            def on_progress(done: int, part: Segment = part, cut: _Cut = cut) -> None:
                nonlocal counted, inferred, leaving
                redis.hincrby(redis_keys.job(job_id), FRAMES_INFERRED_FIELD, done - counted)
                inferred += done - counted
                counted = done
                shown = done if cut.at is None else min(done, cut.at - part.start)
                progress(part.start - span.start + shown)
                if preempt is not None and not leaving:
                    left = max(0, end - part.start - done)
                    rate = inferred / max(1e-6, time.monotonic() - began)
                    if preempt(left / rate if rate else math.inf):
                        leaving = True  # checkpoint now: cut this part at the next grid frame, then yield
                        cut.request()

            key, frames, state, part = self._predict_part(job_id, path, info, part, frame_pts, on_progress, state, cut)
            with redis.pipeline() as pipe:
                pipe.rpush(redis_keys.checkpoints(job_id, span.start), key)
                pipe.sadd(redis_keys.checkpoint_lists(job_id), redis_keys.checkpoints(job_id, span.start))
                for name in (redis_keys.checkpoints(job_id, span.start), redis_keys.checkpoint_lists(job_id)):
                    pipe.expire(name, 7 * 24 * 3600)
                pipe.execute()
            parts.append(key)
            if part.stop is None or part.stop >= end or (cut.at is None and frames < part.stop - part.start):
                return parts
            if leaving:
                raise Preempted(f"checkpointed at frame {part.stop}; {end - part.stop} frames left to another worker")
            at = part.stop

    def _predict_part(
        self,
        job_id: str,
        path: Path,
        info: VideoInfo,
        part: Segment,
        frame_pts: NDArray[Any] | None,
        progress: Callable[[int], None],
        state: dict[str, NDArray[Any]],
        cut: _Cut | None = None,
    ) -> tuple[str, int, dict[str, NDArray[Any]], Segment]:
        """Predict frames part.start..part.stop-1 and store them as a segment's npz.

        `state`: the frame features' state at the end of the part before (none for a segment's first part);
        `cut` can end it early (scale-in); returns the part's key, its frame count, the state at its end and
        the part as stored.
        """
        start, stop = part.start, part.stop
        sampler = OverviewSampler.for_video(info.frame_count, self.settings.overview_max_frames, start, stop)
        candidates = KeyframeCandidates.for_info(info, start=start, stop=stop)
        segments = SegmentOptions.from_record(self.store.get(job_id).extra.get("segment_options"))
        features = FeatureTap(frame_features(self.settings, info, segments), start, stop)
        features.restore(state)
        log = DecodeLog(part.start, part.stop)
        if cut is not None:
            cut.taps = [sampler, candidates, features, log]
        try:
            predictions = self.predict_file(
                path,
                part,
                progress,
                sampler,
                candidates,
                features,
                frame_pts=frame_pts,
                log=log,
                last_tap=cut.tap if cut is not None else None,
            )
            if cut is not None and cut.at is not None and predictions.frame_count > cut.at - part.start:
                kept = cut.at - part.start  # the window past the cut was padded: its predictions go
                predictions = Predictions(predictions.single_frame[:kept], predictions.many_hot[:kept])
                part = Segment(part.start, cut.at)
            elif cut is not None:
                cut.at = None  # the video ended before the cut: the part is whole
            key = _part_key(job_id, part)
            # the keyframe tiles' spill file goes as it is; the npz says where each tile lies in it
            self.storage.upload_fileobj(candidates.spill, _tiles_key(key), "application/octet-stream")
            arrays = {"single_frame": predictions.single_frame, "many_hot": predictions.many_hot}
            arrays |= {"overview": sampler.arrays()[0], **candidates.index_arrays(), **stored(features.arrays())}
            arrays |= log.arrays()
            state = features.state()
            arrays |= {STATE_PREFIX + name: values for name, values in state.items()}
        finally:
            candidates.close()
        self.storage.put_bytes(key, npz_bytes(**arrays), "application/x-npz")
        return key, predictions.frame_count, state, part

    def _carried_state(self, key: str) -> dict[str, NDArray[Any]]:
        with np.load(io.BytesIO(self.storage.get_bytes(key))) as data:
            return {n.removeprefix(STATE_PREFIX): data[n] for n in data.files if n.startswith(STATE_PREFIX)}

    def _frame_pts(self, job_id: str) -> NDArray[Any] | None:
        """The probe's frame timestamps, parked for a split job (None from a job begun by an older worker)."""
        try:
            with np.load(io.BytesIO(self.storage.get_bytes(_frame_pts_key(job_id)))) as data:
                frame_pts: NDArray[Any] = data["frame_pts"]
                return frame_pts
        except ObjectNotFound:
            return None

    def stitch(self, job_id: str, segment_keys: list[Any]) -> dict[str, Any]:
        """Concatenate the segments' checkpoints in order and publish them like a single pass."""
        keys = [k for keys in segment_keys for k in ([keys] if isinstance(keys, str) else keys)]
        job = self.store.get(job_id)
        document = self._publish_parts(job_id, keys, self._frame_pts(job_id), lambda: self.fetched(job))
        self._drop_parts(job_id, keys)
        self.storage.delete(_frame_pts_key(job_id))
        return document

    def _drop_parts(self, job_id: str, keys: list[str]) -> None:
        for key in keys:
            self.storage.delete(key)
            self.storage.delete(_tiles_key(key))
        indexes = self.store.redis.smembers(redis_keys.checkpoint_lists(job_id))
        self.store.redis.delete(redis_keys.checkpoint_lists(job_id), *indexes)

    def _publish_parts(
        self,
        job_id: str,
        keys: list[str],
        frame_pts: NDArray[Any] | None,
        open_video: Callable[[], AbstractContextManager[Path]],
    ) -> dict[str, Any]:
        info = self.info(job_id)
        parts, tiles, feature_parts, errors, damaged = [], {}, [], 0, []
        for key in sorted(set(keys)):  # a part written twice (a late original and its retry) counts once
            with np.load(io.BytesIO(self.storage.get_bytes(key))) as data:
                parts.append((data["single_frame"], data["many_hot"], data["overview"]))
                if "decode_errors" in data.files:
                    errors += int(data["decode_errors"].sum())
                    damaged.append(data["decode_damaged"])
                feature_parts.append({name: data[name] for name in data.files if name.startswith(FEATURE_PREFIX)})
                if "candidate_places" in data.files:  # a segment from an older worker has none
                    tiles[_tiles_key(key)] = {name: data[name] for name in ("candidate_frames", "candidate_places")}
        size, rotation = keyframe_geometry(info)
        predictions = Predictions(
            np.concatenate([p[0] for p in parts]).astype(np.float32),
            np.concatenate([p[1] for p in parts]).astype(np.float32),
        )
        stride = OverviewSampler.for_video(info.frame_count, self.settings.overview_max_frames).stride
        overview = np.concatenate([p[2] for p in parts])
        candidates = StoredCandidates(size, tiles, self.storage.download, rotation)  # holds a folder: closed below
        try:  # the video is opened again only for shots shorter than the candidates' stride
            decoded_video = DecodedVideo(
                predictions,
                stride,
                overview,
                candidates,
                open_video,
                concatenated(feature_parts),
                frame_pts,
                errors,
                np.concatenate(damaged) if damaged else np.zeros(0, dtype=np.int64),
            )
            return self.publish(job_id, decoded_video)
        finally:
            candidates.close()

    def publish(self, job_id: str, decoded_video: DecodedVideo) -> dict[str, Any]:
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
        writes = [
            (keys.overview, detection.overview_png, "image/png"),
            (keys.thumbnails, detection.thumbnails_jpeg, "image/jpeg"),
            (keys.probabilities, detection.probabilities_npz(), "application/x-npz"),
        ]
        # all four at once: round trips one after another were most of what a short job's publishing cost
        # (bench/batch.py's own work per item); the document need not wait for the files it links to, as no one
        # reads it before the job's record names it (its result_key, set by `succeed` below)
        pending = [_PUBLISHERS.submit(self.storage.put_bytes, *write) for write in writes]
        self.storage.put_json(keys.shots, detection.document)
        for future in pending:
            future.result()
        self.store.add_to_field(job_id, "result_writes", 1)  # the chaos test counts them
        self.store.set_progress(job_id, detection.predictions.frame_count)
        self.store.succeed(job_id, keys.shots)
        self.last_published = (job_id, detection.document)
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
        logger.info("job %s failed: %s: %s", job_id, error.code, error.message)
        self.store.fail(job_id, error.code, error.message)
