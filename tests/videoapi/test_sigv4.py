"""SigV4 verification of requests signed by botocore itself, as a client signs them."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from videoapi.domain.aws_keys import KeyPair
from videoapi.domain.sigv4 import verify_request
from videoapi.errors import SignatureRejected

PAIR = KeyPair("AKIAEXAMPLEEXAMPLE12", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3", "alice")
URL = "http://127.0.0.1:8080/rekognition/"
BODY = b'{"JobId":"job_1"}'


def lookup(access_key_id: str) -> KeyPair | None:
    return PAIR if access_key_id == PAIR.access_key_id else None


def signed(secret: str = PAIR.secret_access_key, region: str = "eu-west-3", service: str = "rekognition", at=None):
    request = AWSRequest(
        method="POST",
        url=URL,
        data=BODY,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.GetSegmentDetection",
            "Host": "127.0.0.1:8080",
        },
    )
    signer = SigV4Auth(Credentials(PAIR.access_key_id, secret), service, region)
    if at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
            signer.add_auth(request)
    return dict(request.headers.items())


def verify(headers, body=BODY, url=URL, now=None):
    return verify_request("POST", url, headers, body, lookup, "rekognition", now=now)


def test_a_request_signed_by_botocore_verifies_in_any_region():
    assert verify(signed()) == PAIR
    assert verify(signed(region="us-east-1")) == PAIR


def test_header_names_in_any_case_and_order_verify():
    headers = signed()
    shuffled = {name.upper() if i % 2 else name.lower(): value for i, (name, value) in enumerate(headers.items())}
    assert verify(dict(reversed(list(shuffled.items())))) == PAIR


@pytest.mark.parametrize(
    "change, code",
    [
        (lambda h: signed(secret="wrong"), "InvalidSignatureException"),
        (lambda h: {**h, "X-Amz-Target": "RekognitionService.StartSegmentDetection"}, "InvalidSignatureException"),
        (
            lambda h: {**h, "Authorization": h["Authorization"].replace(PAIR.access_key_id, "AKIAUNKNOWN")},
            "UnrecognizedClientException",
        ),
        (lambda h: signed(service="s3"), "InvalidSignatureException"),
        (lambda h: {k: v for k, v in h.items() if k != "Authorization"}, "MissingAuthenticationTokenException"),
        (lambda h: {**h, "Authorization": "Bearer abc"}, "IncompleteSignatureException"),
    ],
)
def test_refusals_carry_awss_codes(change, code):
    with pytest.raises(SignatureRejected) as refused:
        verify(change(signed()))
    assert refused.value.code == code


def test_a_changed_body_is_refused():
    with pytest.raises(SignatureRejected) as refused:
        verify(signed(), body=b'{"JobId":"job_2"}')
    assert refused.value.code == "InvalidSignatureException" and "does not match" in refused.value.message


def test_requests_older_or_newer_than_15_minutes_are_refused():
    signed_at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    headers = signed(at=signed_at)
    assert verify(headers, now=signed_at + dt.timedelta(minutes=14)) == PAIR
    with pytest.raises(SignatureRejected) as late:
        verify(headers, now=signed_at + dt.timedelta(minutes=16))
    assert late.value.code == "InvalidSignatureException" and late.value.message.startswith("Signature expired")
    with pytest.raises(SignatureRejected) as early:
        verify(headers, now=signed_at - dt.timedelta(minutes=16))
    assert early.value.message.startswith("Signature not yet current")
