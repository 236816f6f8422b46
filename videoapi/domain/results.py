"""A finished job's results: the JSON document, its exports, Rekognition's shape, curves, pictures, clips."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np

from videoapi.adapters.storage import Storage
from videoapi.domain.exports import EXPORT_FILES, export
from videoapi.domain.formats import RESULT_EXTRAS, RESULT_FORMATS
from videoapi.domain.jobs import Job, JobStatus
from videoapi.domain.rekognition import REKOGNITION_OPTIONS, segment_detection
from videoapi.domain.submission import JobService
from videoapi.domain.views import download_link, iso
from videoapi.errors import Conflict, ExportError, InvalidRequest, NotFound
from videoapi.pipeline.clips import is_clips_job
from videoapi.pipeline.shots import max_per_stride
from videoapi.settings import Settings


class ResultService:
    """Results of this client's jobs, from storage, in every format the API offers."""

    def __init__(self, settings: Settings, storage: Storage, jobs: JobService):
        self.settings, self.storage, self.jobs = settings, storage, jobs

    def get(self, client_id: str, job_id: str) -> Job:
        return self.jobs.get(client_id, job_id)

    def clips_result(self, client_id: str, job_id: str) -> dict[str, Any]:
        """A finished clips job's manifest with presigned GET URLs for every clip and the zip."""
        job = self.get(client_id, job_id)
        if not is_clips_job(job):
            raise Conflict("not_a_clips_job", f"{job_id} is not a clips job")
        if job.status != JobStatus.succeeded:
            raise Conflict("job_not_finished", f"the job is {job.status.value}; poll its status")
        manifest = self.storage.get_json(job.result_key)
        expires = self.settings.presign_expiry_s
        # a batch's clips job writes no zip, and may write its clips to another bucket (VIDEOAPI_CLIP_BUCKETS)
        storage = self.storage.for_bucket(manifest.get("bucket") or self.storage.bucket)
        for item in (*manifest["clips"], *([manifest["zip"]] if manifest["zip"] else [])):
            item["url"] = download_link(storage, item["key"], expires, as_file=True)["url"]
        manifest["expires_in"], manifest["expires_at"] = expires, iso(time.time() + expires)
        return manifest

    def video_url(self, client_id: str, job_id: str) -> dict[str, Any]:
        """A presigned GET of the job's source video, to play it (the page reopening a job)."""
        job = self.get(client_id, job_id)
        return download_link(self.storage.for_bucket(job.bucket), job.key, self.settings.presign_expiry_s)

    def result(self, client_id: str, job_id: str, fmt: str, start_timecode: str | None = None) -> tuple[bytes, str]:
        """A finished job's result in `fmt`; `start_timecode` offsets the timeline formats (otio, fcpxml, xml, edl)."""
        if fmt not in (*RESULT_FORMATS, *RESULT_EXTRAS):
            raise InvalidRequest(
                "invalid_format", f"format must be among {', '.join((*RESULT_FORMATS, *RESULT_EXTRAS))}", "format"
            )
        job = self.get(client_id, job_id)
        if is_clips_job(job) and job.status == JobStatus.succeeded:
            if fmt != "json":
                raise InvalidRequest("invalid_format", "a clips job's result is its JSON manifest", "format")
            return json.dumps(self.clips_result(client_id, job_id)).encode(), "application/json"
        if job.status == JobStatus.failed:
            raise Conflict("job_failed", f"the job failed ({job.error_code}): {job.error_message}")
        if job.status == JobStatus.cancelled:
            raise Conflict("job_cancelled", "the job was cancelled; it has no result")
        if job.status != JobStatus.succeeded:
            raise Conflict("job_not_finished", f"the job is {job.status.value}; poll its status")
        document = self.storage.get_json(job.result_key)
        if fmt == "json":
            return json.dumps(document).encode(), "application/json"
        if fmt in EXPORT_FILES:
            try:
                return export(document, fmt, start_timecode), EXPORT_FILES[fmt][1]
            except ExportError as exc:
                code = "invalid_start_timecode" if exc.field == "start_timecode" else "unsupported_frame_rate"
                raise InvalidRequest(code, str(exc), exc.field) from exc
        if fmt == "rekognition":
            return json.dumps(self.rekognition_document(job, document)).encode(), "application/json"
        if fmt == "curve":
            return json.dumps(self._curve(document)).encode(), "application/json"
        if fmt in ("overview", "thumbnails"):
            previews = document.get("previews")
            if not previews:
                raise NotFound("no_preview", f"this result has no {fmt} picture (made before pictures existed)")
            media = "image/png" if fmt == "overview" else "image/jpeg"
            return self.storage.get_bytes(previews[fmt]["key"]), media
        return self.storage.get_bytes(document["probabilities"]["key"]), "application/octet-stream"

    def rekognition_document(self, job: Job, document: dict[str, Any] | None = None) -> dict[str, Any]:
        """The job as GetSegmentDetection returns it: status, and once it succeeded every segment."""
        options = json.loads(job.extra.get(REKOGNITION_OPTIONS, "{}"))
        s3_object = {"Bucket": job.bucket, "Name": job.key}
        if job.extra.get("source_version"):
            s3_object["Version"] = job.extra["source_version"]
        response: dict[str, Any] = {"JobId": job.id, "Video": {"S3Object": s3_object}}
        if options.get("job_tag"):
            response["JobTag"] = options["job_tag"]
        if job.status in (JobStatus.failed, JobStatus.cancelled):
            message = f"{job.error_code}: {job.error_message}" if job.status == JobStatus.failed else "cancelled"
            return {"JobStatus": "FAILED", "StatusMessage": message, **response}
        if job.status != JobStatus.succeeded:
            return {"JobStatus": "IN_PROGRESS", **response}
        document = document or self.storage.get_json(job.result_key)
        kwargs = {k: options[k] for k in ("shot_min_confidence", "cue_min_confidence") if k in options}
        if "segment_types" in options:
            kwargs["segment_types"] = tuple(options["segment_types"])
        return {**segment_detection(document, **kwargs), **response}

    def _curve(self, document: dict[str, Any], max_points: int = 20_000) -> dict[str, Any]:
        """Per-frame probabilities as JSON for plotting; long videos keep each stride's maximum."""
        with np.load(io.BytesIO(self.storage.get_bytes(document["probabilities"]["key"]))) as arrays:
            single, many = arrays["single_frame"], arrays["many_hot"]
        stride = max(1, -(-len(single) // max_points))
        return {
            "fps": document["video"]["fps"],
            "frame_count": len(single),
            "threshold": document["threshold"],
            "stride": stride,
            "single_frame": np.round(max_per_stride(single, stride), 4).tolist(),
            "many_hot": np.round(max_per_stride(many, stride), 4).tolist(),
        }
