"""Fuzzing the Rekognition-compatible endpoint with bodies drawn from botocore's own Rekognition service model.

For the operations the service implements, Hypothesis draws parameters from the operations' input shapes:
strings (their patterns and lengths, and any text), integers and floats within their min/max and outside,
enums, lists, structures with required members sometimes dropped and unknown ones sometimes added, a wrong
type now and then, and values the fuzzer's client owns (its bucket, upload and jobs). Each body is sent
SigV4-signed as botocore signs it, signed with a wrong secret, and unsigned, to POST / and /rekognition/.
Every answer must be no server error, in Rekognition's content type; every 4xx a JSON error body in
Rekognition's shape ({"__type", "message"}, x-amzn-ErrorType); every 200 readable by botocore's parser as the
operation's output. After the run no job is half made (tests/fuzz/conftest.py).

VIDEOAPI_FUZZ_EXAMPLES (default 50, as tests/fuzz/test_api_fuzz.py) bodies an operation, derandomized; longer:

    VIDEOAPI_FUZZ_EXAMPLES=1000 .venv/bin/pytest -m fuzz tests/fuzz -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
from typing import Any

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import Shape
from botocore.parsers import create_parser
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("VIDEOAPI_FUZZ_EXAMPLES", "50"))
MODEL = botocore.session.get_session().get_service_model("rekognition")
IMPLEMENTED = ("StartSegmentDetection", "GetSegmentDetection")
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_LIST = 4

# a value of any other type, now and then
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _rarely(strategy: st.SearchStrategy[Any], otherwise: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`otherwise` nine times in ten, `strategy` the tenth."""
    return st.integers(0, 9).flatmap(lambda n: strategy if n == 0 else otherwise)


def _string(shape: Shape) -> st.SearchStrategy[Any]:
    meta = shape.metadata
    if meta.get("enum"):
        return _rarely(st.text(max_size=12), st.sampled_from(meta["enum"]))
    low, high = meta.get("min", 0), meta.get("max", 300)
    fitting = st.text(min_size=low, max_size=min(high, 300))
    if meta.get("pattern"):
        drawn = st.from_regex(meta["pattern"], fullmatch=True).map(lambda s: s[:high])
        fitting = st.one_of(drawn.filter(lambda s: len(s) >= low), fitting)
    return _rarely(st.text(max_size=high + 2), fitting)  # some over the length, some outside the pattern


def _number(shape: Shape) -> st.SearchStrategy[Any]:
    meta = shape.metadata
    low, high = meta.get("min"), meta.get("max")
    if shape.type_name in ("integer", "long"):
        return _rarely(st.integers(), st.integers(low, high))
    return _rarely(st.floats(), st.floats(low, high))  # outside: NaN and infinities too, as Python's JSON writes


def strategy_for(shape: Shape, known: dict[str, st.SearchStrategy[Any]], name: str = "") -> st.SearchStrategy[Any]:
    """Values for `shape` (botocore's input shape), with `known[name]` mixed in for a member called `name`."""
    kind = shape.type_name
    if kind == "structure":
        members = {n: strategy_for(s, known, n) for n, s in shape.members.items()}
        required = [n for n in shape.required_members if n in members]
        optional = {n: s for n, s in members.items() if n not in required}
        drawn = st.fixed_dictionaries({n: members[n] for n in required}, optional=optional)
        dropped = st.sets(st.sampled_from(required), max_size=1) if required else st.just(set())
        extra = st.dictionaries(st.sampled_from(["Unknown", "video", "jobId"]), _JUNK, max_size=1)
        value = st.tuples(drawn, _rarely(dropped, st.just(set())), _rarely(extra, st.just({})))
        value = value.map(lambda t: {**{k: v for k, v in t[0].items() if k not in t[1]}, **t[2]})
    elif kind == "list":
        low = shape.metadata.get("min", 0)
        value = _rarely(
            st.lists(strategy_for(shape.member, known), max_size=1),
            st.lists(strategy_for(shape.member, known), min_size=low, max_size=max(low, MAX_LIST)),
        )
    elif kind == "map":
        value = st.dictionaries(strategy_for(shape.key, known), strategy_for(shape.value, known), max_size=MAX_LIST)
    elif kind == "string":
        value = _string(shape)
    elif kind in ("integer", "long", "float", "double"):
        value = _number(shape)
    elif kind == "boolean":
        value = st.booleans()
    else:  # blob, timestamp: the two operations have none
        value = st.text(max_size=16)
    if name in known:  # three times in four
        value = st.integers(0, 3).flatmap(lambda n, v=value: v if n == 0 else known[name])
    return _rarely(_JUNK, value)


