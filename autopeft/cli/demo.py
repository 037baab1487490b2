"""``autopeft demo``: the whole product in one command.

Starts a study server on a SQLite file, creates a study on RTE with the bundled MiniLM
and the ``autopeft`` space, runs one local worker (the GPU if there is one, otherwise
the CPU with a small budget and a time after which no trial starts: about ten minutes on two busy
cores, more under heavy load, as the trial running at the limit finishes), prints progress and
the Pareto front, and says where the dashboard is.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.cli._output import table
from autopeft.errors import AutoPeftError

if TYPE_CHECKING:
    from autopeft.client import ServerClient

#: Per-trial training on a CPU, sized so that the 8 trials of the demo take a few minutes on two
#: cores (measured: docs/demo.md). Too short for RTE to be learned well: it shows the loop.
CPU_TRAINING = {
    "max_steps": 30,
    "batch_size": 16,
    "max_length": 64,
    "learning_rate": 1e-3,
    "eval_every": 15,
    "max_search_examples": 128,
    "seed": 0,
}
#: On a CPU, no trial starts after this many minutes; the one running then finishes (README: what it took).
CPU_MINUTES = 7.0
GPU_TRAINING = {"epochs": 3, "batch_size": 32, "max_length": 128, "learning_rate": 1e-3, "seed": 0}
BASELINES = [
    {"label": "Pfeiffer adapter 64", "config": {"serial_adapter": {"size": 64}}},
    {"label": "LoRA r=8", "config": {"lora": {"rank": 8, "alpha": 16, "targets": ["query", "value"]}}},
]


#: What the demo's trials can use: the ``autopeft`` space's families and the baselines'.
DEMO_FAMILIES = ["serial_adapter", "parallel_adapter", "prefix", "lora"]
#: Where the demo looks for GLUE when neither ``--data`` nor ``$AUTOPEFT_DATA_DIR`` names a folder: the
#: library's default, then the folder this project's machines keep it in (README, docs/demo.md).
DEMO_DATA_DIRS = ("data/glue", "../shared/data/glue")
DATA_DEFAULT = "$AUTOPEFT_DATA_DIR, else ./data/glue or ../shared/data/glue"


class DemoError(AutoPeftError):
    """The demo could not start or finish."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="start a server, search PEFT configurations on RTE, show the Pareto front")
    p.add_argument("--data", default=None, metavar="DIR", help=f"GLUE folder holding RTE/ (default: {DATA_DEFAULT})")
    p.add_argument("--trials", type=int, default=None, help="study budget (default: 8 on CPU, 24 on a GPU)")
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (default: auto)")
    p.add_argument("--port", type=int, default=None, help="server port (default: 8000, or the next free one)")
    p.add_argument("--db", default="autopeft-demo.db", help="SQLite file of the demo (default: autopeft-demo.db)")
    p.add_argument("--training", default=None, metavar="JSON", help="override the per-trial training settings")
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help=f"start no trial after this many minutes, then show the front (default: {CPU_MINUTES:g} on CPU, none on a GPU)",
    )
    p.add_argument("--serve", action="store_true", help="keep the server (and dashboard) running at the end")
    p.set_defaults(run=run, extras=("worker", "server"))


def run(args: argparse.Namespace) -> int:
    from autopeft.client import ServerError
    from autopeft.errors import ConfigError
    from autopeft.inputs import load_json_arg
    from autopeft.train import resolve_device

    device = str(resolve_device(args.device))
    on_gpu = device.startswith("cuda")
    trials = args.trials if args.trials is not None else (24 if on_gpu else 8)
    if trials < 1:
        raise DemoError(f"--trials must be at least 1, got {trials}")
    minutes = args.minutes if args.minutes is not None else (None if on_gpu else CPU_MINUTES)
    if minutes is not None and not minutes > 0:
        raise DemoError(f"--minutes must be positive, got {args.minutes}")
    data_dir = demo_data_dir(args.data)  # fails here, with where it looked, if RTE is not found
    training = dict(GPU_TRAINING if on_gpu else CPU_TRAINING)
    if args.training:
        training.update(load_json_arg(args.training, "--training", ConfigError))
    from autopeft.worker.command import self_check

    self_check(None, DEMO_FAMILIES, device)  # a family this environment breaks stops the demo here, by name
    port = args.port or _free_port(8000)
    url = f"http://127.0.0.1:{port}"
    server, log_path = _start_server(args.db, port)
    print(f"server: {url} (database {args.db}, log {log_path})")
    print(f"dashboard: {url}/  (open it while the demo runs)")
    try:
        _run_study(args, url, server, log_path, device, on_gpu, trials, data_dir, training, minutes)
    except ServerError as err:
        raise DemoError(f"lost the demo server ({err}); see {log_path}") from None
    finally:
        _stop(server)
    return 0


