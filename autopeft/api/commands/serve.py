"""``autopeft serve``: the study server (FastAPI on uvicorn) over SQLite or PostgreSQL."""

from __future__ import annotations

import argparse
import os
import signal


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the study server (REST API, dashboard, background proposals)")
    p.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="database: postgresql://user@host/db or a SQLite file (default: $AUTOPEFT_DATABASE_URL, else ./autopeft.db)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--workers", type=int, default=1, help="server processes (default: 1; 2-4 with PostgreSQL for many workers)"
    )
    p.add_argument(
        "--proposer",
        choices=["process", "thread", "off"],
        default="process",
        help="where proposals are made: a process of their own (default), a thread of each server process, or "
        "nowhere (another server proposes)",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None, help="default: info")
    p.set_defaults(run=run, extras=("server",))


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from autopeft.api import startup
    from autopeft.api.lifeline import SERVE_PID_ENV
    from autopeft.api.settings import Settings
    from autopeft.errors import AutoPeftError
    from autopeft.migrations.engine import DATABASE_URL_ENV, normalize_url

    if args.workers < 1 or not 0 < args.port < 65536:
        raise AutoPeftError(f"--workers must be >= 1 and --port in 1..65535 (got {args.workers}, {args.port})")
    if args.db:
        os.environ[DATABASE_URL_ENV] = normalize_url(args.db)
    if args.log_level:
        os.environ["AUTOPEFT_LOG_LEVEL"] = args.log_level.upper()
    settings = Settings()
    startup.start_logging(settings)
    engine = startup.open_engine(settings)
    try:
        revision = startup.migrate(engine)  # once here, so that several server processes start on a ready schema
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    print(f"autopeft server on http://{args.host}:{args.port} (database {url} at revision {revision})", flush=True)
    os.environ["AUTOPEFT_PROPOSER_ENABLED"] = "1" if args.proposer == "thread" else "0"
    os.environ[SERVE_PID_ENV] = str(os.getpid())  # uvicorn's worker processes die with this one (api.lifeline)
    _exit_on_signals()
    proposer = None
    try:
        proposer = _start_proposer_process() if args.proposer == "process" else None
        uvicorn.run(
            "autopeft.api.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if proposer is not None:
            _stop(proposer)
    return 0


def _exit_on_signals() -> None:
    """SIGTERM ends the server through its ``finally`` (which stops the proposer process), as SIGINT
    does (KeyboardInterrupt).

    uvicorn handles both while it serves, shuts down, restores the previous handlers and raises
    the signal again: with Python's default SIGTERM action the process would end right there,
    before any ``finally`` ran, and leave its proposer process behind.
    """

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def _start_proposer_process():  # type: ignore[no-untyped-def]
    """The proposer and lease sweeper in a process of their own (it reads the same AUTOPEFT_* settings).

    It ends with this process however this one ends (:func:`api.lifeline.die_with_parent`)."""
    import multiprocessing

    from autopeft.api.proposer import run_process

    context = multiprocessing.get_context("spawn")
    process = context.Process(target=run_process, args=(os.getpid(),), name="autopeft-proposer", daemon=True)
    process.start()
    return process


def _stop(process, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
    process.terminate()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(5)
