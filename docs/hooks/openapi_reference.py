"""MkDocs hook: the HTTP API's reference, generated from the FastAPI app's own OpenAPI document.

`<!-- videoapi:openapi -->` becomes every operation (parameters, request body, responses with their headers)
and every schema; the document itself is added to the site as `openapi.json`, to download or to feed a client
generator. The app is built as tests/functions/test_openapi.py builds it (`create_app(Settings())`), so the page
is always the API the code serves; that test keeps tests/functions/openapi.json, the recorded copy, the same.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

MARKER = "<!-- videoapi:openapi -->"
DOWNLOAD = "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch")


@cache
def document() -> dict[str, Any]:
    """The API's OpenAPI document, from the app as the code builds it (nothing is connected to)."""
    from functions.app import create_app
    from videoapi.settings import Settings

    return create_app(Settings()).openapi()


def _anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _type(schema: dict[str, Any]) -> str:
    """A schema as a short phrase: a linked model name, a type with its bounds, choices, alternatives."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#{_anchor(name)})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type(option) for option in schema[key])
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        text = f"array of {_type(schema.get('items', {}))}"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"object of {_type(schema['additionalProperties'])}"
    else:
        text = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}.get(kind, kind)
    if schema.get("format") == "binary":
        text = "file"
    bounds = {
        "minimum": "≥",
        "exclusiveMinimum": ">",
        "maximum": "≤",
        "exclusiveMaximum": "<",
        "minLength": "length ≥",
        "maxLength": "length ≤",
    }
    text += "".join(f", {sign} {schema[key]}" for key, sign in bounds.items() if key in schema)
    return text


def _default(schema: dict[str, Any]) -> str:
    return f"`{json.dumps(schema['default'])}`" if "default" in schema else ""


def _parameters(operation: dict[str, Any]) -> list[str]:
    parameters = operation.get("parameters", [])
    if not parameters:
        return []
    rows = ["**Parameters**", "", "| name | in | type | required | default | description |"]
    rows.append("| --- | --- | --- | --- | --- | --- |")
    for p in parameters:
        schema = p.get("schema", {})
        description = p.get("description") or schema.get("description", "")
        required = "yes" if p.get("required") else ""
        rows.append(
            f"| `{p['name']}` | {p['in']} | {_type(schema)} | {required} | {_default(schema)} | {_cell(description)} |"
        )
    return rows + [""]


def _body(operation: dict[str, Any]) -> list[str]:
    body = operation.get("requestBody")
    if not body:
        return []
    kinds = [f"`{media}`: {_type(content.get('schema', {}))}" for media, content in body.get("content", {}).items()]
    required = " (required)" if body.get("required") else ""
    return [f"**Request body**{required}: " + "; ".join(kinds), ""]


def _responses(operation: dict[str, Any]) -> list[str]:
    rows = ["**Responses**", "", "| status | description | body | headers |", "| --- | --- | --- | --- |"]
    for status, response in sorted(operation.get("responses", {}).items()):
        content = response.get("content", {})
        bodies = "; ".join(
            f"`{media}`" + (f" {_type(c['schema'])}" if c.get("schema") else "") for media, c in content.items()
        )
        headers = ", ".join(f"`{name}`" for name in response.get("headers", {}))
        rows.append(f"| {status} | {_cell(response.get('description', ''))} | {bodies} | {headers} |")
    return rows + [""]


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    anchor = re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")
    lines = [f"### `{method.upper()} {path}` {{#{anchor}}}", ""]
    if operation.get("summary"):
        lines += [f"{operation['summary']}.".replace("..", "."), ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    return lines + _parameters(operation) + _body(operation) + _responses(operation)


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### `{name}` {{#{_anchor(name)}}}", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    properties = schema.get("properties", {})
    if not properties:
        return lines + [f"{_type(schema)}.", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | default | description |", "| --- | --- | --- | --- | --- |"]
    for field, spec in properties.items():
        lines.append(
            f"| `{field}` | {_type(spec)} | {'yes' if field in required else ''} | {_default(spec)} "
            f"| {_cell(spec.get('description', ''))} |"
        )
    return lines + [""]


def reference() -> str:
    """Every operation, grouped by tag in the document's order, then every schema."""
    doc = document()
    by_tag: dict[str, list[str]] = {}
    for path, item in doc["paths"].items():
        for method in (m for m in METHODS if m in item):
            operation = item[method]
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).extend(_operation(method, path, operation))
    lines = [f"OpenAPI {doc['openapi']}, API version {doc['info']['version']}.", ""]
    for tag, operations in by_tag.items():
        lines += [f"## {tag.capitalize()}", ""] + operations
    lines += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        lines += _schema(name, schema)
    return "\n".join(lines)


def on_files(files: Any, config: Any) -> Any:
    """Add the document to the site (and to the files links are checked against)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, DOWNLOAD, content=json.dumps(document(), indent=1, sort_keys=True) + "\n"))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
