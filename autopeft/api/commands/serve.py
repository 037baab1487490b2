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
    p.add_argument(
        "--models",
        metavar="DIR",
        action="append",
        default=None,
        help="a folder the server reads model configs under (repeatable; also $AUTOPEFT_MODEL_ROOTS); the bundled "
        "model is always readable. A study naming a model elsewhere must send its config.json as model_config",
    )
    p.add_argument(
        "--allowed-hosts",
        metavar="HOST[,HOST]",
        action="append",
        default=None,
        help="Host header values to answer besides localhost, 127.0.0.1 and the bind address (for 0.0.0.0: this "
        "machine's names too); repeatable or comma-separated; '*' answers any (behind a proxy that checks them)",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None, help="default: info")
    p.set_defaults(run=run, extras=("server",))


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from autopeft.api import startup
    from autopeft.api.lifeline import SERVE_PID_ENV
    from autopeft.api.connections import PROTOCOL
    from autopeft.api.settings import LOOPBACK_HOSTS, Settings
    from autopeft.errors import AutoPeftError
    from autopeft.migrations.engine import DATABASE_URL_ENV, normalize_url

    if args.workers < 1 or not 0 < args.port < 65536:
        raise AutoPeftError(f"--workers must be >= 1 and --port in 1..65535 (got {args.workers}, {args.port})")
    if args.db:
        os.environ[DATABASE_URL_ENV] = normalize_url(args.db)
    if args.log_level:
        os.environ["AUTOPEFT_LOG_LEVEL"] = args.log_level.upper()
    _set_model_roots(args.models or [])
    _set_allowed_hosts(args.host, args.allowed_hosts or [])
    settings = Settings()
    startup.start_logging(settings)
    engine = startup.open_engine(settings)
    try:
        revision = startup.migrate(engine)  # once here, so that several server processes start on a ready schema
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    print(f"autopeft server on http://{args.host}:{args.port} (database {url} at revision {revision})", flush=True)
    print(
        f"reads model configs under {', '.join(map(str, settings.model_folders))}; answers to hosts "
        f"{', '.join(dict.fromkeys([*LOOPBACK_HOSTS, *settings.allowed_hosts]))}",
        flush=True,
    )
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
            http=PROTOCOL,  # a header-read timeout and a connection cap (autopeft.api.connections)
        )
    finally:
        if proposer is not None:
            _stop(proposer)
    return 0


def _set_model_roots(given: list[str]) -> None:
    """``--models`` for every process of the server ($AUTOPEFT_MODEL_ROOTS, added to what it held)."""
    from autopeft.errors import AutoPeftError

    for folder in given:
        if not os.path.isdir(folder):
            raise AutoPeftError(f"--models {folder!r} is not a folder")
    held = [p for p in os.environ.get("AUTOPEFT_MODEL_ROOTS", "").split(os.pathsep) if p]
    roots = [*held, *(os.path.realpath(os.path.expanduser(f)) for f in given)]
    if roots:
        os.environ["AUTOPEFT_MODEL_ROOTS"] = os.pathsep.join(dict.fromkeys(roots))


def _set_allowed_hosts(bind: str, given: list[str]) -> None:
    """``--allowed-hosts`` and the bind address's names for every process ($AUTOPEFT_ALLOWED_HOSTS, added to)."""
    held = [h.strip() for h in os.environ.get("AUTOPEFT_ALLOWED_HOSTS", "").split(",") if h.strip()]
    flagged = [h.strip() for value in given for h in value.split(",") if h.strip()]
    os.environ["AUTOPEFT_ALLOWED_HOSTS"] = ",".join(dict.fromkeys([*held, *bind_names(bind), *flagged]))


def bind_names(bind: str) -> list[str]:
    """The Host names a server bound to ``bind`` is reached by: that address; for all addresses (0.0.0.0,
    ::) also this machine's host name, its full name and their addresses."""
    import socket

    if bind not in ("0.0.0.0", "::", ""):
        return [bind]
    names = [bind, socket.gethostname(), socket.getfqdn()]
    addresses = []
    for name in names:
        try:
            addresses += [info[4][0] for info in socket.getaddrinfo(name, None)]
        except OSError:  # a host name that does not resolve: its name still counts
            continue
    return list(dict.fromkeys(n for n in [*names, *addresses] if n))


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

    It ends with this process however this one ends (:func:`autopeft.api.lifeline.die_with_parent`)."""
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
