"""The one settings object, read from the environment (prefix VIDEOAPI_) and passed in."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Service configuration; every field can be set as VIDEOAPI_<NAME> (REDIS_URL is read too)."""

    model_config = SettingsConfigDict(env_prefix="VIDEOAPI_", extra="ignore", protected_namespaces=())

    # Model and Triton
    model_repository: Path = PROJECT_ROOT / "model_repository"
    model_name: str = "transnetv2"
    triton_url: str = "127.0.0.1:8001"
    triton_protocol: Literal["grpc", "http"] = "grpc"
    triton_timeout_s: float = Field(60.0, gt=0)

    # Inference
    window: int = Field(100, ge=51, description="frames per model window; margins stay 25 frames")
    batch_windows: int = Field(4, ge=1, description="windows per Triton request")
    inflight_batches: int = Field(2, ge=1, description="requests waiting on Triton while decoding goes on")
    threshold: float = Field(0.5, gt=0, lt=1)

    # Redis (broker and job state) and S3
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("VIDEOAPI_REDIS_URL", "REDIS_URL")
    )
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    bucket: str = "videoapi"


@lru_cache
def get_settings() -> Settings:
    return Settings()
