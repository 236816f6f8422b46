"""A video cut into one file per shot with PyAV: stream copy at keyframes, or a frame-exact re-encode.

Over 300 lines because stream copy and exact re-encode share the span planning and the container options
that keep the source's display matrix and aspect; they are one feature, clips.
"""

from __future__ import annotations

import bisect
import json
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from videoapi.adapters.storage import Storage
from videoapi.domain.jobs import Job, JobStatus, JobStore
from videoapi.errors import ClipError
from videoapi.pipeline.scratch import job_scratch
from videoapi.settings import Settings

if TYPE_CHECKING:
    from av.container import OutputContainer
    from av.video.stream import VideoStream

ClipMode = Literal["copy", "exact"]
CLIP_MODES = ("copy", "exact")
GRADUAL = ("dissolve", "fade", "wipe", "fade_in", "fade_out")
CLIPS_JOB_KIND = "clips"


@dataclass(frozen=True)
class ClipSpan:
    """The frames (inclusive) one shot's clip should hold."""

    shot: int
    start_frame: int
    end_frame: int


@dataclass(frozen=True)
class Clip:
    """A clip as written: the frames it holds, which in copy mode reach out to the keyframes around the shot."""

    shot: int
    file: str
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    frame_count: int
    requested_start_frame: int
    requested_end_frame: int
    size_bytes: int


def clip_spans(
    document: dict[str, Any], shots: Sequence[int] | None = None, trim_transitions: bool = False
) -> list[ClipSpan]:
    """The frames of each asked shot (all when `shots` is None); with `trim_transitions`, less the frames of
    gradual transitions (the document's `transitions`) at either end, so a clip holds only its own shot."""
    all_shots = document["shots"]
    wanted = range(len(all_shots)) if shots is None else shots
    bad = [i for i in wanted if not 0 <= i < len(all_shots)]
    if bad:
        raise ClipError("invalid_shots", f"no shots {bad}: this result has shots 0..{len(all_shots) - 1}", "shots")
    transitions = document.get("transitions") or []

    def gradual(index: int | None) -> dict[str, Any] | None:
        if index is None or not transitions:
            return None
        transition = transitions[index]
        return transition if transition["type"] in GRADUAL else None

    spans = []
    for i in sorted(set(wanted)):
        shot = all_shots[i]
        start, end = shot["start_frame"], shot["end_frame"]
        if trim_transitions:
            opening = gradual(shot.get("transition"))
            closing = gradual(all_shots[i + 1].get("transition")) if i + 1 < len(all_shots) else None
            if opening:
                start = max(start, opening["end_frame"] + 1)
            if closing:
                end = min(end, closing["start_frame"] - 1)
            if start > end:
                raise ClipError(
                    "shot_inside_transition",
                    f"shot {i} lies wholly inside its transitions; ask without trim_transitions",
                    "trim_transitions",
                )
        spans.append(ClipSpan(i, start, end))
    return spans