def demo_data_dir(given: str | None) -> Path:
    """RTE's folder: under ``given`` (``--data``) or ``$AUTOPEFT_DATA_DIR`` when either is set, else under the
    first of :data:`DEMO_DATA_DIRS` that holds it."""
    from autopeft.errors import TaskError
    from autopeft.tasks.files import DATA_DIR_ENV, resolve_data_dir
    from autopeft.tasks.spec import resolve_task

    if given is not None or os.environ.get(DATA_DIR_ENV):
        return resolve_data_dir(resolve_task("rte", given))
    for base in DEMO_DATA_DIRS:
        try:
            return resolve_data_dir(resolve_task("rte", base))
        except TaskError:
            continue
    raise DemoError(
        f"no RTE data in {' or '.join(DEMO_DATA_DIRS)} (RTE/train.tsv): give the GLUE folder with --data DIR "
        f"or ${DATA_DIR_ENV}"
    )


def _run_study(
    args: argparse.Namespace,
    url: str,
    server: subprocess.Popen,
    log_path: Path,
    device: str,
    on_gpu: bool,
    trials: int,
    data_dir: Path,
    training: dict[str, Any],
    minutes: float | None,
) -> None:
    from autopeft.client import ServerClient

    _wait_healthy(url, server, log_path)
    with ServerClient(url, timeout=60) as api:
        study = _create_study(api, str(data_dir), trials, training)
        print(
            f"study {study['id']}: RTE, bundled MiniLM, space 'autopeft' (d={study.get('d')}), "
            f"{trials} trials on {device}"
        )
        if not on_gpu:
            print(
                f"no GPU: each trial trains {training.get('max_steps')} steps of {training.get('batch_size')} "
                "examples (a reduced CPU budget; on a GPU the demo trains 3 epochs a trial)"
            )
        if minutes is not None:
            print(f"no trial starts after {minutes:g} min (--minutes); the front is shown then")
        _work(api, study["id"], device, trials, data_dir, minutes)
        if api.call("GET", f"/studies/{study['id']}")["state"] == "running":
            api.call("POST", f"/studies/{study['id']}/stop")  # the time budget ended it (a resume would go on)
        _print_front(api, study["id"])
    print(f"\ndashboard: {url}/#/study/{study['id']}")
    if args.serve:
        print("serving the dashboard; press Ctrl-C to stop")
        server.wait()
    else:
        print(f"to browse the results later: autopeft serve --db {args.db}  (then open http://127.0.0.1:8000/)")


def _free_port(start: int) -> int:
    for port in range(start, start + 100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise DemoError(f"no free port in {start}..{start + 99}; pass --port")


def _start_server(db: str, port: int) -> tuple[subprocess.Popen, Path]:
    log_path = Path(db).with_suffix(".server.log")
    log = log_path.open("w")
    cmd = [sys.executable, "-m", "autopeft", "serve", "--db", db, "--port", str(port), "--log-level", "warning"]
    # A session of its own: Ctrl-C in the terminal reaches the demo, which stops the server itself.
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True
    )
    return proc, log_path


