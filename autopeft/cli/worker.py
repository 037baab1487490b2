"""``autopeft worker``: pull trials from a server and train them on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="train trials from a study server until stopped")
    p.add_argument("--server", required=True, metavar="URL", help="the server, e.g. http://10.0.0.5:8000")
    p.add_argument("--api-key", default=None, help="the server's API key (default: $AUTOPEFT_API_KEY)")
    p.add_argument("--study", type=int, default=None, metavar="ID", help="only work on this study, and stop when it is finished")
    p.add_argument("--device", default="auto", help="cuda:0, cuda:1, cpu, or auto (default: auto)")
    p.add_argument("--max-trials", type=int, default=None, metavar="N", help="stop after N trials")
    p.add_argument("--poll", type=float, default=5.0, metavar="S", help="longest wait between claims when idle")
    p.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="DIR",
        help="a folder task data may be read from (repeatable; also $AUTOPEFT_DATA_DIR; default: ./data/glue and "
        "../shared/data/glue). Studies' tasks are looked for there; nothing outside is read",
    )
    p.add_argument(
        "--models",
        action="append",
        default=None,
        metavar="DIR",
        help="a folder models may be read from (repeatable; default: the bundled model and the --data folders)",
    )
    p.add_argument("--worker-id", default=None, help="name shown on the server (default: host-pid)")
    p.add_argument(
        "--exit-when-idle", type=float, default=None, metavar="S", help="stop after S seconds without work"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from autopeft.errors import ConfigError
    from worker import ServerClient, Worker

    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError(f"--max-trials must be at least 1, got {args.max_trials}")
    if args.poll <= 0:
        raise ConfigError(f"--poll must be positive, got {args.poll}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    api_key = args.api_key if args.api_key is not None else os.environ.get("AUTOPEFT_API_KEY")
    client = ServerClient(args.server, api_key)
    worker = Worker(
        client,
        worker_id=args.worker_id,
        study_id=args.study,
        device=args.device,
        max_trials=args.max_trials,
        poll=args.poll,
        data_roots=args.data,
        model_roots=args.models,
        exit_when_idle=args.exit_when_idle,
        progress=not args.no_progress,
        say=lambda line: print(line, flush=True),
    )

    def on_signal(signum: int, _frame: object) -> None:
        if worker.stopping.is_set():  # a second signal: leave now
            raise KeyboardInterrupt
        print(f"received {signal.Signals(signum).name}: giving the running trial back and stopping", flush=True)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        worker.run()
    finally:
        client.close()
    return 0