def _keyframe_index(path: Path) -> tuple[list[int], list[int], Fraction]:
    """Presentation timestamps of every video frame (sorted) and the frame numbers of the keyframes; demux only."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts, keys = [], set()
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.add(packet.pts)
        time_base = stream.time_base
    assert time_base is not None  # a demuxed stream has one
    pts.sort()
    return pts, [i for i, p in enumerate(pts) if p in keys], time_base


def copy_clips(
    path: Path, spans: Sequence[ClipSpan], out_dir: Path, on_frames: Callable[[int], None] = lambda n: None
) -> list[Clip]:
    """Stream-copied clips: each starts on the keyframe at or before its shot and ends just before the first
    keyframe after it (whole GOPs: nothing is decoded or re-encoded, so cuts fall on keyframes)."""
    import av

    pts, keyframes, time_base = _keyframe_index(path)
    if not keyframes or keyframes[0] != 0:
        keyframes = [0, *keyframes]
    clips = []
    for span in spans:
        first = keyframes[bisect.bisect_right(keyframes, span.start_frame) - 1]
        following = bisect.bisect_right(keyframes, span.end_frame)
        last = keyframes[following] - 1 if following < len(keyframes) else len(pts) - 1
        lo, hi = pts[first], pts[last]
        target = out_dir / f"shot_{span.shot:05d}.mp4"
        with av.open(str(path)) as source, av.open(str(target), "w") as sink:
            stream = source.streams.video[0]
            out = sink.add_stream_from_template(stream)
            source.seek(lo, stream=stream, backward=True)
            started = False
            for packet in source.demux(stream):
                if packet.pts is None:
                    continue
                if not started:
                    if packet.pts != lo:
                        continue  # the seek may land on an earlier keyframe
                    started = True
                elif packet.is_keyframe and packet.pts > hi:
                    break
                if packet.pts > hi:
                    continue  # a frame shown after the clip, sent before its end (B-frames)
                packet.pts -= lo
                assert packet.dts is not None  # the demuxer stamps both, as it did pts
                packet.dts -= lo
                packet.stream = out
                sink.mux(packet)
        on_frames(span.end_frame - span.start_frame + 1)
        clips.append(_clip(span, target, first, last, pts, time_base))
    return clips


def _clip(span: ClipSpan, target: Path, first: int, last: int, pts: list[int], time_base: Fraction) -> Clip:
    frame = (pts[-1] - pts[0]) / max(1, len(pts) - 1) if len(pts) > 1 else 0
    return Clip(
        shot=span.shot,
        file=target.name,
        start_frame=first,
        end_frame=last,
        start_time=round(float((pts[first] - pts[0]) * time_base), 6),
        end_time=round(float((pts[last] - pts[0] + frame) * time_base), 6),
        frame_count=last - first + 1,
        requested_start_frame=span.start_frame,
        requested_end_frame=span.end_frame,
        size_bytes=target.stat().st_size,
    )


def _frames(path: Path) -> Iterator[Any]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from container.decode(stream)


def exact_clips(
    path: Path,
    spans: Sequence[ClipSpan],
    out_dir: Path,
    on_frames: Callable[[int], None] = lambda n: None,
    crf: int = 17,
) -> list[Clip]:
    """Frame-exact clips: one decode of the video, each shot's frames re-encoded (H.264, CRF `crf`)."""
    import av

    pending = sorted(spans, key=lambda s: s.start_frame)
    by_start: dict[int, list[ClipSpan]] = {}
    for span in pending:
        by_start.setdefault(span.start_frame, []).append(span)
    open_clips: list[tuple[ClipSpan, OutputContainer, VideoStream, Path]] = []
    written: list[Clip] = []
    finished: set[Any] = set()
    last_needed = max((s.end_frame for s in spans), default=-1)
    with av.open(str(path)) as probe:
        stream = probe.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        aspect = stream.sample_aspect_ratio  # kept, with the display matrix, so a player shows the clip as the video
    try:
        for index, frame in enumerate(_frames(path)):
            if index > last_needed:
                break
            for span in by_start.get(index, []):
                target = out_dir / f"shot_{span.shot:05d}.mp4"
                sink = av.open(str(target), "w")
                out = sink.add_stream("libx264", rate=rate)
                out.width, out.height, out.pix_fmt = frame.width, frame.height, "yuv420p"
                out.options = {"crf": str(crf), "preset": "veryfast"}
                if frame.rotation:
                    out.set_display_rotation(frame.rotation)
                if aspect and aspect != 1:
                    out.codec_context.sample_aspect_ratio = aspect
                open_clips.append((span, sink, out, target))
            still_open = []
            for span, sink, out, target in open_clips:
                picture = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
                picture = av.VideoFrame.from_ndarray(picture.to_ndarray(), format="yuv420p")
                picture.pts = index - span.start_frame
                for packet in out.encode(picture):
                    sink.mux(packet)
                if index == span.end_frame:
                    for packet in out.encode():
                        sink.mux(packet)
                    sink.close()
                    finished.add(sink)
                    on_frames(span.end_frame - span.start_frame + 1)
                    written.append(_clip_exact(span, target, rate))
                else:
                    still_open.append((span, sink, out, target))
            open_clips = still_open
    finally:  # on an error, or when the video ends early: no encoder left open
        for _, sink, _, _ in open_clips:
            if sink not in finished:
                sink.close()
    if open_clips:
        raise ClipError("video_shorter_than_result", f"the video ends before shot {open_clips[0][0].shot}'s last frame")
    return sorted(written, key=lambda c: c.shot)


def _clip_exact(span: ClipSpan, target: Path, rate: Fraction) -> Clip:
    return Clip(
        shot=span.shot,
        file=target.name,
        start_frame=span.start_frame,
        end_frame=span.end_frame,
        start_time=round(float(span.start_frame / rate), 6),
        end_time=round(float((span.end_frame + 1) / rate), 6),
        frame_count=span.end_frame - span.start_frame + 1,
        requested_start_frame=span.start_frame,
        requested_end_frame=span.end_frame,
        size_bytes=target.stat().st_size,
    )


