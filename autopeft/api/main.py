"""The app factory: ``create_app(settings)``; ``uvicorn --factory api.main:create_app`` serves it.

On start the app takes the steps of :mod:`autopeft.api.startup` (logs, torch's threads, engine, schema
up to date) and starts the background proposer and lease sweeper; on shutdown it stops them.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from autopeft._version import __version__
from autopeft.api import handlers
from autopeft.api.deps import Authorized
from autopeft.api.middleware import AccessLogMiddleware, ApiKeyMiddleware, BodyLimitMiddleware, SiteGuardMiddleware
from autopeft.api.routes import api_router, dashboard
from autopeft.api.settings import LOOPBACK_HOSTS, Settings, get_settings

log = logging.getLogger("autopeft.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; nothing touches the database until it starts (lifespan)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="autopeft",
        version=__version__,
        summary="Searches the Pareto front of task quality vs trained parameters over PEFT configurations.",
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    handlers.install(app)
    app.include_router(api_router)
    app.include_router(dashboard.router)
    app.mount("/static", dashboard.static_files(), name="static")
    _add_docs(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, key=settings.key)  # outside the body limit: the key comes first
    app.add_middleware(SiteGuardMiddleware, allowed_hosts=[*LOOPBACK_HOSTS, *settings.allowed_hosts])  # before the key
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware)
    return app


def _add_docs(app: FastAPI) -> None:
    """/openapi.json and /docs, behind the API key like everything else."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=Authorized)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=Authorized)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="autopeft API")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    from anyio import to_thread

    from autopeft.api import startup
    from autopeft.api.lifeline import die_with_server
    from autopeft.api.proposer import Proposer
    from autopeft.api.service import Service
    from autopeft.api.storage import Storage
    from autopeft.api.study_spec import StudyContexts

    settings: Settings = app.state.settings
    die_with_server()  # a uvicorn worker process of `autopeft serve --workers N` ends with the server
    startup.start_process(settings)
    sys.setswitchinterval(settings.gil_switch_interval_s)
    to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
    engine = startup.open_engine(settings)
    if settings.migrate_on_start:
        revision = await to_thread.run_sync(startup.migrate, engine)
        log.info("schema up to date", extra={"revision": revision, "database": engine.url.render_as_string()})
    storage = Storage(engine)
    contexts = StudyContexts()
    proposer = Proposer(storage, contexts, settings) if settings.proposer_enabled else None
    app.state.service = Service(settings, storage, contexts, proposer)
    if proposer is not None:
        proposer.start()
    threading.Thread(target=startup.warm_up, name="autopeft-warm-up", daemon=True).start()
    log.info("server ready", extra={"version": __version__, "proposer": proposer is not None})
    try:
        yield
    finally:
        if proposer is not None:
            await to_thread.run_sync(proposer.stop)
        engine.dispose()
