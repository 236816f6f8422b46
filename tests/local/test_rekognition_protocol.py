"""boto3's own `rekognition` client and the AWS CLI against `videoapi local up`: only endpoint_url and keys change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.session
import httpx
import pytest
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from local.synthetic import write_video

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "videoapi"]
ACCOUNT = "123456789012"  # moto's default account


def cli_env(runtime: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VIDEOAPI_REDIS_URL")}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="module")
def stack(runtime, tmp_path_factory):
    """`videoapi local up`: its state, and the key pair it printed on its second line."""
    log = tmp_path_factory.mktemp("stack") / "stack.err"
    with log.open("w") as err:
        process = subprocess.Popen(
            [*CLI, "local", "up", "--api-port", "0"],
            env=cli_env(runtime),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            ready, pair = process.stdout.readline(), process.stdout.readline()
            assert ready.startswith("ready: API "), f"{ready!r}\n{log.read_text()}"
            printed = dict(part.split("=", 1) for part in pair.split())
            assert set(printed) == {"aws_access_key_id", "aws_secret_access_key"}, pair
            state = json.loads((runtime / "videoapi" / "local-stack.json").read_text())
            yield state, printed
        finally:
            process.terminate()  # SIGTERM: the stack stops its children
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def create_pair(runtime: Path, client: str) -> dict:
    done = subprocess.run(
        [*CLI, "keys", "create", client, "--json"], env=cli_env(runtime), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def rekognition(stack, pair: dict, secret: str | None = None):
    state, _ = stack
    return boto3.client(
        "rekognition",
        endpoint_url=f"{state['api_url']}/rekognition",
        region_name="us-east-1",
        aws_access_key_id=pair["aws_access_key_id"],
        aws_secret_access_key=secret or pair["aws_secret_access_key"],
    )


def aws_client(stack, service: str):
    state, _ = stack
    return boto3.client(
        service,
        endpoint_url=state["s3_endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@pytest.fixture(scope="module")
def dev_pair(stack, runtime) -> dict:
    return create_pair(runtime, "dev")  # the stack's API key is client "dev"'s


@pytest.fixture(scope="module")
def video_object(stack, tmp_path_factory) -> dict:
    state, _ = stack
    video = tmp_path_factory.mktemp("video") / "five shots.mp4"
    write_video(video, [30, 35, 40, 30, 45], fps=25)
    key = "uploads/dev/rekognition/five shots.mp4"
    aws_client(stack, "s3").upload_file(str(video), state["bucket"], key)
    return {"Bucket": state["bucket"], "Name": key}


@pytest.fixture(scope="module")
def notifications(stack):
    """A moto SNS topic with a moto SQS queue subscribed to it."""
    sns, sqs = aws_client(stack, "sns"), aws_client(stack, "sqs")
    topic = sns.create_topic(Name="rekognition-done")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="rekognition-done")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, sqs, queue_url


def wait_until_finished(client, job_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get_segment_detection(JobId=job_id)
        if response["JobStatus"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


@pytest.fixture(scope="module")
def finished(stack, dev_pair, video_object, notifications):
    """A segment detection started and polled through boto3's rekognition client, unchanged."""
    topic, _, _ = notifications
    client = rekognition(stack, dev_pair)
    start = {
        "Video": {"S3Object": video_object},
        "SegmentTypes": ["SHOT", "TECHNICAL_CUE"],
        "ClientRequestToken": "first-request",
        "JobTag": "switch-test",
        "NotificationChannel": {"SNSTopicArn": topic, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/RekognitionSNS"},
        "Filters": {"ShotFilter": {"MinSegmentConfidence": 50}},
    }
    job_id = client.start_segment_detection(**start)["JobId"]
    response = wait_until_finished(client, job_id)
    assert response["JobStatus"] == "SUCCEEDED", response
    return client, start, job_id, response


def test_boto3_start_and_get_give_the_http_apis_segments(stack, finished):
    state, _ = stack
    _, _, job_id, response = finished
    shots = [s for s in response["Segments"] if s["Type"] == "SHOT"]
    cues = [s for s in response["Segments"] if s["Type"] == "TECHNICAL_CUE"]
    assert [s["StartFrameNumber"] for s in shots] == [0, 30, 65, 105, 135]
    # a plain picture, no bars, black or silence: the whole video is one Content cue, as Rekognition reports it
    assert [(c["TechnicalCueSegment"]["Type"], c["StartFrameNumber"], c["EndFrameNumber"]) for c in cues] == [
        ("Content", 0, 179)
    ]
    assert response["JobTag"] == "switch-test" and response["VideoMetadata"][0]["FrameRate"] == 25.0
    assert response["SelectedSegmentTypes"][0]["Type"] == "TECHNICAL_CUE"
    http = httpx.get(
        f"{state['api_url']}/v1/jobs/{job_id}/result",
        params={"format": "rekognition"},
        headers={"X-API-Key": state["api_key"]},
    )
    assert http.status_code == 200
    assert http.json()["Segments"] == response["Segments"]
    job = httpx.get(f"{state['api_url']}/v1/jobs/{job_id}", headers={"X-API-Key": state["api_key"]}).json()
    assert job["status"] == "succeeded" and job["tag"] == "switch-test"  # a job like any other


def test_pagination_with_max_results_2_returns_every_segment_once(finished):
    client, _, job_id, response = finished
    pages, token = [], None
    while True:
        page = client.get_segment_detection(JobId=job_id, MaxResults=2, **({"NextToken": token} if token else {}))
        assert len(page["Segments"]) <= 2
        pages.append(page["Segments"])
        token = page.get("NextToken")
        if not token:
            break
    assert len(pages) == 3 and [s for p in pages for s in p] == response["Segments"]
    with pytest.raises(ClientError) as bad:
        client.get_segment_detection(JobId=job_id, NextToken="not-a-token")
    assert bad.value.response["Error"]["Code"] == "InvalidPaginationTokenException"


def test_client_request_token_replay_returns_the_same_job(finished):
    client, start, job_id, _ = finished
    assert client.start_segment_detection(**start)["JobId"] == job_id
    with pytest.raises(ClientError) as mismatch:
        client.start_segment_detection(**{**start, "JobTag": "another-tag"})
    assert mismatch.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"


def test_a_wrong_secret_fails_as_aws_fails_it(stack, dev_pair, finished):
    _, _, job_id, _ = finished
    client = rekognition(stack, dev_pair, secret="x" * 40)
    with pytest.raises(ClientError) as refused:
        client.get_segment_detection(JobId=job_id)
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    unknown = rekognition(stack, {**dev_pair, "aws_access_key_id": "AKIAUNKNOWNUNKNOWN00"})
    with pytest.raises(ClientError) as refused:
        unknown.get_segment_detection(JobId=job_id)
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_another_clients_job_is_not_found(stack, runtime, finished):
    _, _, job_id, _ = finished
    other = rekognition(stack, create_pair(runtime, "someone-else"))
    with pytest.raises(ClientError) as missing:
        other.get_segment_detection(JobId=job_id)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_bad_parameters_and_objects_get_rekognitions_errors(stack, dev_pair, video_object):
    client = rekognition(stack, dev_pair)
    with pytest.raises(ClientError) as missing:
        client.start_segment_detection(
            Video={"S3Object": {**video_object, "Name": "uploads/dev/nothing.mp4"}}, SegmentTypes=["SHOT"]
        )
    assert missing.value.response["Error"]["Code"] == "InvalidS3ObjectException"
    with pytest.raises(ClientError) as unknown_op:
        client.detect_labels(Image={"S3Object": video_object})
    assert unknown_op.value.response["Error"]["Code"] == "UnknownOperationException"


def test_the_aws_cli_gets_the_same_document(stack, dev_pair, finished, tmp_path):
    state, _ = stack
    _, _, job_id, response = finished
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": dev_pair["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": dev_pair["aws_secret_access_key"],
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "awscli", "rekognition", "get-segment-detection", "--job-id", job_id,
         "--endpoint-url", f"{state['api_url']}/rekognition", "--region", "us-east-1", "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    assert json.loads(done.stdout) == expected


def test_the_completion_message_reaches_sns_and_sqs(finished, notifications):
    _, _, job_id, _ = finished
    _, sqs, queue_url = notifications
    deadline, messages = time.monotonic() + 60, []
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    assert messages, "no completion message reached the queue"
    envelope = json.loads(messages[0]["Body"])  # SNS's notification, Rekognition's message inside
    message = json.loads(envelope["Message"])
    assert message["JobId"] == job_id and message["Status"] == "SUCCEEDED"
    assert message["API"] == "StartSegmentDetection" and message["JobTag"] == "switch-test"
    assert message["Video"] == {"S3ObjectName": "uploads/dev/rekognition/five shots.mp4", "S3Bucket": "videoapi"}
    assert isinstance(message["Timestamp"], int)


def test_detect_format_rekognition_end_to_end(stack, runtime, tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [40, 50], fps=25, audio=True)  # an AAC tone: AudioMetadata is filled
    done = subprocess.run(
        [*CLI, "detect", str(video), "--format", "rekognition"],
        env=cli_env(runtime),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    shape = botocore.session.get_session().get_service_model("rekognition")
    report = ParamValidator().validate(document, shape.operation_model("GetSegmentDetection").output_shape)
    assert not report.has_errors(), report.generate_report()
    assert document["JobStatus"] == "SUCCEEDED"
    shots = [(s["StartFrameNumber"], s["EndFrameNumber"]) for s in document["Segments"] if s["Type"] == "SHOT"]
    assert shots == [(0, 39), (40, 89)]
    cues = [(s["TechnicalCueSegment"]["Type"], s["StartFrameNumber"], s["EndFrameNumber"]) for s in document["Segments"]
            if s["Type"] == "TECHNICAL_CUE"]  # fmt: skip
    assert cues == [("Content", 0, 89)]  # the tone never stops: no Silence (nor would it be in this document)
    [audio] = document["AudioMetadata"]
    assert (audio["Codec"], audio["SampleRate"], audio["NumberOfChannels"]) == ("aac", 44100, 2)  # AAC's default
    assert abs(audio["DurationMillis"] - 3600) <= 100


def test_a_given_object_version_is_the_one_detected(stack, dev_pair, tmp_path):
    state, _ = stack
    s3 = aws_client(stack, "s3")
    s3.put_bucket_versioning(Bucket=state["bucket"], VersioningConfiguration={"Status": "Enabled"})
    key, versions = "uploads/dev/rekognition/versioned.mp4", []
    for n, shots in enumerate(([40, 50], [30, 30, 30])):
        video = tmp_path / f"v{n}.mp4"
        write_video(video, shots, fps=25, seed=n)
        versions.append(s3.put_object(Bucket=state["bucket"], Key=key, Body=video.read_bytes())["VersionId"])
    client = rekognition(stack, dev_pair)
    s3_object = {"Bucket": state["bucket"], "Name": key}
    first = client.start_segment_detection(
        Video={"S3Object": {**s3_object, "Version": versions[0]}}, SegmentTypes=["SHOT"]
    )
    latest = client.start_segment_detection(Video={"S3Object": s3_object}, SegmentTypes=["SHOT"])
    assert len(wait_until_finished(client, first["JobId"])["Segments"]) == 2
    assert len(wait_until_finished(client, latest["JobId"])["Segments"]) == 3
    with pytest.raises(ClientError) as missing:
        client.start_segment_detection(
            Video={"S3Object": {**s3_object, "Version": "no-such-version"}}, SegmentTypes=["SHOT"]
        )
    assert missing.value.response["Error"]["Code"] == "InvalidS3ObjectException"
