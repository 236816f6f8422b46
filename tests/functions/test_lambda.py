"""The same app under Mangum, driven by real API Gateway v1 (REST) and v2 (HTTP API) event payloads,
and the S3 ObjectCreated trigger."""

from __future__ import annotations

import base64
import csv
import json
import time
import uuid
from urllib.parse import quote_plus

import pytest
import redis
from mangum import Mangum

from functions import handlers
from functions.s3_trigger import handle_event
from local.synthetic import write_video


@pytest.fixture(scope="module")
def lambda_app(app):
    return Mangum(app, lifespan="off")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("lambda") / "clip.mp4"
    write_video(path, [40, 35], fps=25)
    return path.read_bytes()


class Context:
    function_name = "videoapi-jobs"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    memory_limit_in_mb = 512

    @staticmethod
    def get_remaining_time_in_millis():
        return 29_000


def v1_event(method: str, path: str, headers: dict, body: bytes | None = None, query: dict | None = None) -> dict:
    """API Gateway REST API (payload 1.0) proxy integration."""
    binary = body is not None and not body.startswith(b"{")
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "X-Forwarded-Proto": "https", **headers},
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "xyz",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "abc=",
            "requestTime": "22/Nov/2026:12:00:00 +0000",
            "path": f"/prod{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "abc123",
            "requestTimeEpoch": int(time.time() * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.0"},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": None if body is None else (base64.b64encode(body).decode() if binary else body.decode()),
        "isBase64Encoded": binary,
    }


def v2_event(method: str, path: str, headers: dict, body: bytes | None = None, query: str = "") -> dict:
    """API Gateway HTTP API (payload 2.0)."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "x-forwarded-proto": "https",
            **{k.lower(): v for k, v in headers.items()},
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:12:00:00 +0000",
            "timeEpoch": int(time.time() * 1000),
        },
        **({"queryStringParameters": dict(p.split("=") for p in query.split("&"))} if query else {}),
        "body": None if body is None else base64.b64encode(body).decode(),
        "isBase64Encoded": body is not None,
    }


def test_v1_and_v2_drive_upload_submit_status_result(lambda_app, keys, clip, run_job):
    auth = {"X-API-Key": keys["alice"]}
    uploaded = lambda_app(
        v1_event("PUT", "/v1/uploads/direct", {**auth, "Content-Type": "video/mp4"}, clip, {"filename": "clip.mp4"}),
        Context(),
    )
    assert uploaded["statusCode"] == 201, uploaded["body"]
    key = json.loads(uploaded["body"])["key"]

    body = json.dumps({"source": key, "tag": "lambda"}).encode()
    submitted = lambda_app(v2_event("POST", "/v1/jobs", {**auth, "Content-Type": "application/json"}, body), Context())
    assert submitted["statusCode"] == 202, submitted["body"]
    job_id = json.loads(submitted["body"])["id"]

    status = lambda_app(v1_event("GET", f"/v1/jobs/{job_id}", auth), Context())
    assert status["statusCode"] == 200 and json.loads(status["body"])["status"] == "queued"
    pending = lambda_app(v2_event("GET", f"/v1/jobs/{job_id}/result", auth), Context())
    assert pending["statusCode"] == 409

    run_job(job_id)
    as_csv = lambda_app(v2_event("GET", f"/v1/jobs/{job_id}/result", auth, query="format=csv"), Context())
    assert as_csv["statusCode"] == 200 and as_csv["headers"]["content-type"].startswith("text/csv")
    lines = as_csv["body"].splitlines()
    assert lines[0].startswith("index,start_frame,end_frame")  # the shot-only header still leads
    rows = list(csv.DictReader(lines))
    assert [r["kind"] for r in rows] == ["shot", "shot", "technical_cue"]

    other = lambda_app(v1_event("GET", f"/v1/jobs/{job_id}", {"X-API-Key": keys["bob"]}), Context())
    assert other["statusCode"] == 404 and json.loads(other["body"])["error"]["code"] == "job_not_found"


def test_errors_are_json_under_lambda_too(lambda_app):
    response = lambda_app(v2_event("POST", "/v1/jobs", {"Content-Type": "application/json"}, b"{}"), Context())
    assert response["statusCode"] == 401 and json.loads(response["body"])["error"]["code"] == "unauthorized"


def test_the_lambda_entry_points_import_and_route(monkeypatch, api_settings, keys):
    for name, value in api_settings.to_env().items():
        monkeypatch.setenv(name, value)
    from videoapi.settings import get_settings

    get_settings.cache_clear()
    handlers._adapter.cache_clear()
    try:
        auth = {"X-API-Key": keys["alice"]}
        assert handlers.jobs(v2_event("GET", "/v1/jobs/job_nope", auth), Context())["statusCode"] == 404
        # the upload function serves only uploads
        assert handlers.upload(v2_event("GET", "/v1/jobs/job_nope", auth), Context())["statusCode"] == 404
        body = json.dumps({"filename": "a.mp4", "size_bytes": 10}).encode()
        headers = {**auth, "Content-Type": "application/json"}
        assert handlers.upload(v2_event("POST", "/v1/uploads", headers, body), Context())["statusCode"] == 201
    finally:
        get_settings.cache_clear()
        handlers._adapter.cache_clear()


def s3_event(bucket: str, key: str, size: int, sequencer: str) -> dict:
    """An S3 ObjectCreated:Put notification as Lambda receives it (keys are URL-encoded)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-22T12:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:EXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.7"},
                "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "incoming-videos",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "EXAMPLE"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                        "sequencer": sequencer,
                    },
                },
            }
        ]
    }


