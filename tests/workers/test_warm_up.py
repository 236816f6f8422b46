"""A pool process builds its S3 and Triton clients as it starts, not on its first job's clock."""

from __future__ import annotations

import logging
import sys

import pytest

from videoapi.adapters.triton import ShotModelClient
from videoapi.errors import InferenceUnavailable
from workers import tasks


@pytest.fixture
def pool_process():
    """This process as a fresh pool process: no detector built yet, the given settings."""
    before = tasks.app.conf.videoapi_settings

    def start(settings):
        tasks.app.conf.videoapi_settings = settings
        tasks.detector.cache_clear()
        tasks._warm_up()

    yield start
    tasks.app.conf.videoapi_settings = before
    tasks.detector.cache_clear()


def test_the_warm_up_builds_the_clients_a_job_uses(pool_process, stack_settings):
    pool_process(stack_settings)
    assert tasks.detector.cache_info().currsize == 1  # the job reuses this one
    assert isinstance(tasks.detector()._model, ShotModelClient)
    assert tasks.detector().storage.bucket == stack_settings.bucket
    assert "av" in sys.modules


def test_a_failed_warm_up_is_logged_and_left_to_the_first_job_to_report(pool_process, stack_settings, caplog):
    with caplog.at_level(logging.WARNING, logger=tasks.__name__):
        pool_process(stack_settings.model_copy(update={"triton_shared_memory": "cuda"}))  # no CUDA here
    assert "warm-up failed; the first job builds its clients itself" in caplog.text
    with pytest.raises(InferenceUnavailable, match="shared_memory=cuda"):
        tasks.detector().model  # noqa: B018  # what the first job meets, and reports as triton_unavailable
