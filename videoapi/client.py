"""A small client for the HTTP API (what `videoapi detect` uses)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from videoapi.errors import VideoapiError


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a 429 or 503 asks the caller to wait (Retry-After in seconds), None when it asks nothing."""
    if response.status_code not in (429, 503):
        return None
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


class ApiClientError(VideoapiError):
    """The API refused a request or could not be reached; the message is the API's own, `status` its reply's."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(code or "api_unreachable", message)
        self.status = status


class VideoApiClient:
    """`rate_limit_retries`: a request answered 429 with Retry-After (rate_limited) is sent again after that
    many seconds, at most this many times; a 429 without it (quota_exceeded) is the caller's to handle."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        header: str = "X-API-Key",
        rate_limit_retries: int = 5,
        max_retry_after_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.rate_limit_retries, self.max_retry_after_s, self._sleep = rate_limit_retries, max_retry_after_s, sleep
        self.http = httpx.Client(base_url=self.base_url, headers={header: api_key}, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> VideoApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.rate_limit_retries + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ApiClientError(f"cannot reach the API at {self.base_url}: {exc}") from exc
            wait = retry_after(response)
            if wait is None or attempt == self.rate_limit_retries:
                break
            self._sleep(min(wait, self.max_retry_after_s))  # refused before anything happened: safe to resend
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"message": f"HTTP {response.status_code}: {response.text[:200]}"}
            raise ApiClientError(error["message"], error.get("code", ""), response.status_code)
        return response

    def upload(self, path: Path, content_type: str = "video/mp4") -> str:
        """Upload through a presigned PUT, streaming the file; returns the object key."""
        size = path.stat().st_size
        upload = self._request(
            "POST", "/v1/uploads", json={"filename": path.name, "content_type": content_type, "size_bytes": size}
        ).json()
        with path.open("rb") as file:
            try:
                response = httpx.put(upload["url"], content=file, headers=upload["headers"], timeout=None)
            except httpx.HTTPError as exc:
                raise ApiClientError(f"upload to storage failed: {exc}") from exc
        if response.status_code >= 300:
            raise ApiClientError(f"upload to storage failed: HTTP {response.status_code} {response.text[:200]}")
        return str(upload["key"])

    def submit(
        self,
        source: str,
        *,
        threshold: float | None = None,
        tag: str = "",
        postprocess: bool | None = None,
        priority: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"source": source, "tag": tag}
        if priority is not None:
            body["priority"] = priority
        if threshold is not None:
            body["threshold"] = threshold
        if postprocess is not None:
            body["postprocess"] = postprocess
        return _json(self._request("POST", "/v1/jobs", json=body))

    def status(self, job_id: str) -> dict[str, Any]:
        return _json(self._request("GET", f"/v1/jobs/{job_id}"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return _json(self._request("POST", f"/v1/jobs/{job_id}/cancel"))

    def usage(self) -> dict[str, Any]:
        return _json(self._request("GET", "/v1/usage"))

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = _json(self._request("GET", "/v1/jobs", params={"limit": limit}))["jobs"]
        return jobs

    def result(self, job_id: str, fmt: str = "json", start_timecode: str | None = None) -> bytes:
        params = {"format": fmt, **({"start_timecode": start_timecode} if start_timecode else {})}
        return self._request("GET", f"/v1/jobs/{job_id}/result", params=params).content

    def wait(
        self,
        job_id: str,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.status(job_id)
            if on_progress:
                on_progress(job)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise ApiClientError(f"job {job_id} still {job['status']} after {timeout_s:.0f}s", "timeout")
            time.sleep(poll_s)

    # batches -------------------------------------------------------------------------------------
    def submit_batch(
        self,
        sources: dict[str, str] | Sequence[str | dict[str, Any]],
        *,
        options: dict[str, Any] | None = None,
        tag: str = "",
        idempotency_key: str | None = None,
        clips: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A batch: `{"prefix": ...}`, `{"manifest": ...}` or a list of sources (strings or `{source, id, ...}`);
        `clips` (mode, min_duration_s, max_duration_s, trim_transitions, prefix) cuts each kept shot to a file."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"sources": sources if isinstance(sources, dict) else [*sources], "options": options or {}, "tag": tag}
        if clips is not None:
            body["clips"] = clips
        return _json(self._request("POST", "/v1/batches", json=body, headers=headers))

    def batch(self, batch_id: str) -> dict[str, Any]:
        return _json(self._request("GET", f"/v1/batches/{batch_id}"))

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return _json(self._request("POST", f"/v1/batches/{batch_id}/cancel"))

    def retry_batch(self, batch_id: str) -> dict[str, Any]:
        return _json(self._request("POST", f"/v1/batches/{batch_id}/retry"))

    def batch_results(self, batch_id: str, fmt: str = "jsonl", *, items: bool = False) -> bytes:
        """The batch's shots (or items) table so far in `fmt`: jsonl, csv or parquet."""
        params = {"format": fmt, "items": "true" if items else "false"}
        return self._request("GET", f"/v1/batches/{batch_id}/results", params=params).content

    def download_batch_clip(self, batch_id: str, key: str, path: Path) -> Path:
        """One of the batch's clips (a `clip_key` of its shots table) saved to `path`."""
        link = _json(self._request("GET", f"/v1/batches/{batch_id}/clip", params={"key": key}))
        try:
            with httpx.stream("GET", link["url"], timeout=None) as response, path.open("wb") as file:
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    file.write(chunk)
        except httpx.HTTPError as exc:
            raise ApiClientError(f"download of {key} failed: {exc}") from exc
        return path

    def wait_batch(
        self,
        batch_id: str,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Poll the batch until no item is pending, queued or running."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            batch = self.batch(batch_id)
            if on_progress:
                on_progress(batch)
            if batch["status"] != "running":
                return batch
            if deadline is not None and time.monotonic() > deadline:
                raise ApiClientError(f"batch {batch_id} still running after {timeout_s:.0f}s", "timeout")
            time.sleep(poll_s)


def _json(response: httpx.Response) -> dict[str, Any]:
    """A JSON object reply."""
    body: dict[str, Any] = response.json()
    return body
