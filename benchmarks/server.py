"""Study server throughput: claim+complete cycles per second and latency, with many simulated workers.

A real server (``autopeft serve --workers N``: N uvicorn processes and a proposer
process) listens on 127.0.0.1 with PostgreSQL or SQLite behind it. Simulated workers claim a
trial and complete it at once (a zero-second trial), over keep-alive HTTP/1.1
connections: one connection and one coroutine per worker, spread over a few client
processes. Proposals come from the server's background proposer (``sobol`` unless
``--method gp``), so the figures include keeping the queue filled.

    python -m benchmarks.server                       # every figure; writes benchmarks/results/server.json
    python -m benchmarks.server --backends sqlite --levels 1 8 --seconds 5 --grow 0 --gp-seconds 0

Traffic goes to 127.0.0.1 only; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autopeft.api.lifeline import ends_with_this_process

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("AUTOPEFT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


# -- a small HTTP/1.1 client (cheap per request, so the figures are the server's) ----------------
class Connection:
    """One keep-alive connection to the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        assert self.writer is not None and self.reader is not None
        self.writer.write(head + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        payload = await self.reader.readexactly(length) if length else b""
        return status, headers, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _worker(
    name: str, port: int, study_id: int, shape: Any, t_end: float, t_measure: float, out: dict[str, Any]
) -> None:
    conn = Connection(port)
    await conn.open()
    try:
        while (now := time.perf_counter()) < t_end:
            status, headers, payload = await conn.post(
                "/api/v1/trials/claim", {"worker_id": name, "study_id": study_id}
            )
            t_claim = time.perf_counter()
            if status == 204:
                if headers.get("x-autopeft-idle") == "study done":
                    return
                out["empty"] += now >= t_measure
                await asyncio.sleep(0.05)
                continue
            if status != 200:
                out["errors"].append(f"claim {status}: {payload[:200]!r}")
                await asyncio.sleep(0.1)
                continue
            trial = json.loads(payload)
            report = {  # the server checks the counts against what the configuration trains
                "lease_token": trial["lease"]["token"],
                "metric": (trial["number"] % 97) / 97,
                **_counts(json.dumps(trial["config"], sort_keys=True), shape),
            }
            status, _, payload = await conn.post(f"/api/v1/trials/{trial['id']}/complete", report)
            t_done = time.perf_counter()
            if status != 200:
                out["errors"].append(f"complete {status}: {payload[:200]!r}")
                continue
            if now >= t_measure:
                out["claim_ms"].append((t_claim - now) * 1000)
                out["complete_ms"].append((t_done - t_claim) * 1000)
                out["cycle_ms"].append((t_done - now) * 1000)
                out["done"].append((t_done, trial["number"]))
    except (ConnectionError, OSError, asyncio.IncompleteReadError) as err:
        out["errors"].append(f"connection: {err}")
    finally:
        conn.close()


_COUNTS: dict[str, dict[str, Any]] = {}


def _counts(config: str, shape: Any) -> dict[str, Any]:
    """What a configuration trains on the study's model: the counts a worker reports (kept per configuration)."""
    from autopeft.accounting import estimate

    if config not in _COUNTS:
        count = estimate(json.loads(config), shape)
        _COUNTS[config] = {"peft_params": count.peft_params, "param_fraction": count.param_fraction}
    return _COUNTS[config]


def claim_loop(
    port: int, study_id: int, shape: Any, names: list[str], t_start: float, seconds: float, warmup: float
) -> dict[str, Any]:
    """Simulated workers ``names`` in this process from ``t_start`` (``time.perf_counter``) for ``warmup +
    seconds``: per-request records of the last ``seconds``."""
    out: dict[str, Any] = {"claim_ms": [], "complete_ms": [], "cycle_ms": [], "done": [], "errors": [], "empty": 0}
    _counts("{}", shape)  # the accounting's imports (seconds) before the clock starts

    async def run() -> None:
        delay = t_start - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t_measure, t_end = t_start + warmup, t_start + warmup + seconds
        await asyncio.gather(*(_worker(n, port, study_id, shape, t_end, t_measure, out) for n in names))

    asyncio.run(run())
    return out


def _client(
    port: int, study_id: int, shape: Any, names: list[str], t_start: float, seconds: float, warmup: float, q: Any
) -> None:
    q.put(claim_loop(port, study_id, shape, names, t_start, seconds, warmup))


def drive(port: int, study_id: int, workers: int, seconds: float, warmup: float, procs: int) -> dict[str, Any]:
    """Run ``workers`` simulated workers for ``warmup + seconds``; merged per-request records."""
    import httpx

    from autopeft.shape import model_shape

    study = httpx.get(f"http://127.0.0.1:{port}/api/v1/studies/{study_id}", timeout=60).json()
    shape = model_shape(study["model"])  # the bundled model's, as the benchmark's studies use
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    names = [f"bench-{secrets.token_hex(3)}-{i}" for i in range(workers)]
    groups = [names[i::procs] for i in range(min(procs, workers))]
    t_start = time.perf_counter() + 1.5  # let the client processes start
    ps = [ctx.Process(target=_client, args=(port, study_id, shape, g, t_start, seconds, warmup, q)) for g in groups]
    for p in ps:
        p.start()
    parts = [q.get(timeout=warmup + seconds + 120) for _ in ps]
    for p in ps:
        p.join(30)
    merged: dict[str, Any] = {k: [] for k in ("claim_ms", "complete_ms", "cycle_ms", "done", "errors")}
    merged["empty"] = 0
    for part in parts:
        for k in merged:
            merged[k] += part[k]
    return merged


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summarise(rec: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "cycles_per_s": round(len(rec["cycle_ms"]) / seconds, 1),
        "cycles": len(rec["cycle_ms"]),
        "claim_p50_ms": _pct(rec["claim_ms"], 0.5),
        "claim_p99_ms": _pct(rec["claim_ms"], 0.99),
        "complete_p50_ms": _pct(rec["complete_ms"], 0.5),
        "complete_p99_ms": _pct(rec["complete_ms"], 0.99),
        "cycle_p50_ms": _pct(rec["cycle_ms"], 0.5),
        "cycle_p99_ms": _pct(rec["cycle_ms"], 0.99),
        "empty_claims": rec["empty"],
        "errors": len(rec["errors"]),
        "first_errors": rec["errors"][:3],
    }


def growth(rec: dict[str, Any], bucket: int) -> list[dict[str, Any]]:
    """Throughput and p99 per ``bucket`` trials of the study's life (by trial number)."""
    rows = []
    done = sorted(zip(rec["done"], rec["cycle_ms"]), key=lambda r: r[0][0])
    for lo in range(0, max((n for (_, n), _ in done), default=0) + 1, bucket):
        part = [(t, ms) for (t, n), ms in done if lo <= n < lo + bucket]
        if len(part) < bucket // 2:
            continue
        span = part[-1][0] - part[0][0]
        rows.append(
            {
                "trials": f"{lo}-{lo + bucket - 1}",
                "cycles_per_s": round(len(part) / span, 1) if span else None,
                "cycle_p50_ms": _pct([m for _, m in part], 0.5),
                "cycle_p99_ms": _pct([m for _, m in part], 0.99),
            }
        )
    return rows


def stop_study(port: int, study_id: int) -> None:
    """Stop a measured study, so that its proposals do not compete with the next run's."""
    import httpx

    httpx.post(f"http://127.0.0.1:{port}/api/v1/studies/{study_id}/stop", timeout=60).raise_for_status()


def proposal_rounds(log_path: Path, study_id: int) -> dict[str, Any]:
    """What the proposer did for a study, from the server's log: rounds, batch sizes, seconds in propose()."""
    rounds = []
    for line in log_path.read_text().splitlines():
        if '"proposed"' in line:
            event = json.loads(line)
            if event.get("study_id") == study_id:
                rounds.append(event)
    if not rounds:
        return {"rounds": 0}
    seconds = sorted(r["propose_s"] for r in rounds)
    return {
        "rounds": len(rounds),
        "proposed": sum(r["queued"] for r in rounds),
        "mean_batch": round(sum(r["asked"] for r in rounds) / len(rounds), 1),
        "propose_s_mean": round(sum(seconds) / len(seconds), 3),
        "propose_s_max": round(seconds[-1], 3),
        "trials_at_last_round": rounds[-1]["trials"],
    }


# -- the server under test ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def database(backend: str):
    """A fresh database URL for one run, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="autopeft-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    import psycopg

    name = f"autopeft_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def server(db_url: str, processes: int):
    """``autopeft serve --workers N`` on a free port (N server processes and one proposer process)."""
    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "AUTOPEFT_DATABASE_URL": db_url,
        "AUTOPEFT_LOG_LEVEL": "INFO",
        "AUTOPEFT_ACCESS_LOG": "0",
        "AUTOPEFT_API_KEY": "",
    }
    cmd = [
        sys.executable,
        "-c",
        "import sys; from autopeft.cli import main; sys.exit(main())",
        "serve",
        "--db",
        db_url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(processes),
        "--log-level",
        env["AUTOPEFT_LOG_LEVEL"].lower(),
    ]
    log_path = Path(tempfile.gettempdir()) / f"autopeft-bench-server-{port}.log"
    log_file = log_path.open("w")
    ends = ends_with_this_process()  # the server ends with this benchmark, even one killed with SIGKILL
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True, preexec_fn=ends
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; its log: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield port, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()


def create_study(port: int, method: str, max_trials: int, space: str) -> int:
    import httpx

    body = {
        "name": f"bench {method}",
        "task": "rte",
        "space": space,
        "optimizer": {"method": method},
        "max_trials": max_trials,
        "training": {"max_steps": 1},
        "seed": 0,
    }
    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/studies", json=body, timeout=120)
    r.raise_for_status()
    study_id = int(r.json()["id"])
    deadline = time.monotonic() + 120  # the proposer's first trial: the study is ready for workers
    while httpx.get(f"http://127.0.0.1:{port}/api/v1/studies/{study_id}").json()["counts"]["queued"] == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"study {study_id} got no proposal within 120 s")
        time.sleep(0.2)
    return study_id


# -- the runs ---------------------------------------------------------------------------------------
def run_levels(args: argparse.Namespace, backend: str) -> list[dict[str, Any]]:
    rows = []
    with database(backend) as url, server(url, args.server_processes) as (port, log):
        for workers in args.levels:
            study = create_study(port, "sobol", 1_000_000, args.space)
            rec = drive(port, study, workers, args.seconds, args.warmup, args.client_processes)
            stop_study(port, study)
            row = {
                "backend": backend,
                "workers": workers,
                "method": "sobol",
                **summarise(rec, args.seconds),
                "proposer": proposal_rounds(log, study),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def run_growth(args: argparse.Namespace) -> dict[str, Any]:
    """32 workers on PostgreSQL until the study holds ``--grow`` trials: is throughput flat?"""
    with database("postgresql") as url, server(url, args.server_processes) as (port, log):
        study = create_study(port, "sobol", args.grow, args.space)
        start = time.perf_counter()
        rec = drive(port, study, 32, args.grow_timeout, 0.0, args.client_processes)
        wall = time.perf_counter() - start
        result = {
            "backend": "postgresql",
            "workers": 32,
            "trials": args.grow,
            "completed": len(rec["cycle_ms"]),
            "wall_s": round(wall, 1),
            "errors": len(rec["errors"]),
            "first_errors": rec["errors"][:3],
            "by_trials": growth(rec, args.grow // 5),
            "proposer": proposal_rounds(log, study),
        }
        print(json.dumps(result), flush=True)
        return result


def run_gp(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The same with a GP behind the proposer: zero-second trials wait on proposals, which is the point."""
    rows = []
    with database("postgresql") as url, server(url, args.server_processes) as (port, log):
        for workers in args.gp_levels:
            study = create_study(port, "gp", 1_000_000, args.space)
            rec = drive(port, study, workers, args.gp_seconds, 0.0, args.client_processes)
            stop_study(port, study)
            row = {
                "backend": "postgresql",
                "workers": workers,
                "method": "gp",
                **summarise(rec, args.gp_seconds),
                "proposer": proposal_rounds(log, study),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "uvicorn_extras": [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m)],  # used when present
        "load_before": [round(v, 2) for v in load],
    }


