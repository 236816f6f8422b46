"""What detecting shots in one video file is, whoever reaches the model and wherever files go.

Probe, decode once with the taps (overview sampler, keyframe candidates, frame features), predict,
then shots, pictures and the result document. The worker (videoapi.pipeline.detection, over Redis and S3)
and the in-process engine (videoapi.pipeline.engine) both run these functions: one pipeline, two ways to
reach the model. Nothing here knows of HTTP, Celery, Redis or S3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from numpy.typing import NDArray

from videoapi.domain.result import ModelIdentity, ResultKeys, npz_bytes, shot_document
from videoapi.errors import JobError
from videoapi.pipeline.cues import SegmentOptions, technical_cues
from videoapi.pipeline.decode import DecodeLog, decode_warnings, iter_model_frames, iter_model_frames_pyav, iter_niced
from videoapi.pipeline.decode_nvdec import claim_decoder, iter_model_frames_nvdec, nvdec_missing
from videoapi.pipeline.frame_features import FeatureTap, frame_features
from videoapi.pipeline.inference import FrameModel, Predictions, predict_frames
from videoapi.pipeline.postprocess import shot_list, transition_dicts, transitions_for
from videoapi.pipeline.preview import (
    OVERVIEW_COLUMNS,
    KeyframeCandidates,
    OverviewSampler,
    TileSource,
    keyframe_tiles,
    overview_png,
    shown_rotation,
    shown_size,
    shown_tile_size,
    thumbnail_sheet,
)
from videoapi.pipeline.probe import VideoInfo, frame_times
from videoapi.pipeline.shots import FrameClock, ShotList
from videoapi.pipeline.windows import MARGIN
from videoapi.settings import Settings


@dataclass(frozen=True)
class Segment:
    """Frames start..stop-1 (stop None: to the end of the video)."""

    start: int
    stop: int | None


WHOLE_VIDEO = Segment(0, None)


@dataclass(frozen=True)
class DecodedVideo:
    """What decoding a whole video gave (in one pass or stitched from segments): the result's makings."""

    predictions: Predictions
    overview_stride: int
    overview: NDArray[Any]  # every overview_stride-th model frame
    candidates: TileSource  # keyframe candidates
    open_video: Callable[[], AbstractContextManager[Path]]  # for shots shorter than the candidates' stride
    features: dict[str, NDArray[Any]]  # per-frame feature arrays (videoapi.pipeline.frame_features), one row per frame
    frame_pts: NDArray[Any] | None = None  # every frame's timestamp in presentation order (the probe's)
    decode_errors: int = 0  # packets the decoder refused
    decode_damaged: NDArray[Any] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # frames at the damage


@dataclass(frozen=True)
class Detection:
    """One video's result: the document and the files it names."""

    document: dict[str, Any]
    predictions: Predictions
    overview_png: bytes
    thumbnails_jpeg: bytes

    def probabilities_npz(self) -> bytes:
        return npz_bytes(single_frame=self.predictions.single_frame, many_hot=self.predictions.many_hot)


def predict_file(
    path: Path,
    segment: Segment,
    settings: Settings,
    model: FrameModel,
    progress: Callable[[int], None] | None,
    sampler: OverviewSampler | None = None,
    candidates: KeyframeCandidates | None = None,
    features: FeatureTap | None = None,
    on_predictions: Callable[[NDArray[Any]], None] | None = None,
    *,
    frame_pts: NDArray[Any] | None = None,
    log: DecodeLog | None = None,
    last_tap: Callable[[Iterator[NDArray[Any]], int], Iterator[NDArray[Any]]] | None = None,
    backlog: Callable[[], int] | None = None,
) -> Predictions:
    """Probabilities for the segment's frames; `sampler`, `candidates`, `features` and `log` take theirs on the way.

    `frame_pts` (the probe's timestamps) number the frames exactly whatever their timing (pyav decoder only).
    `last_tap(frames, first)` sees the frames last, after the other taps, before the windows.
    `backlog()` (the jobs waiting in the worker's queue) lets a job past the NVDEC slots wait for one rather than
    decode on the CPU as the queue drains (settings.cpu_decode_min_backlog; decode_nvdec.claim_decoder).
    """
    first = max(0, segment.start - MARGIN)
    last = None if segment.stop is None else segment.stop + MARGIN
    text = features.text if features is not None else None  # the text cues' samples, larger than the tiles
    claim = claim_decoder(settings.decoder, settings.nvdec_streams, backlog, settings.cpu_decode_min_backlog)
    with claim as decoder:
        if decoder == "nvdec":
            # no text samples (GPU decode)
            frames = iter_model_frames_nvdec(
                path, first, last, tiles=candidates, blocking_sync=settings.cuda_blocking_sync
            )
        elif decoder == "pyav":
            frames = iter_model_frames_pyav(
                path,
                first,
                last,
                skip_loop_filter=settings.skip_loop_filter,
                threads=settings.decoder_threads,
                tiles=[candidates, text],
                frame_pts=frame_pts,
                log=log if log is not None else DecodeLog(segment.start, segment.stop),
                audio=features.audio if features is not None else None,
            )
            if settings.cpu_decode_nice and settings.decoder == "auto" and settings.nvdec_streams > 0:
                if nvdec_missing() is None:  # a job past the NVDEC slots: it takes the cores they leave idle
                    frames = iter_niced(frames, settings.cpu_decode_nice)
        else:
            frames = iter_model_frames(path, first, last, tiles=[candidates, text])
        if features is not None:
            frames = features.tap(frames, first)
        if sampler is not None:
            frames = sampler.tap(frames, first)
        return predict_frames(
            last_tap(frames, first) if last_tap is not None else frames,
            model,
            window=settings.window,
            batch_windows=settings.batch_windows,
            in_flight=settings.inflight_batches,
            on_progress=progress,
            start=segment.start,
            stop=segment.stop,
            on_predictions=on_predictions,
        )


