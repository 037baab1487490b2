"""``GET /api/v1/health``: open without an API key, for load balancers and `docker compose`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from autopeft._version import __version__
from autopeft.api.deps import ServiceDep, blocking

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Whether the server and its database answer",
    responses={200: {"description": "Up"}, 503: {"description": "The database does not answer"}},
)
async def health(service: ServiceDep) -> JSONResponse:
    ok = await blocking(service.storage.ping)
    body = {"status": "ok" if ok else "degraded", "version": __version__, "database": "ok" if ok else "unavailable"}
    return JSONResponse(body, status_code=200 if ok else 503)
