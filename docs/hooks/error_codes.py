"""MkDocs hook: the error codes page, generated from videoapi.errors' family and the code that raises it.

`<!-- videoapi:error-family -->` becomes a table of the family's classes (code, retried or not, HTTP status,
docstring); `<!-- videoapi:error-codes -->` the codes the source raises, found by reading it (ast): each call of
a family class with a literal code (or a module constant), the API's `error_response(STATUS, CODE, ...)`, a
job store's `fail(job_id, CODE, ...)` and the Rekognition router's `_error(CODE, ...)`, with where it is raised
and its message (an f-string's values shown as "…"). Nothing here is typed by hand but the groups' names.
"""

from __future__ import annotations

import ast
import inspect
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("videoapi", "functions", "workers", "local")
FAMILY_MARKER = "<!-- videoapi:error-family -->"
CODES_MARKER = "<!-- videoapi:error-codes -->"


@dataclass
class Raised:
    """One code as the source raises it: the classes (or calls) that carry it, statuses, messages, where."""

    code: str
    kinds: set[str] = field(default_factory=set)
    statuses: set[str] = field(default_factory=set)
    transient: set[bool] = field(default_factory=set)
    messages: list[str] = field(default_factory=list)
    places: set[str] = field(default_factory=set)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


class _Constants:
    """Module-level string constants (`NAME = "text"`), followed through `from module import NAME`."""

    def __init__(self, trees: dict[str, ast.Module]):
        self.trees = trees
        self._cache: dict[str, dict[str, str]] = {}

    def of(self, module: str) -> dict[str, str]:
        if module in self._cache:
            return self._cache[module]
        found: dict[str, str] = {}
        self._cache[module] = found
        tree = self.trees.get(module)
        for node in tree.body if tree else []:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
            elif isinstance(node, ast.ImportFrom) and node.module in self.trees:
                imported = self.of(node.module)
                found.update({a.asname or a.name: imported[a.name] for a in node.names if a.name in imported})
        return found