def missing_required(value: Any, shape: Shape) -> bool:
    """Whether `value` lacks a member `shape` requires (anywhere in it), as botocore's validator would say."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return any(n not in value for n in shape.required_members) or any(
            missing_required(value[n], s) for n, s in shape.members.items() if n in value
        )
    if shape.type_name == "list" and isinstance(value, list):
        return any(missing_required(item, shape.member) for item in value)
    return False


def signed(client: TestClient, pair, target: str, body: bytes, path: str, signature: str):
    """POST the body as botocore sends it: signed (`valid`), signed with a wrong secret, or `unsigned`."""
    request = AWSRequest(
        method="POST",
        url=f"http://testserver{path}",
        data=body,
        headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"RekognitionService.{target}"},
    )
    if signature != "unsigned":
        secret = pair.secret_access_key if signature == "valid" else pair.secret_access_key[::-1] + "x"
        SigV4Auth(Credentials(pair.access_key_id, secret), "rekognition", "eu-west-1").add_auth(request)
    return client.post(path, content=body, headers=dict(request.headers.items()))


@pytest.fixture(scope="module")
def rekognition(fuzz_app, fuzz_services, known):
    return TestClient(fuzz_app), fuzz_services.key_pairs.create("fuzzer")


def _known_values(known, bucket: str) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "Video": st.just({"S3Object": {"Bucket": bucket, "Name": known.upload}}),
        "Bucket": st.just(bucket),
        "Name": st.just(known.upload),
        "JobId": st.sampled_from(known.job_ids),
        "SegmentTypes": st.sampled_from([["SHOT"], ["TECHNICAL_CUE", "SHOT"]]),
    }


@pytest.mark.parametrize("operation", [*IMPLEMENTED, "DetectLabels"])
def test_every_answer_is_rekognitions_shape(operation, rekognition, known, fuzz_settings, half_made):
    client, pair = rekognition
    model = MODEL.operation_model(operation)
    params = strategy_for(model.input_shape, _known_values(known, fuzz_settings.bucket))
    as_json = params.map(lambda p: json.dumps(p).encode())
    bodies = _rarely(st.one_of(st.binary(max_size=64), st.just(b"[]"), st.just(b"")), as_json)
    parser = create_parser("json")

    @given(body=bodies, path=st.sampled_from(["/", "/rekognition/"]))
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(body: bytes, path: str) -> None:
        try:
            value = json.loads(body or b"{}")
        except ValueError:
            value = None
        for signature in ("valid", "wrong", "unsigned"):
            response = signed(client, pair, operation, body, path, signature)
            where = f"{operation} {signature} {body[:200]!r}: {response.status_code} {response.text[:300]}"
            assert response.status_code < 500, where
            assert response.headers["content-type"] == CONTENT_TYPE, where
            answer = response.json()
            assert isinstance(answer, dict), where
            if response.status_code >= 400:
                assert response.status_code in (400, 403, 413), where
                assert isinstance(answer.get("__type"), str) and isinstance(answer.get("message"), str), where
                assert set(answer) == {"__type", "message"}, where
                assert response.headers["x-amzn-errortype"] == answer["__type"], where
                parsed = parser.parse(
                    {"status_code": response.status_code, "headers": dict(response.headers), "body": response.content},
                    model.output_shape,
                )
                assert parsed["Error"]["Code"] == answer["__type"].rsplit("#", 1)[-1], where
            else:
                assert response.status_code == 200 and signature == "valid", where
                assert operation in IMPLEMENTED and isinstance(value, dict), where
                assert not missing_required(value, model.input_shape), where
                parsed = parser.parse(
                    {"status_code": 200, "headers": dict(response.headers), "body": response.content},
                    model.output_shape,
                )
                assert "Error" not in parsed and (parsed.get("JobId") or parsed.get("JobStatus")), where
            if signature != "valid":
                assert response.status_code in (400, 403), where
                assert answer["__type"] in (
                    "MissingAuthenticationTokenException",
                    "InvalidSignatureException",
                    "IncompleteSignatureException",
                ), where

    fuzz()
    assert half_made() == []
