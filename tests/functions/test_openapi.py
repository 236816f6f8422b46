"""The API's contract: the OpenAPI document is the one recorded in tests/functions/openapi.json.

A change to a route, a parameter or a model shows here first; when it is meant, record the new document:
`python -c "from tests.functions.test_openapi import record; record()"`.
"""

from __future__ import annotations

import json
from pathlib import Path

from functions.app import create_app
from videoapi.settings import Settings

RECORDED = Path(__file__).with_name("openapi.json")


def _document() -> str:
    return json.dumps(create_app(Settings()).openapi(), indent=1, sort_keys=True) + "\n"


def record() -> None:
    """Write the current document as the recorded one."""
    RECORDED.write_text(_document())


def test_openapi_document_is_the_recorded_one():
    assert json.loads(_document()) == json.loads(RECORDED.read_text())
    assert "/v1/jobs" in json.loads(RECORDED.read_text())["paths"]
