"""The Rekognition router in-process: requests signed by botocore's SigV4, errors as botocore parses them."""

from __future__ import annotations

import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.testclient import TestClient

from videoapi.domain.aws_keys import KeyPairs


@pytest.fixture(scope="module")
def at_root(api_settings, services) -> TestClient:
    from functions.app import create_app

    settings = api_settings.model_copy(update={"rekognition_at_root": True})
    return TestClient(create_app(settings, services=services))


@pytest.fixture(scope="module")
def pair(services):
    return services.key_pairs.create("alice")


def call(client: TestClient, pair, target: str, params: dict, path: str = "/"):
    body = json.dumps(params).encode()
    request = AWSRequest(
        method="POST",
        url=f"http://testserver{path}",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"RekognitionService.{target}"},
    )
    SigV4Auth(Credentials(pair.access_key_id, pair.secret_access_key), "rekognition", "ap-south-1").add_auth(request)
    return client.post(path, content=body, headers=dict(request.headers.items()))


def test_answers_on_root_when_the_setting_says_so(at_root, http, pair):
    response = call(at_root, pair, "GetSegmentDetection", {"JobId": "job_missing"})
    assert response.status_code == 400 and response.headers["content-type"] == "application/x-amz-json-1.1"
    assert response.json()["__type"] == "ResourceNotFoundException"
    assert call(http, pair, "GetSegmentDetection", {"JobId": "job_missing"}, "/rekognition/").status_code == 400
    assert http.post("/", content=b"{}").status_code == 405  # off by default


def test_parameters_are_checked_against_the_models_constraints(at_root, pair):
    for params in (
        {"JobId": "job_x", "MaxResults": 0},
        {"JobId": "job x"},
        {"JobId": "job_x", "Unknown": 1},
    ):
        answer = call(at_root, pair, "GetSegmentDetection", params)
        assert answer.status_code == 400 and answer.json()["__type"] == "InvalidParameterException", params
    start = {"Video": {"S3Object": {"Bucket": "videoapi-test", "Name": "a.mp4"}}, "SegmentTypes": ["SHOT"]}
    for params in (
        {**start, "SegmentTypes": []},
        {**start, "Filters": {"ShotFilter": {"MinSegmentConfidence": 20}}},
        {**start, "Filters": {"TechnicalCueFilter": {"BlackFrame": {"MaxPixelThreshold": 2}}}},
        {**start, "NotificationChannel": {"SNSTopicArn": "topic", "RoleArn": "role"}},
    ):
        answer = call(at_root, pair, "StartSegmentDetection", params)
        assert answer.json()["__type"] == "InvalidParameterException", params
    not_allowed = {**start, "Video": {"S3Object": {"Bucket": "someone-elses", "Name": "a.mp4"}}}
    assert call(at_root, pair, "StartSegmentDetection", not_allowed).json()["__type"] == "AccessDeniedException"


def test_unknown_operations_and_unsigned_requests(at_root, pair):
    unknown = call(at_root, pair, "DetectLabels", {})
    assert unknown.status_code == 400 and unknown.json()["__type"].endswith("#UnknownOperationException")
    huge = at_root.post("/", content=b" " * 100_000, headers={"X-Amz-Target": "RekognitionService.GetSegmentDetection"})
    assert huge.status_code == 413 and huge.json()["__type"] == "InvalidParameterException"
    unsigned = at_root.post("/", content=b"{}", headers={"X-Amz-Target": "RekognitionService.GetSegmentDetection"})
    assert unsigned.status_code == 403 and unsigned.json()["__type"] == "MissingAuthenticationTokenException"


def test_secrets_are_encrypted_at_rest_under_the_server_key_and_rotate(services):
    redis = services.jobs.store.redis
    sealed = KeyPairs(redis, server_key="server passphrase")
    pair = sealed.create("carol")
    record = redis.hget("awskeys", pair.access_key_id)
    assert pair.secret_access_key not in record and json.loads(record)["encrypted"] is True
    assert sealed.lookup(pair.access_key_id) == pair
    assert KeyPairs(redis).lookup(pair.access_key_id) is None  # without the server key it cannot be read
    assert KeyPairs(redis, server_key="another").lookup(pair.access_key_id) is None
    rotated = sealed.rotate(pair.access_key_id)
    assert rotated.client_id == "carol" and rotated.access_key_id != pair.access_key_id
    assert sealed.lookup(pair.access_key_id) is None and sealed.lookup(rotated.access_key_id) == rotated


def test_a_job_that_fails_is_failed_with_our_reason(at_root, http, alice, pair, api_settings, run_job):
    from videoapi.errors import VideoRejected
    from videoapi.pipeline.detection import as_job_error

    key = http.put(
        "/v1/uploads/direct",
        params={"filename": "junk.mp4"},
        content=b"not a video" * 100,
        headers={**alice, "Content-Type": "video/mp4"},
    ).json()["key"]
    start = {"Video": {"S3Object": {"Bucket": api_settings.bucket, "Name": key}}, "SegmentTypes": ["SHOT"]}
    job_id = call(at_root, pair, "StartSegmentDetection", {**start, "JobTag": "junk"}).json()["JobId"]
    queued = call(at_root, pair, "GetSegmentDetection", {"JobId": job_id}).json()
    assert queued["JobStatus"] == "IN_PROGRESS" and "Segments" not in queued and queued["JobTag"] == "junk"
    with pytest.raises(VideoRejected) as caught:
        run_job(job_id)
    error = as_job_error(caught.value)  # what the worker's task adapter records
    http.app.state.services.jobs.store.fail(job_id, error.code, error.message)
    failed = call(at_root, pair, "GetSegmentDetection", {"JobId": job_id}).json()
    assert failed["JobStatus"] == "FAILED" and failed["StatusMessage"].startswith("not_a_video: ")
    assert http.get(f"/v1/jobs/{job_id}", headers=alice).json()["status"] == "failed"  # the HTTP API sees it too
