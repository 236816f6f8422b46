"""The API over real Redis (its own database) and moto S3; jobs finished by the real detection core."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from functions.app import create_app
from functions.deps import Services
from videoapi.detection import ShotDetector
from videoapi.triton.client import ShotModelClient


@pytest.fixture(scope="session")
def api_settings(stack_settings):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    return stack_settings.model_copy(update={"redis_url": f"{base}/5", "direct_upload_max_bytes": 2_000_000})


@pytest.fixture(scope="session")
def services(api_settings) -> Services:
    return Services.from_settings(api_settings)


@pytest.fixture(scope="session")
def app(api_settings, services):
    return create_app(api_settings, services=services)


@pytest.fixture(scope="session")
def keys(services) -> dict[str, str]:
    return {"alice": services.keys.create("alice"), "bob": services.keys.create("bob")}


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