def cut_clips(
    path: Path,
    spans: Sequence[ClipSpan],
    out_dir: Path,
    mode: ClipMode,
    on_frames: Callable[[int], None] = lambda n: None,
) -> list[Clip]:
    """One file per span in `out_dir`, by stream copy or by exact re-encode."""
    if mode not in CLIP_MODES:
        raise ClipError("invalid_mode", f"mode must be one of {', '.join(CLIP_MODES)}", "mode")
    out_dir.mkdir(parents=True, exist_ok=True)
    return (copy_clips if mode == "copy" else exact_clips)(path, spans, out_dir, on_frames)


def dataset_spans(
    document: dict[str, Any],
    min_duration_s: float = 0.0,
    max_duration_s: float | None = None,
    trim_transitions: bool = False,
) -> list[ClipSpan]:
    """The clips a dataset keeps: each shot (less its dissolves and fades with `trim_transitions`) lasting
    `min_duration_s` to `max_duration_s`; a shot wholly inside its transitions has none."""
    fps = float(document["video"]["fps"])
    spans = []
    for index in range(len(document["shots"])):
        try:
            (span,) = clip_spans(document, [index], trim_transitions)
        except ClipError:  # shot_inside_transition: nothing of its own to cut
            continue
        seconds = (span.end_frame - span.start_frame + 1) / fps
        if seconds >= min_duration_s and (max_duration_s is None or seconds <= max_duration_s):
            spans.append(span)
    return spans


MODE_NOTES = {
    "copy": "stream copy: each clip starts on the keyframe at or before its shot and ends before the first "
    "keyframe after it, so it may hold frames of its neighbours; start_frame/end_frame say exactly which",
    "exact": "re-encoded (H.264): each clip holds exactly its shot's frames",
}


def clips_prefix(parent_job_id: str, clips_job_id: str) -> str:
    """Where a clips job's files go: under the detection job's results."""
    return f"results/{parent_job_id}/clips/{clips_job_id}/"


class ClipMaker:
    """Runs a clips job: fetch the video and the shots, cut, upload each clip and a zip, record a manifest."""

    def __init__(self, settings: Settings, store: JobStore, storage: Storage):
        self.settings, self.store, self.storage = settings, store, storage

    def run(self, job_id: str) -> dict[str, Any] | None:
        """The manifest once uploaded; None when the job had already finished (a redelivery)."""
        job = self.store.get(job_id)
        if job.status.finished:
            return None
        options = json.loads(job.extra["clip_options"])
        parent = self.store.get(options["parent"])
        document = self.storage.get_json(parent.result_key)
        spans = clip_spans(document, options.get("shots"), options.get("trim_transitions", False))
        if not self.store.start(job_id, sum(s.end_frame - s.start_frame + 1 for s in spans)):
            return None
        done = 0

        def progress(frames: int) -> None:
            nonlocal done
            done += frames
            if self.store.set_progress(job_id, done) == JobStatus.cancelled:
                raise ClipError("cancelled", "the job was cancelled")

        # a batch's clips (videoapi.domain.batches) name their own bucket, folder and manifest, and want no zip
        prefix = options.get("prefix") or clips_prefix(parent.id, job_id)
        target = self.storage.for_bucket(options["bucket"]) if options.get("bucket") else self.storage
        zipped_too = options.get("zip", True)
        with job_scratch() as work:
            video = self.storage.for_bucket(job.bucket).download(job.key, work / "source")
            clips = cut_clips(video, spans, work / "clips", options["mode"], progress)
            for clip in clips:
                target.upload_file(work / "clips" / clip.file, prefix + clip.file, "video/mp4")
            if zipped_too:
                archive = work / "clips.zip"
                with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zipped:  # MP4s don't compress
                    for clip in clips:
                        zipped.write(work / "clips" / clip.file, clip.file)
                self.storage.upload_file(archive, prefix + "clips.zip", "application/zip")
        manifest_key = options.get("manifest") or prefix + "manifest.json"
        manifest = {
            "schema": "videoapi.pipeline.clips/1",
            "job_id": job_id,
            "parent_job_id": parent.id,
            "mode": options["mode"],
            "note": MODE_NOTES[options["mode"]],
            "trim_transitions": options.get("trim_transitions", False),
            "fps": document["video"]["fps"],
            "bucket": target.bucket,
            "prefix": prefix,
            "zip": {"key": prefix + "clips.zip"} if zipped_too else None,
            "clips": [{**asdict(c), "key": prefix + c.file} for c in clips],
        }
        self.storage.put_json(manifest_key, manifest)
        self.store.succeed(job_id, manifest_key)
        return manifest

    def fail(self, job_id: str, code: str, message: str) -> None:
        self.store.fail(job_id, code, message)


def is_clips_job(job: Job) -> bool:
    return job.extra.get("kind") == CLIPS_JOB_KIND
