"""What fuzzing the API (tests/fuzz) found, each as a regular test; and the error responses its document declares."""

from __future__ import annotations

import pytest

from functions.app import create_app
from videoapi.settings import Settings

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
# every error status each operation can answer: its handler's, and the API key dependency's (401, 429, 503)
KEYED = {"401", "429", "503"}
ERRORS = {
    ("get", "/v1/health"): {"503"},
    ("get", "/v1/usage"): KEYED,
    ("get", "/v1/jobs"): KEYED | {"422"},
    ("post", "/v1/jobs"): KEYED | {"404", "409", "413", "422"},
    ("get", "/v1/jobs/{job_id}"): KEYED | {"404"},
    ("post", "/v1/jobs/{job_id}/cancel"): KEYED | {"404", "409"},
    ("post", "/v1/jobs/{job_id}/clips"): KEYED | {"404", "409", "422"},
    ("get", "/v1/jobs/{job_id}/video"): KEYED | {"404"},
    ("get", "/v1/jobs/{job_id}/result"): KEYED | {"404", "409", "422"},
    ("post", "/v1/uploads"): KEYED | {"413", "415", "422"},
    ("put", "/v1/uploads/direct"): KEYED | {"413", "415", "422"},
    ("get", "/v1/batches"): KEYED | {"422"},
    ("post", "/v1/batches"): KEYED | {"404", "409", "413", "422"},
    ("get", "/v1/batches/{batch_id}"): KEYED | {"404"},
    ("post", "/v1/batches/{batch_id}/cancel"): KEYED | {"404", "409"},
    ("post", "/v1/batches/{batch_id}/retry"): KEYED | {"404", "409"},
    ("get", "/v1/batches/{batch_id}/results"): KEYED | {"404", "422"},
    ("get", "/v1/batches/{batch_id}/clip"): KEYED | {"404", "409", "422"},
}


def test_the_document_declares_each_operations_errors_with_the_error_body():
    document = create_app(Settings()).openapi()
    operations = {(m, p): o for p, item in document["paths"].items() for m, o in item.items()}
    assert set(operations) == set(ERRORS)
    for (method, path), operation in operations.items():
        responses = operation["responses"]
        errors = {status for status in responses if int(status) >= 400}
        assert errors == ERRORS[method, path], (method, path)
        assert all(responses[status]["content"] == ERROR_BODY for status in errors), (method, path)
        assert ("security" in operation) == ("401" in errors), (method, path)  # the API key header
        if "429" in errors:
            assert {"Retry-After", "RateLimit-Remaining"} <= set(responses["429"]["headers"])
    assert "HTTPValidationError" not in str(document)  # FastAPI's default 422 body is not what this API answers
    scheme = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert document["components"]["securitySchemes"]["ApiKey"] == scheme
    submit = operations["post", "/v1/jobs"]["responses"]  # 200: an idempotent replay
    assert "Location" in submit["202"]["headers"] and "Location" in submit["200"]["headers"]
    assert "Location" in operations["post", "/v1/jobs/{job_id}/clips"]["responses"]["202"]["headers"]
    direct = operations["put", "/v1/uploads/direct"]
    assert "application/octet-stream" in direct["requestBody"]["content"]
    assert "content-type" not in {p["name"].lower() for p in direct.get("parameters", [])}
    error = document["components"]["schemas"]["ErrorDetail"]
    assert error["required"] == ["code", "message"] and "field" in error["properties"]


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/uploads", "/v1/jobs/job_0/clips"])
def test_a_body_that_is_not_utf8_is_422_as_any_malformed_body_not_an_undeclared_400(http, alice, path):
    response = http.post(path, content=b'{"source": "\xff\xfe"}', headers={**alice, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["field"] == "body"


def test_a_method_the_path_lacks_is_405_with_its_allow_header(http, alice):
    response = http.delete("/v1/jobs", headers=alice)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com:99999/hook",  # a port out of range: urlparse's ValueError
        "https://example.com:port/hook",
        "https://[::1/hook",  # an unclosed IPv6 host
        "https://[]/",
        "https://" + "a" * 64 + ".example/hook",  # a label IDNA cannot encode (over 63): UnicodeError
        "http://.example/hook",  # an empty label
        "https://a..example/hook",
    ],
)
def test_a_malformed_callback_url_is_422_not_a_server_error(http, alice, url):
    response = http.post("/v1/jobs", json={"source": "uploads/alice/x.mp4", "callback_url": url}, headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_callback_url"


@pytest.mark.parametrize(
    "filters, field",
    [
        ({"black_frame": 5}, "filters.black_frame"),
        ({"black_frame": ["max_pixel_threshold"]}, "filters.black_frame"),
        ({"black_frame": {"max_pixel_threshold": "dark"}}, "filters.black_frame.max_pixel_threshold"),
        ({"min_segment_confidence": {}}, "filters.min_segment_confidence"),
        ("all", "filters"),
    ],
)
def test_filters_of_the_wrong_type_are_422_not_a_server_error(http, alice, filters, field):
    response = http.post("/v1/jobs", json={"source": "uploads/alice/x.mp4", "filters": filters}, headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
