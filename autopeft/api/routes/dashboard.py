"""``GET /``: the dashboard, a static page (plain JS and SVG, no CDN) that reads the REST API.

The page itself is served without the API key so that a browser can open it; it asks
for the key and sends it with every API call, which stays protected.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/", response_class=FileResponse)
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", headers={"Cache-Control": "no-cache"})


def static_files() -> StaticFiles:
    """The page's script and style sheet, mounted at ``/static``."""
    return StaticFiles(directory=STATIC)
