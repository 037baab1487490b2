"""Dependencies of the routes: the service, the settings, the API key check, and the blocking-call helper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from autopeft.api.middleware import bearer_problem
from autopeft.api.service import Service
from autopeft.api.settings import Settings

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="The server's AUTOPEFT_API_KEY, when it has one.")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_service(request: Request) -> Service:
    return request.app.state.service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[Service, Depends(get_service)]


async def require_api_key(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """401 unless the request carries ``Authorization: Bearer <AUTOPEFT_API_KEY>`` (when a key is set).

    :class:`autopeft.api.middleware.ApiKeyMiddleware` checks the same before routing (so that no body is
    parsed for a request without the key); this dependency puts the scheme in the OpenAPI schema.
    """
    header = f"{credentials.scheme} {credentials.credentials}" if credentials is not None else None
    problem = bearer_problem(settings.key, header)
    if problem is not None:
        raise HTTPException(401, problem, headers={"WWW-Authenticate": "Bearer"})


Authorized = [Depends(require_api_key)]


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call (database, optimiser) on the worker threads, off the event loop."""
    return await run_in_threadpool(fn, *args)
