"""Rekognition's StartSegmentDetection and GetSegmentDetection over this service's jobs.

Parameters and answers are the operations' own (botocore's Rekognition model); refusals are `AwsError`s
carrying the `__type` and status AWS uses. Knows nothing of HTTP: functions/routers/rekognition.py adapts.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from videoapi.domain.jobs import Job, JobStatus
from videoapi.domain.rekognition import REKOGNITION_OPTIONS
from videoapi.domain.results import ResultService
from videoapi.domain.submission import JobService, SubmitRequest
from videoapi.errors import ApiError, AwsError, VideoapiError
from videoapi.pipeline.cues import SegmentOptions

NOTIFICATION_FIELD = "rekognition_notification"  # the job record's field holding NotificationChannel
SEGMENT_TYPES = ("TECHNICAL_CUE", "SHOT")


Request = TypeVar("Request", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3ObjectParam(_Model):
    Bucket: str = Field(min_length=3, max_length=255, pattern=r"^[0-9A-Za-z\.\-_]*$")
    Name: str = Field(min_length=1, max_length=1024)
    Version: str | None = Field(None, min_length=1, max_length=1024)


class VideoParam(_Model):
    S3Object: S3ObjectParam


class ConfidenceFilterParam(_Model):
    MinSegmentConfidence: float | None = Field(None, ge=50, le=100)


class BlackFrameParam(_Model):
    MaxPixelThreshold: float | None = Field(None, ge=0, le=1)
    MinCoveragePercentage: float | None = Field(None, ge=0, le=100)


class TechnicalCueFilterParam(ConfidenceFilterParam):
    BlackFrame: BlackFrameParam | None = None


class FiltersParam(_Model):
    ShotFilter: ConfidenceFilterParam | None = None
    TechnicalCueFilter: TechnicalCueFilterParam | None = None


class NotificationChannelParam(_Model):
    SNSTopicArn: str = Field(pattern=r"^arn:aws:sns:.*:\w{12}:.+$")
    RoleArn: str = Field(pattern=r"^arn:aws:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")


class StartSegmentDetection(_Model):
    """The operation's request, with the model's constraints."""

    Video: VideoParam
    SegmentTypes: list[Literal["TECHNICAL_CUE", "SHOT"]] = Field(min_length=1)
    ClientRequestToken: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9-_]+$")
    NotificationChannel: NotificationChannelParam | None = None
    JobTag: str | None = Field(None, min_length=1, max_length=1024, pattern=r"^[a-zA-Z0-9_.\-:+=/]+$")
    Filters: FiltersParam | None = None


class GetSegmentDetection(_Model):
    JobId: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9-_]+$")
    MaxResults: int = Field(1000, ge=1, le=1000)
    NextToken: str | None = Field(None, max_length=255)


def _parse(model: type[Request], params: dict[str, Any]) -> Request:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise AwsError("InvalidParameterException", f"{where}: {first['msg']}") from exc


def segment_options(request: StartSegmentDetection) -> dict[str, Any]:
    """Start's SegmentTypes and Filters as videoapi.pipeline.cues.SegmentOptions names (Rekognition's units)."""
    filters = request.Filters or FiltersParam()
    shot, cue = filters.ShotFilter or ConfidenceFilterParam(), filters.TechnicalCueFilter or TechnicalCueFilterParam()
    black = cue.BlackFrame or BlackFrameParam()
    options = {
        "segment_types": [kind for kind in SEGMENT_TYPES if kind in request.SegmentTypes],
        "shot_min_confidence": shot.MinSegmentConfidence,
        "cue_min_confidence": cue.MinSegmentConfidence,
        "black_max_pixel_threshold": black.MaxPixelThreshold,
        "black_min_coverage_percentage": black.MinCoveragePercentage,
    }
    return {name: value for name, value in options.items() if value is not None}


# our ApiError codes -> what Rekognition answers in their place
_ERRORS = {
    "source_not_found": (
        "InvalidS3ObjectException",
        "Unable to get object metadata from S3. Check object key, region and/or access permissions.",
    ),
    "invalid_key": ("InvalidS3ObjectException", None),
    "bucket_not_allowed": ("AccessDeniedException", None),
    "too_large": ("VideoTooLargeException", None),
    "idempotency_key_reused": (
        "IdempotentParameterMismatchException",
        "ClientRequestToken was used with different parameters.",
    ),
    "job_not_found": ("ResourceNotFoundException", "Requested resource not found."),
    "quota_exceeded": ("LimitExceededException", None),  # as Rekognition's own limit on concurrent jobs
    "rate_limited": ("ThrottlingException", None),
}


def as_aws_error(error: VideoapiError) -> AwsError:
    code, message = _ERRORS.get(error.code, ("InvalidParameterException", None))
    if error.transient:
        code = "ThrottlingException"  # the store or queue is down for a moment: worth a retry
    return AwsError(code, message or error.message)


class RekognitionService:
    """The two operations for one authenticated client."""

    def __init__(self, jobs: JobService, results: ResultService):
        self.jobs, self.results = jobs, results

    def start_segment_detection(self, client_id: str, params: dict[str, Any]) -> dict[str, Any]:
        request = _parse(StartSegmentDetection, params)
        s3 = request.Video.S3Object
        attributes = {REKOGNITION_OPTIONS: json.dumps({**segment_options(request), "job_tag": request.JobTag or ""})}
        if request.NotificationChannel:
            attributes[NOTIFICATION_FIELD] = request.NotificationChannel.model_dump_json()
        submit = SubmitRequest(
            source=f"s3://{s3.Bucket}/{s3.Name}",
            source_version=s3.Version,
            tag=request.JobTag or "",
            attributes=tuple(sorted(attributes.items())),
            # the cue detector reads the black-frame filter; the confidences filter the segments when shaped
            segments=SegmentOptions(**segment_options(request)),
        )
        token = request.ClientRequestToken and f"rekognition:{request.ClientRequestToken}"
        try:
            job, _ = self.jobs.submit(client_id, submit, token)
        except ApiError as exc:
            raise as_aws_error(exc) from exc
        return {"JobId": job.id}

    def get_segment_detection(self, client_id: str, params: dict[str, Any]) -> dict[str, Any]:
        request = _parse(GetSegmentDetection, params)
        try:
            job = self.jobs.get(client_id, request.JobId)
            document = self.results.rekognition_document(job)
        except ApiError as exc:
            raise as_aws_error(exc) from exc
        segments = document.pop("Segments", None)
        if segments is None:
            return document
        offset = _offset(request.NextToken, job.id) if request.NextToken else 0
        page = segments[offset : offset + request.MaxResults]
        document["Segments"] = page
        if offset + len(page) < len(segments):
            document["NextToken"] = _token(job.id, offset + len(page))
        return document


def _token(job_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([job_id, offset]).encode()).decode()


def _offset(token: str, job_id: str) -> int:
    try:
        token_job, offset = json.loads(base64.urlsafe_b64decode(token.encode()))
        if token_job == job_id and isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, TypeError, binascii.Error):
        pass
    raise AwsError("InvalidPaginationTokenException", "Invalid Token")


def completion_message(job: Job) -> dict[str, Any]:
    """The message Rekognition publishes to the job's SNS topic when a segment detection ends."""
    options = json.loads(job.extra.get(REKOGNITION_OPTIONS, "{}"))
    message = {
        "JobId": job.id,
        "Status": "SUCCEEDED" if job.status == JobStatus.succeeded else "FAILED",
        "API": "StartSegmentDetection",
        "Timestamp": int((job.finished_at or time.time()) * 1000),
        "Video": {"S3ObjectName": job.key, "S3Bucket": job.bucket},
    }
    if options.get("job_tag"):
        message["JobTag"] = options["job_tag"]
    return message


def publish_completion(sns_for_region: Callable[[str], Any], job: Job) -> str | None:
    """Publish the completion message to the job's NotificationChannel, if any, with `sns_for_region(region)`'s
    SNS client (the topic's region, from its ARN); returns the message id."""
    channel = job.extra.get(NOTIFICATION_FIELD)
    if not channel:
        return None
    topic = json.loads(channel)["SNSTopicArn"]
    client = sns_for_region(topic.split(":")[3])
    return str(client.publish(TopicArn=topic, Message=json.dumps(completion_message(job)))["MessageId"])
