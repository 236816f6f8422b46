"""The API as a long-lived service: Gunicorn with Uvicorn workers serving the same app."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from local.netutil import free_port, wait_healthy
from videoapi.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_gunicorn_serves_the_same_api(api_settings, keys, tmp_path):
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        **api_settings.to_env(),
        "VIDEOAPI_API_BIND": f"127.0.0.1:{port}",
        "VIDEOAPI_API_WORKERS": "2",
        "VIDEOAPI_API_METRICS_PORT": str(metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "infra/api/gunicorn.conf.py", "functions.asgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(f"{base}/v1/health", process) is None, (tmp_path / "gunicorn.log").read_text()
        auth = {"X-API-Key": keys["alice"]}
        assert httpx.get(f"{base}/v1/jobs/job_nope").json()["error"]["code"] == "unauthorized"
        uploaded = httpx.put(
            f"{base}/v1/uploads/direct",
            params={"filename": "a.mp4"},
            content=b"x" * 100,
            headers={**auth, "Content-Type": "video/mp4"},
        )
        assert uploaded.status_code == 201
        job = httpx.post(f"{base}/v1/jobs", json={"source": uploaded.json()["key"]}, headers=auth)
        assert job.status_code == 202
        assert httpx.get(f"{base}/v1/jobs/{job.json()['id']}", headers=auth).json()["status"] == "queued"

        # the workers' samples, summed by the master on its own port; the public port has no /metrics
        assert httpx.get(f"{base}/metrics").status_code == 404
        families = text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text)
        samples = [s for f in families for s in f.samples]
        submitted = [s.value for s in samples if s.name == "videoapi_jobs_submitted_total"]
        assert submitted == [1.0]
        health = [s for s in samples if s.name == "videoapi_http_requests_total" and s.labels["route"] == "/v1/health"]
        assert sum(s.value for s in health) >= 1 and all(s.labels["status"] == "200" for s in health)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    assert keys["alice"] not in (tmp_path / "gunicorn.log").read_text()  # no secret in the access log
