"""The start-up steps of a server process, written once.

Three kinds of process start a server's parts: the app (the lifespan of
:func:`autopeft.api.main.create_app`, in each uvicorn process), the proposer process
(:func:`autopeft.api.proposer.run_process`) and ``autopeft serve`` itself, which brings the schema up
to date once before it starts the others. Each takes its steps from here: logs in the
configured format, torch held to a few threads (the proposer's GP must not take every core
from the request threads), an engine from the settings, the schema migrated, and
transformers imported ahead of the first study.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from autopeft.api.logs import configure_logging
from autopeft.api.settings import Settings
from autopeft.migrations.engine import make_engine

log = logging.getLogger("autopeft.api")


def start_logging(settings: Settings) -> None:
    """Logs of this process in the settings' level and format."""
    configure_logging(settings.log_level, settings.log_format)


def start_process(settings: Settings) -> None:
    """What a process that serves requests or proposes needs first: its logs and torch's thread limit."""
    start_logging(settings)
    limit_torch_threads(settings.torch_threads)


def limit_torch_threads(n: int) -> None:
    """The proposer's GP must not take every core from the request threads."""
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already set, or parallel work already ran in this process
        pass


def open_engine(settings: Settings, *, pool_size: int | None = None, max_overflow: int | None = None) -> Engine:
    """An engine on the settings' database; the pool as the settings say unless given."""
    return make_engine(
        settings.database_url,
        pool_size=settings.pool_size if pool_size is None else pool_size,
        max_overflow=settings.max_overflow if max_overflow is None else max_overflow,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )


def migrate(engine: Engine) -> str | None:
    """Bring the schema up to date (several processes may do this at once); returns the revision."""
    from autopeft.migrations import upgrade

    return upgrade(engine)


def warm_up() -> None:
    """Import transformers and build the bundled model's shape now, not in the first study request."""
    from autopeft.api.study_spec import read_model_config, shape_from_hf_config

    try:
        shape_from_hf_config(read_model_config(None, None)[0], 2)
    except Exception:  # only a warm-up: the first study will report the real error
        log.debug("warm-up failed", exc_info=True)
