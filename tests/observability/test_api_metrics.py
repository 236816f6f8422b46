"""The API's request metrics (in-process, real Redis and moto S3): labels, the /metrics guard, EMF lines."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from functions.app import create_app
from videoapi.observability.logging import configure_logging, job_context


def samples(text: str, name: str) -> list:
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_metrics_are_off_unless_the_setting_turns_them_on(api_settings, services):
    assert TestClient(create_app(api_settings, services=services)).get("/metrics").status_code == 404
    on = TestClient(create_app(api_settings.model_copy(update={"api_metrics": True}), services=services))
    response = on.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert samples(response.text, "videoapi_queue_depth")


def test_requests_are_counted_by_route_template_status_and_client(api_settings, services, keys):
    client = TestClient(create_app(api_settings.model_copy(update={"api_metrics": True}), services=services))
    route = {"route": "/v1/jobs/{job_id}", "method": "GET"}

    def count(status: str, who: str) -> float:
        text = client.get("/metrics").text
        found = samples(text, "videoapi_http_requests_total")
        return sum(s.value for s in found if s.labels == {**route, "status": status, "client": who})

    before_404, before_401 = count("404", "alice"), count("401", "")
    assert client.get("/v1/jobs/job_nope", headers={"X-API-Key": keys["alice"]}).status_code == 404
    assert client.get("/v1/jobs/job_other").status_code == 401
    assert count("404", "alice") == before_404 + 1  # the template, not the id: no label per job
    assert count("401", "") == before_401 + 1


def test_emf_lines_carry_cloudwatch_metrics_for_each_request(api_settings, services, keys, capsys):
    client = TestClient(create_app(api_settings.model_copy(update={"emf_metrics": True}), services=services))
    capsys.readouterr()
    assert client.get("/v1/jobs/job_nope", headers={"X-API-Key": keys["alice"]}).status_code == 404
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"_aws"')]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    for metric in directive["Metrics"]:
        assert isinstance(line[metric["Name"]], int | float)
    assert all(name in line for dims in directive["Dimensions"] for name in dims)
    assert line["Route"] == "GET /v1/jobs/{job_id}" and line["Status"] == "404" and line["Requests"] == 1


def test_json_log_lines_carry_the_job_id(capsys):
    configure_logging("json")
    try:
        with job_context("job_abc"):
            logging.getLogger("videoapi.test").warning("inside", extra={"frames": 3})
        logging.getLogger("videoapi.test").warning("outside")
        inside, outside = [json.loads(x) for x in capsys.readouterr().err.splitlines()[-2:]]
        assert inside["job_id"] == "job_abc" and inside["frames"] == 3 and inside["level"] == "WARNING"
        assert outside["job_id"] == "" and outside["message"] == "outside" and "trace_id" in outside
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "videoapi"]:
            root.removeHandler(handler)