def test_s3_trigger_creates_one_job_per_object_even_when_delivered_twice(services, clip, run_job):
    storage = services.jobs.storage
    key = f"incoming/alice/Épisode 1 – final cut {uuid.uuid4().hex[:6]}.mp4"
    storage.put_bytes(key, clip, "video/mp4")
    event = s3_event(storage.bucket, key, len(clip), "0062E1D2B4C8F0A1B2")

    (first,) = handle_event(event, services)
    (again,) = handle_event(event, services)  # at-least-once delivery
    assert first["key"] == key and first["job_id"] and again["job_id"] == first["job_id"]
    job = services.jobs.store.get(first["job_id"])
    assert (job.client_id, job.key, job.tag) == ("alice", key, "s3-trigger")

    # the same key uploaded again later is a new object: a new job
    (replaced,) = handle_event(s3_event(storage.bucket, key, len(clip), "0062E1D2B4C8F0A1FF"), services)
    assert replaced["job_id"] != first["job_id"]

    run_job(first["job_id"])
    assert services.jobs.store.get(first["job_id"]).status == "succeeded"


def test_an_s3_event_whose_job_could_not_be_queued_leaves_nothing_and_its_redelivery_makes_it(services, clip):
    storage, jobs = services.jobs.storage, services.jobs
    key = f"incoming/alice/retried {uuid.uuid4().hex[:6]}.mp4"
    storage.put_bytes(key, clip, "video/mp4")
    event = s3_event(storage.bucket, key, len(clip), "0062E1D2B4C8F0A1C3")
    active, queued = jobs.quotas.active("alice"), jobs.fair.queued("alice")

    def redis_gone(*args, **kwargs):
        raise redis.ConnectionError("Redis went away before the transaction ran")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs.fair, "push", redis_gone)
        with pytest.raises(redis.ConnectionError):  # the Lambda fails, and S3 delivers the event again
            handle_event(event, services)
    # no record without its place in the queue (a job no worker would ever find), no quota place held
    assert not [job for job in jobs.store.list_for("alice", 1000) if job.key == key]
    assert (jobs.quotas.active("alice"), jobs.fair.queued("alice")) == (active, queued)

    (outcome,) = handle_event(event, services)
    assert jobs.store.get(outcome["job_id"]).status == "queued" and jobs.fair.queued("alice") == queued + 1


def test_s3_trigger_ignores_other_prefixes_and_refuses_path_tricks(services):
    bucket = services.jobs.storage.bucket
    assert handle_event(s3_event(bucket, "results/x.json", 10, "01"), services) == [
        {"key": "results/x.json", "job_id": None}
    ]
    assert handle_event(s3_event(bucket, "incoming/../uploads/bob/x.mp4", 10, "02"), services) == [
        {"key": "incoming/../uploads/bob/x.mp4", "error": "invalid_key"}
    ]
    deleted = s3_event(bucket, "incoming/alice/x.mp4", 10, "03")
    deleted["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert handle_event(deleted, services) == []