def tables(result: dict[str, Any]) -> str:
    """The figures of a results file as the Markdown tables of docs/server.md."""
    m = result["machine"]
    lines = [
        (
            f"Measured {result['date']} on {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}; load average "
            f"before {m['load_before']}, after {m.get('load_after')}. Command: `{result['command']}`."
        ),
        "",
        (
            "| backend | workers | cycles/s | claim p50 / p99 ms | complete p50 / p99 ms | cycle p50 / p99 ms "
            "| empty claims | errors | proposal rounds (mean batch, mean s in propose) |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for x in result["levels"] + result.get("gp", []):
        p = x.get("proposer", {})
        name = x["backend"] + ("" if x["method"] == "sobol" else f", {x['method']}")
        lines.append(
            f"| {name} | {x['workers']} | {x['cycles_per_s']} | {x['claim_p50_ms']} / {x['claim_p99_ms']} "
            f"| {x['complete_p50_ms']} / {x['complete_p99_ms']} | {x['cycle_p50_ms']} / {x['cycle_p99_ms']} "
            f"| {x['empty_claims']} | {x['errors']} | {p.get('rounds')} ({p.get('mean_batch')}, {p.get('propose_s_mean')}) |"
        )
    g = result.get("growth")
    if g:
        lines += [
            "",
            (
                f"One study growing to {g['trials']} trials, 32 workers, PostgreSQL ({g['completed']} completed in "
                f"{g['wall_s']} s, {g['errors']} errors):"
            ),
            "",
            "| trials | cycles/s | cycle p50 / p99 ms |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {b['trials']} | {b['cycles_per_s']} | {b['cycle_p50_ms']} / {b['cycle_p99_ms']} |"
            for b in g["by_trials"]
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"])
    p.add_argument("--levels", nargs="+", type=int, default=[1, 8, 32, 64], help="concurrent workers")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--space", default="autopeft", help="the studies' space (default: autopeft, a study's default)")
    p.add_argument("--grow", type=int, default=5000, help="trials of the growth run (0: skip)")
    p.add_argument("--grow-timeout", type=float, default=120.0)
    p.add_argument("--gp-levels", nargs="+", type=int, default=[8, 32])
    p.add_argument("--gp-seconds", type=float, default=30.0, help="seconds per GP run (0: skip)")
    p.add_argument("--server-processes", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--client-processes", type=int, default=2, help="processes the simulated workers run in")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "server.json")
    p.add_argument(
        "--tables", type=Path, metavar="RESULTS", help="print a results file as Markdown tables, run nothing"
    )
    args = p.parse_args(argv)
    if args.tables:
        print(tables(json.loads(args.tables.read_text())))
        return 0

    result: dict[str, Any] = {
        "benchmark": "server",
        "command": " ".join(["python", "-m", "benchmarks.server", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "levels": [],
    }
    for backend in args.backends:
        result["levels"] += run_levels(args, backend)
    if args.grow:
        result["growth"] = run_growth(args)
    if args.gp_seconds:
        result["gp"] = run_gp(args)
    result["machine"]["load_after"] = [round(v, 2) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
