"""Schema-driven fuzzing of the HTTP API: every operation of its own OpenAPI document, through Schemathesis.

Each generated request (valid and invalid data: Schemathesis's positive and negative modes, its examples,
coverage and fuzzing phases) is sent with the fuzzer's valid API key, a rate-limited one, a wrong one and none,
to the app over real Redis and moto S3 (tests/fuzz/conftest.py). Every response must be no server error, have a
status the operation declares, a declared content type, the declared headers and a body its schema allows;
without a valid key an operation that takes one answers 401 (or 422 for a body that cannot be read at all).
After each operation no job is half made (a record without its queue entry, a quota place or an idempotency
marker without its job).

Bounded for CI: VIDEOAPI_FUZZ_EXAMPLES (default 50) examples an operation in the fuzzing phase, besides the
document's examples and Schemathesis's coverage cases (about 830 cases, 3,300 requests, some 40 s on 2 cores),
derandomized: the same requests every run. A longer run:

    VIDEOAPI_FUZZ_EXAMPLES=1000 .venv/bin/pytest -m fuzz tests/fuzz -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("VIDEOAPI_FUZZ_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,  # a method the path does not have: 405 with an Allow header
]
URL_TEMPLATES = ("https://{}/", "https://example.com:{}/", "https://[{}]/", "http://{}.example/hook")
# the operations, read from the recorded document (tests/functions/test_openapi.py holds it equal to the live one)
RECORDED = json.loads((Path(__file__).parents[1] / "functions" / "openapi.json").read_text())
OPERATIONS = [(method.upper(), path) for path, operations in RECORDED["paths"].items() for method in operations]


@pytest.fixture(scope="session")
def api_schema(fuzz_app, known):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    schema.config.generation.update(with_security_parameters=False)  # each case is sent with each key below
    return schema


def _aim(case, known, turn: int) -> None:
    """Point most cases at what the fuzzer's client owns (a job in each state, its upload), in turn."""
    if case.path_parameters and isinstance(case.path_parameters.get("job_id"), str):
        choices = (known.succeeded, known.queued, known.succeeded, known.failed, case.path_parameters["job_id"])
        case.path_parameters["job_id"] = choices[turn % len(choices)]
    if isinstance(case.body, dict) and isinstance(case.body.get("source"), str) and turn % 2:
        case.body["source"] = known.upload
    if isinstance(case.body, dict) and isinstance(case.body.get("callback_url"), str) and turn % 3:
        # the drawn text as a URL's host, port or IPv6 address: the parts a URL parser and IDNA refuse
        case.body["callback_url"] = URL_TEMPLATES[turn % len(URL_TEMPLATES)].format(case.body["callback_url"])


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_conforms_to_the_document(method, path, api_schema, known, half_made):
    operation = api_schema[path][method]
    keyed = bool(operation.definition.raw.get("security"))

    def fuzz(case) -> None:
        # the turn from the drawn data itself, so that Hypothesis replays a failing case exactly
        _aim(case, known, zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode()))
        for name, key in (("valid", known.key), ("tight", known.tight_key), ("wrong", "not-a-key"), ("none", None)):
            headers = {"X-API-Key": key} if key else {}
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS, headers=headers)
            if keyed and name in ("wrong", "none") and case.method.upper() == method:
                assert response.status_code in (401, 422), (name, response.status_code, response.text)

    test = create_test(
        operation=operation,
        test_func=fuzz,
        config=HypothesisTestConfig(
            project=api_schema.config,
            modes=list(HypothesisTestMode),  # the document's examples, its coverage cases, then fuzzing
            settings=settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        ),
    )
    test()
    assert half_made() == []
