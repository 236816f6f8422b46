"""The API as a long-lived service: Gunicorn with Uvicorn workers serving the same app."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from videoapi.netutil import free_port
from videoapi.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_gunicorn_serves_the_same_api(api_settings, keys, tmp_path):
    port = free_port()
    env = {**os.environ, **api_settings.to_env(), "VIDEOAPI_API_BIND": f"127.0.0.1:{port}", "VIDEOAPI_API_WORKERS": "2"}
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "infra/api/gunicorn.conf.py", "functions.local:app"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
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
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    assert keys["alice"] not in (tmp_path / "gunicorn.log").read_text()  # no secret in the access log