def _strings(node: ast.expr | None, constants: dict[str, str]) -> list[str]:
    """The string values an expression can have when they are written in the source (else none)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body, constants) + _strings(node.orelse, constants)
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    return []


def _message(node: ast.expr | None, constants: dict[str, str]) -> str:
    """A message as a reader sees it: literal text, with "…" where a value is formatted in."""
    if node is None:
        return ""
    if isinstance(node, ast.JoinedStr):
        return "".join(str(part.value) if isinstance(part, ast.Constant) else "…" for part in node.values).strip()
    values = _strings(node, constants)
    return values[0] if values else "…"


def _argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    if len(call.args) > position and not isinstance(call.args[position], ast.Starred):
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def family() -> list[type[Any]]:
    """Every class of the error family, in the order videoapi/errors.py defines them."""
    from videoapi import errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.VideoapiError)]
    order = {c.__name__: inspect.getsourcelines(c)[1] for c in classes}
    return sorted((c for c in classes if c.__module__ == errors.__name__), key=lambda c: order[c.__name__])


def _takes_code(cls: type[Any]) -> bool:
    """Whether the class is raised with a code (else its code is the class's own)."""
    parameters = list(inspect.signature(cls.__init__).parameters)
    return len(parameters) > 1 and parameters[1] == "code"


def _http_status(cls: type[Any]) -> str:
    from functions.errors import STATUS, status_of
    from videoapi.errors import ApiError, Refusal

    if issubclass(cls, Refusal):
        return "429"  # the domain's refusal, answered as TooManyRequests (videoapi/domain/submission.py)
    if issubclass(cls, ApiError) or any(kind in STATUS for kind in cls.__mro__):
        return str(status_of(cls.__new__(cls)))
    return ""


def _first_line(cls: type[Any]) -> str:
    return (inspect.getdoc(cls) or "").splitlines()[0]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def family_table() -> str:
    """The family's classes: name, fixed code, retried or not, HTTP status where the API answers it, what."""
    rows = ["| class | code | retried | HTTP status | what |", "| --- | --- | --- | --- | --- |"]
    for cls in (c for c in family() if not c.__name__.startswith("_")):
        code = "(given)" if _takes_code(cls) else f"`{cls.code}`"
        transient = "yes" if cls.transient else ""
        rows.append(f"| `{cls.__name__}` | {code} | {transient} | {_http_status(cls)} | {_cell(_first_line(cls))} |")
    return "\n".join(rows)


# where a code raised outside the API's refusals and Rekognition's protocol shows: the calling process
_IN_PROCESS = ("videoapi.cli", "videoapi.client", "videoapi.model", "videoapi.pipeline.engine", "local")
# the request side: the API and the domain services it calls, but for those the workers run
_REQUEST_SIDE = ("functions", "videoapi.domain")
_WORKER_SIDE = ("videoapi.domain.leases", "videoapi.domain.callbacks")


def _group(cls: type[Any], module: str) -> str:
    """Which table a code raised by `cls` in `module` belongs to."""
    from videoapi.errors import ApiError, AwsError, Refusal

    if issubclass(cls, AwsError):
        return "aws"
    if issubclass(cls, ApiError | Refusal):
        return "request"
    if module.startswith(_IN_PROCESS):
        return "other"
    if module.startswith(_REQUEST_SIDE) and module not in _WORKER_SIDE:
        return "request"
    return "job"


def raised_codes() -> dict[str, dict[str, Raised]]:
    """Every code the source raises, grouped: refusals, job failures, Rekognition's protocol, the rest."""
    from functions.errors import AWS_STATUS

    classes = {c.__name__: c for c in family()}
    paths = sorted(p for source in SOURCES for p in (ROOT / source).rglob("*.py"))
    trees = {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in paths}
    constants = _Constants(trees)
    groups: dict[str, dict[str, Raised]] = defaultdict(dict)

    def add(group: str, code: str, kind: str, status: str, message: str, module: str, transient: bool = False) -> None:
        entry = groups[group].setdefault(code, Raised(code))
        entry.kinds.add(kind)
        entry.statuses |= {status} - {""}
        entry.transient.add(transient)
        if message and message != "…" and message not in entry.messages:
            entry.messages.append(message)
        entry.places.add(module)

    for module, tree in trees.items():
        names = constants.of(module)
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            called = _called_name(call)
            if called in classes and module != "videoapi.errors":
                cls = classes[called]
                given = _takes_code(cls)
                codes = _strings(_argument(call, 0, "code"), names) if given else [cls.code]
                message = _message(_argument(call, 1 if given else 0, "message"), names)
                said = _argument(call, 2, "transient")
                transient = said.value is True if isinstance(said, ast.Constant) else cls.transient
                for code in codes:
                    add(_group(cls, module), code, called, _http_status(cls), message, module, transient)
            elif called == "error_response" and module.startswith("functions"):
                status, message = _argument(call, 0, "status"), _message(_argument(call, 2, "message"), names)
                shown = str(status.value) if isinstance(status, ast.Constant) else ""
                for code in _strings(_argument(call, 1, "code"), names):
                    add("request", code, "error_response", shown, message, module)
            elif called == "fail" and isinstance(call.func, ast.Attribute) and len(call.args) >= 2:
                for code in _strings(call.args[1], names):
                    add("job", code, "JobStore.fail", "", _message(_argument(call, 2, "message"), names), module)
            elif called == "_error" and module == "functions.routers.rekognition":
                status, message = _argument(call, 2, "status"), _message(_argument(call, 1, "message"), names)
                shown = str(status.value) if isinstance(status, ast.Constant) else "400"
                for code in _strings(_argument(call, 0, "code"), names):
                    add("aws", code.split("#")[-1], "_error", shown, message, module)
        if module == "videoapi.domain.rekognition_api":  # our codes and what Rekognition answers in their place
            for mapping in (n for n in ast.walk(tree) if isinstance(n, ast.Dict)):
                for key, value in zip(mapping.keys, mapping.values):
                    ours = _strings(key, names)
                    if ours and isinstance(value, ast.Tuple) and (theirs := _strings(value.elts[0], names)):
                        add("aws", theirs[0], "as_aws_error", "", f"in place of our `{ours[0]}`", module)
    for entry in groups["aws"].values():  # AWS answers 400 for every error of these operations but a few
        entry.statuses.add(str(AWS_STATUS.get(entry.code, 400)))
    return groups


# each table: its title, what its codes are, and its columns beside code, message and place
GROUPS = {
    "request": (
        "Refusals of a request (the HTTP API)",
        'The body is `{"error": {"code", "message", "field"?}}`; the status is the class\'s (`functions/errors.py`).',
        "status",
    ),
    "job": (
        "A failed job's `error.code`",
        "What `GET /v1/jobs/{id}` shows as `error.code` (and Rekognition's protocol as `StatusMessage`). A "
        "retried error fails the job only once the retry budget is spent (`VIDEOAPI_TASK_MAX_RETRIES`).",
        "retried",
    ),
    "aws": (
        "Rekognition's protocol",
        'As botocore raises them: `ClientError`, `error.response["Error"]["Code"]`.',
        "status",
    ),
    "other": ("The engine, the CLI and the model build", "Raised in the calling process, never a job's code.", ""),
}


def _retried(entry: Raised) -> str:
    return {frozenset({True}): "yes", frozenset({False}): ""}.get(frozenset(entry.transient), "sometimes")


def codes_tables() -> str:
    """One table per group: code, status or retried, the class or call that raises it, a message, where."""
    groups = raised_codes()
    parts = []
    for group, (title, intro, column) in GROUPS.items():
        entries = sorted(groups.get(group, {}).values(), key=lambda r: r.code.lower())
        if not entries:
            continue
        heading = "| code |" + (f" {column} |" if column else "") + " raised as | message | in |"
        parts += [f"### {title}", "", intro, "", heading, "| --- " * (heading.count("|") - 1) + "|"]
        for r in entries:
            extra = {"status": ", ".join(sorted(r.statuses)), "retried": _retried(r), "": None}[column]
            cells = [f"`{r.code}`"] + ([extra] if extra is not None else [])
            cells += [", ".join(f"`{k}`" for k in sorted(r.kinds)), _cell("; ".join(r.messages[:2]))]
            cells.append(", ".join(f"`{p}`" for p in sorted(r.places)))
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if FAMILY_MARKER in markdown:
        markdown = markdown.replace(FAMILY_MARKER, family_table())
    if CODES_MARKER in markdown:
        markdown = markdown.replace(CODES_MARKER, codes_tables())
    return markdown
