"""The documentation's shape: a short README, and every page of the site reachable from mkdocs.yml's nav."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250


def _nav_pages(entries: Any) -> set[str]:
    """Every Markdown path named in a nav, at any depth (entries are paths, {title: path} or {title: [...]})."""
    if isinstance(entries, str):
        return {entries}
    if isinstance(entries, list):
        return set().union(*(_nav_pages(entry) for entry in entries))
    if isinstance(entries, dict):
        return set().union(*(_nav_pages(value) for value in entries.values()))
    return set()


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    docs = ROOT / config.get("docs_dir", "docs")
    pages = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    in_nav = _nav_pages(config["nav"])
    assert pages - in_nav == set(), "pages no one can reach from the nav"
    assert in_nav - pages == set(), "nav entries with no page"