def _stop(server: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop the demo's server: SIGTERM (uvicorn shuts down cleanly), then SIGKILL."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _wait_healthy(url: str, server: subprocess.Popen, log_path: Path, timeout: float = 120.0) -> None:
    from autopeft.client import ServerClient, ServerError

    end = time.monotonic() + timeout
    with ServerClient(url, timeout=2) as probe:
        while time.monotonic() < end:
            if server.poll() is not None:
                tail = log_path.read_text()[-2000:]
                raise DemoError(f"the server exited (code {server.returncode}):\n{tail}")
            try:
                probe.call("GET", "/health")
                return
            except ServerError:
                time.sleep(0.3)
    raise DemoError(f"the server did not answer within {timeout:.0f} s; see {log_path}")


def _create_study(api: ServerClient, data_dir: str, trials: int, training: dict[str, Any]) -> dict[str, Any]:
    from autopeft.client import RequestRefused

    body = {
        "name": "demo: RTE with the bundled MiniLM",
        "task": {"name": "rte", "data_dir": data_dir},
        "model": None,
        "space": "autopeft",
        "optimizer": {"method": "gp", "n_initial": max(2, min(6, trials - len(BASELINES) - 2))},
        "max_trials": trials,
        "training": training,
        "seed": 0,
        "baselines": BASELINES[: max(0, min(len(BASELINES), trials - 1))],
    }
    try:
        created = api.call("POST", "/studies", body)
    except RequestRefused as err:
        raise DemoError(f"the server refused the demo study: {err}") from None
    return api.call("GET", f"/studies/{created['id']}")


def _work(api: ServerClient, study_id: int, device: str, trials: int, data_dir: Path, minutes: float | None) -> None:
    from autopeft.worker import Worker

    started = time.monotonic()
    worker = Worker(
        api,
        worker_id="demo-worker",
        study_id=study_id,
        data_roots=[str(data_dir)],  # the one folder the demo's study names
        device=device,
        max_trials=trials,
        poll=1.0,
        exit_when_idle=120.0,
        exit_when_paused=True,
        claim_until=None if minutes is None else started + 60 * minutes,
        progress=True,
        say=lambda line: print(f"[{time.monotonic() - started:6.0f} s] {line}", flush=True),
    )

    def on_signal(signum: int, _frame: object) -> None:
        if worker.stopping.is_set():  # a second signal: leave now (the server is still stopped)
            raise KeyboardInterrupt
        print(f"received {signal.Signals(signum).name}: stopping after giving the running trial back", flush=True)
        worker.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_front(api: ServerClient, study_id: int) -> None:
    study = api.call("GET", f"/studies/{study_id}")
    front = api.call("GET", f"/studies/{study_id}/pareto")
    from autopeft.config import parse_config

    rows = [
        [
            t["number"],
            t["label"] or t["source"],
            t["metric"],
            100 * t["param_fraction"],
            t["peft_params"],
            parse_config(t["config"]).summary(),
        ]
        for t in front["data"]
    ]
    counts = study["counts"]
    print(
        f"\nPareto front of study {study_id}: {counts['completed']} trials completed, {counts['failed']} failed, "
        f"hypervolume {front['hypervolume']:.3f}"
    )
    if study["state"] == "stopped":
        ran = counts["completed"] + counts["failed"]
        print(f"(the time limit ended the study after {ran} of its {study['max_trials']} trials; --minutes to change it)")
    if rows:
        print(table(rows, ["#", "source", "accuracy", "% params", "params", "configuration"], align="rlrrrl"))
    if study.get("failures"):
        _print_failures(study)


def _print_failures(study: dict[str, Any]) -> None:
    """Failures grouped by cause, and what to do about them."""
    from autopeft.cli.study import failure_table

    print()
    if study["state"] == "paused":
        print(f"the study paused itself: {study['pause_reason']}")
    print(failure_table(study["failures"]))
    print(
        "what to do: `autopeft worker --check` tells which PEFT family this environment breaks; reinstall from "
        "requirements.lock (README) if it names one. Full errors: `autopeft serve --db <the demo's db>`, then "
        f"`autopeft study trials {study['id']} --state failed --json`."
    )
