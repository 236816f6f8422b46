"""The API over real Redis (its own database) and moto S3; jobs finished by the real detection core."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from videoapi.adapters.triton import ShotModelClient
from videoapi.pipeline.detection import ShotDetector


@pytest.fixture(scope="session")
def http(app) -> TestClient:
    return TestClient(app)


@pytest.fixture
def alice(keys):
    return {"X-API-Key": keys["alice"]}


@pytest.fixture
def bob(keys):
    return {"X-API-Key": keys["bob"]}


@pytest.fixture(scope="session")
def run_job(api_settings, services, triton):
    """Do what a worker does for a job, in-process (the Celery path is tested in tests/workers)."""
    model = ShotModelClient(triton.grpc_url)
    detector = ShotDetector(api_settings, services.jobs.store, services.jobs.storage, lambda: model)
    yield detector.begin
    model.close()
