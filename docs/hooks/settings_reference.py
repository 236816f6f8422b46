"""MkDocs hook: the settings table, generated from videoapi.settings.Settings' fields.

`<!-- videoapi:settings -->` becomes one table per group of fields (the comments in the class body name the
groups): the environment variable, the default, the accepted values and the field's description.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

MARKER = "<!-- videoapi:settings -->"


def _settings_class() -> type[Any]:
    from videoapi.settings import Settings

    return Settings


def _groups(cls: type[Any]) -> dict[str, str]:
    """Each field's group: the last `# comment` line above it in the class body."""
    group, groups = "", {}
    for line in inspect.getsource(cls).splitlines():
        if comment := re.fullmatch(r" {4}# (.+)", line):
            group = comment[1]
        elif field := re.match(r" {4}(\w+): ", line):
            groups[field[1]] = group
    return groups


def _size(value: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= scale and value % scale == 0:
            return f"{value // scale} {unit}"
    return f"{value} bytes"


def _duration(value: float) -> str:
    for unit, scale in (("h", 3600), ("min", 60)):
        if value >= scale and value % scale == 0:
            return f"{value / scale:g} {unit}"
    return f"{value:g} s"


def _default(name: str, info: Any) -> str:
    """The default as a reader would write it: paths from the project or home, sizes and durations readable."""
    from videoapi.settings import PROJECT_ROOT

    value = info.get_default(call_default_factory=True)
    if value is None or value == "":
        return "(none)" if value is None else "(empty)"
    if isinstance(value, Path):
        text = str(value).replace(str(PROJECT_ROOT), ".").replace(str(Path.home()), "~")
        return f"`{text}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float) and name.endswith("_bytes"):
        return f"`{value}` ({_size(int(value))})" if value >= 1024 else f"`{value}`"
    if isinstance(value, int | float) and name.endswith("_s") and value >= 60:
        return f"`{value:g}` ({_duration(value)})"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def _accepts(info: Any) -> str:
    """The values a field accepts: its choices, or its type and bounds."""
    annotation = info.annotation
    choices = getattr(annotation, "__args__", ())
    if getattr(annotation, "__origin__", None) is not None and str(annotation).startswith("typing.Literal"):
        return " \\| ".join(f"`{c}`" for c in choices)
    names = {bool: "true/false", int: "integer", float: "number", str: "text", Path: "path"}
    text = names.get(annotation) or re.sub(r"\b(typing|pathlib)\.", "", str(annotation)).replace(" | ", " or ")
    text = text.replace("Path", "path").replace("str", "text").replace("None", "none")
    bounds = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    for item in info.metadata:
        for attribute, sign in bounds.items():
            if (bound := getattr(item, attribute, None)) is not None:
                text += f", {sign} {bound:g}"
    if isinstance(info.get_default(call_default_factory=True), list | dict):
        text += " (JSON)"
    return text


def _variables(name: str, info: Any) -> str:
    alias = info.validation_alias
    names = list(getattr(alias, "choices", [])) or [f"VIDEOAPI_{name.upper()}"]
    return " or ".join(f"`{n}`" for n in names)


def settings_tables() -> str:
    """One table per group of fields: variable, default, accepted values, meaning."""
    cls = _settings_class()
    fields = cls.model_fields
    undescribed = [name for name, info in fields.items() if not info.description]
    if undescribed:  # the table is the settings' reference: every field says what it is, in videoapi/settings.py
        raise ValueError(f"videoapi.settings.Settings fields without a description: {undescribed}")
    by_group: dict[str, list[str]] = {}
    groups = _groups(cls)
    for name, info in fields.items():  # in the order the class declares them
        group = groups.get(name) or "Other settings"  # a field with no comment above it still gets its row
        meaning = info.description.replace("|", "\\|")
        row = f"| {_variables(name, info)} | {_default(name, info)} | {_accepts(info)} | {meaning} |"
        by_group.setdefault(group, []).append(row)
    parts = []
    for group, rows in by_group.items():
        parts += [f"### {group}", "", "| variable | default | accepts | meaning |", "| --- | --- | --- | --- |"]
        parts += rows + [""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, settings_tables()) if MARKER in markdown else markdown
