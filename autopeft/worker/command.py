"""``autopeft worker``: pull trials from a server and train them on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="train trials from a study server until stopped")
    p.add_argument("--server", default=None, metavar="URL", help="the server, e.g. http://10.0.0.5:8000")
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
        help="a folder task data may be read from (repeatable; also $AUTOPEFT_DATA_DIR; default: ./data/glue). "
        "Studies' tasks are looked for there; nothing outside is read",
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
        "--exit-when-idle",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds without work (a server that does not answer counts as no work)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--check",
        action="store_true",
        help="only check that every PEFT family trains a step on this machine (exit 0) or not (exit 2)",
    )
    p.add_argument("--skip-check", action="store_true", help="start without checking the families first")
    p.set_defaults(run=run, extras=("worker",))


def self_check(
    model: str | None, families: list[str] | None, device: str, model_roots: Sequence[Path] | None = None
) -> None:
    """Train one step of each family on ``device``; raise, naming every family that fails.
    With ``model_roots`` (a worker's), a model outside them is refused before it is read."""
    from autopeft.encoder import resolve_model_dir
    from autopeft.errors import TrainingError
    from autopeft.train import resolve_device
    from autopeft.train.selfcheck import check_families

    model_dir = resolve_model_dir(model, model_roots)
    device = str(resolve_device(device))
    where = f"{model or 'the bundled MiniLM'} on {device}"
    checks = check_families(model_dir, families, device=device)
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = "; ".join(f"family {c.family!r} fails: {c.error}" for c in failed)
        raise TrainingError(f"self-check with {where}: {lines}")
    seconds = sum(c.seconds for c in checks)
    print(f"self-check: {len(checks)} families train a step with {where} ({seconds:.1f} s)", flush=True)


def _study_scope(client, study_id: int) -> tuple[str | None, list[str]]:
    """The model and the families a study's trials may use: its space's and its baselines'."""
    from autopeft.config import parse_config
    from autopeft.errors import AutoPeftError

    study = client.study(study_id)
    families = set(study["space"]["families"])
    for trial in client.trials(study_id, limit=1000):
        try:
            families.update(parse_config(trial["config"]).families())
        except AutoPeftError:  # a malformed baseline fails as a trial, not the worker
            continue
    return study.get("model"), sorted(families)


def run(args: argparse.Namespace) -> int:
    from autopeft.client import ServerClient
    from autopeft.errors import ConfigError
    from autopeft.roots import Roots
    from autopeft.worker import Worker

    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError(f"--max-trials must be at least 1, got {args.max_trials}")
    if args.poll <= 0:
        raise ConfigError(f"--poll must be positive, got {args.poll}")
    if args.check:
        self_check(None, None, args.device)
        return 0
    if args.server is None:
        raise ConfigError("--server URL is required (or --check to only check this machine)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    api_key = args.api_key if args.api_key is not None else os.environ.get("AUTOPEFT_API_KEY")
    client = ServerClient(args.server, api_key)
    if not args.skip_check:
        try:
            model, families = _study_scope(client, args.study) if args.study is not None else (None, None)
            self_check(model, families, args.device, Roots.of(args.data, args.models).models)
        except BaseException:
            client.close()
            raise
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
