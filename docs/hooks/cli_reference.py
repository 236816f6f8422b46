"""MkDocs hook: the command line's reference, generated from the CLI itself (videoapi.cli's Typer app).

`<!-- videoapi:cli -->` becomes every command: its usage, its help, and a table of its arguments and options
with their types, defaults and help, as `videoapi COMMAND --help` prints them.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- videoapi:cli -->"


def _commands(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    """Every leaf command under `command`, with its words after `videoapi`, in the order the CLI lists them."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [(path, command)]
    found = []
    for name, sub in subcommands.items():
        found += _commands(sub, [*path, name])
    return found


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _parameter_row(parameter: Any, context: Any) -> str:
    """An argument or option as `--help` shows it: its name (and type), its help with default and range."""
    if parameter.param_type_name == "argument":
        name = parameter.name.upper() + ("..." if parameter.nargs != 1 else "")
        help_text = "; ".join(t for t in (parameter.help, "required" if parameter.required else "") if t)
        return f"| `{name}` | {_cell(help_text)} |"
    record = parameter.get_help_record(context)
    name, help_text = record if record else ("/".join(parameter.opts), parameter.help or "")
    return f"| `{_cell(name)}` | {_cell(help_text)} |"


def reference() -> str:
    """Every command: a heading, its usage line, its help, its parameters."""
    import typer

    from videoapi.cli import app

    root = typer.main.get_command(app)
    lines = []
    for words, command in _commands(root, []):
        context = command.context_class(command, info_name=" ".join(["videoapi", *words]))
        usage = " ".join(command.collect_usage_pieces(context)).replace("{", "").replace("}", "").upper()
        lines += [f"### `videoapi {' '.join(words)}`", "", "```", f"videoapi {' '.join(words)} {usage}", "```", ""]
        if command.help:
            lines += [command.help.strip(), ""]
        shown = [p for p in command.params if p.name != "help" and not getattr(p, "hidden", False)]
        if shown:
            lines += ["| parameter | help |", "| --- | --- |"]
            lines += [_parameter_row(p, context) for p in shown] + [""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
