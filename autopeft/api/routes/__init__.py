"""One router per resource, gathered here under ``/api/v1`` (the dashboard lives at ``/``)."""

from __future__ import annotations

from fastapi import APIRouter

from autopeft.api.routes import dashboard, health, studies, trials

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(health.router)
api_router.include_router(studies.router)
api_router.include_router(trials.router)

__all__ = ["api_router", "dashboard"]
