"""The result viewer: one static page (HTML, JS, CSS from this package; no CDN, no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from videoapi.errors import NotFound

WEB = Path(__file__).resolve().parent.parent / "web"
_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}

router = APIRouter(tags=["web"], include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/")
@router.get("/ui/{name}")
def page(name: str = "index.html") -> FileResponse:
    if name not in _FILES:
        raise NotFound("not_found", f"no page {name!r}")
    return FileResponse(WEB / name, media_type=_FILES[name], headers={"Cache-Control": "no-cache"})