@contextmanager
def decode_whole(
    path: Path,
    info: VideoInfo,
    settings: Settings,
    model: FrameModel,
    progress: Callable[[int], None] | None = None,
    on_predictions: Callable[[NDArray[Any]], None] | None = None,
    *,
    frame_pts: NDArray[Any] | None = None,
    segments: SegmentOptions | None = None,
) -> Iterator[DecodedVideo]:
    """Decode and predict a whole video in one pass; the candidates' spill file lives until the block ends.

    `frame_pts`: the probe's timestamps (videoapi.pipeline.probe.probe_timeline), which number and time the frames.
    `segments`: the job's options (no text samples when it asks for no technical cue).
    """
    sampler = OverviewSampler.for_video(info.frame_count, settings.overview_max_frames)
    candidates = KeyframeCandidates.for_info(info)
    features = FeatureTap(frame_features(settings, info, segments))
    log = DecodeLog()
    try:
        predictions = predict_file(
            path,
            WHOLE_VIDEO,
            settings,
            model,
            progress,
            sampler,
            candidates,
            features,
            on_predictions,
            frame_pts=frame_pts,
            log=log,
        )
        overview = sampler.arrays()[0]
        yield DecodedVideo(
            predictions,
            sampler.stride,
            overview,
            candidates,
            lambda: nullcontext(path),
            features.arrays(),
            frame_pts,
            log.errors,
            np.array(log.frames, dtype=np.int64),
        )
    finally:
        candidates.close()


def checked_frame_count(predictions: Predictions) -> int:
    """The frames decoded; a file with nothing decodable is corrupt (damage elsewhere is a warning)."""
    decoded = predictions.frame_count
    if decoded == 0:
        raise JobError("corrupt_video", "no frame could be decoded")
    return decoded


def frame_clock(info: VideoInfo, frame_pts: NDArray[Any] | None) -> FrameClock:
    """How frame numbers become times: the frames' own timestamps when the rate varies."""
    if info.variable_frame_rate and frame_pts is not None:
        return FrameClock(info.fps, frame_times(frame_pts, info.time_base), end=info.end_time)
    return FrameClock(info.fps)


class _ShownPicture(TypedDict, total=False):
    """overview_png's keywords for the picture as shown."""

    rotation: int
    aspect: float | None


def render_previews(
    shots: ShotList, video: DecodedVideo, keys: ResultKeys, max_thumbnails: int, info: VideoInfo | None = None
) -> tuple[dict[str, Any], bytes, bytes]:
    """(layout for the document, overview.png, thumbnails.jpg): the frames and predictions, a keyframe per shot.

    Pictures are upright and at the display's aspect of `info` (its rotation and display size).
    """
    stride, overview, candidates = video.overview_stride, video.overview, video.candidates
    shown: _ShownPicture = {}
    if info is not None:
        width, height = shown_size(info)
        shown = {"rotation": shown_rotation(info), "aspect": width / height if width and height else None}
    png = overview_png(overview, video.predictions.single_frame, video.predictions.many_hot, stride, **shown)
    spans = [(shot.start_frame, shot.end_frame) for shot in shots.shots][:max_thumbnails]
    frames, tiles = keyframe_tiles(candidates, spans, video.open_video)
    size = shown_tile_size(candidates)
    sheet = thumbnail_sheet(tiles, len(frames), size, columns=max(10, -(-len(frames) // 700)))
    layout = {
        "overview": {"key": keys.overview, "stride": stride, "columns": OVERVIEW_COLUMNS, "tiles": len(overview)},
        "thumbnails": {"key": keys.thumbnails, "keyframes": frames, **sheet.layout()},
    }
    return layout, png, sheet.jpeg


def detect_result(
    video: DecodedVideo,
    info: VideoInfo,
    settings: Settings,
    *,
    threshold: float,
    postprocess: bool,
    segments: SegmentOptions | None = None,
    job_id: str,
    source: str,
    keys: ResultKeys,
    model: ModelIdentity,
) -> Detection:
    """Shots, pictures and the result document from a decoded video (raises JobError when the decode fell short)."""
    frame_count = checked_frame_count(video.predictions)
    clock = frame_clock(info, video.frame_pts)
    predictions = video.predictions
    found = transitions_for(predictions.single_frame, predictions.many_hot, video.features, threshold, postprocess)
    if postprocess:
        shots = shot_list(found, frame_count, clock, threshold)
    else:  # the reference rule, exactly (its shots leave the frames over the threshold out)
        shots = ShotList.from_predictions(predictions.single_frame, fps=info.fps, threshold=threshold, clock=clock)
    expected = max(info.frame_count, info.declared_frames if info.truncated else 0)
    warnings = decode_warnings(video.decode_errors, video.decode_damaged, frame_count, expected)
    previews, png, jpeg = render_previews(shots, video, keys, settings.max_thumbnails, info)
    document = shot_document(
        job_id=job_id,
        source=source,
        info=info,
        frame_count=frame_count,
        clock=clock,
        warnings=warnings,
        threshold=threshold,
        postprocess=postprocess,
        transitions=transition_dicts(found, clock),
        model=model,
        shots=shots,
        previews=previews,
        keys=keys,
    )
    segments = segments or SegmentOptions()
    document["segment_types"] = list(segments.segment_types)
    if "TECHNICAL_CUE" in segments.segment_types and "cue_luma_percentiles" in video.features:
        document["technical_cues"] = technical_cues(video.features, clock, segments)
    return Detection(document, video.predictions, png, jpeg)
