"""Slow-header connections against `autopeft serve`: how long they stay open, and whether the server still answers.

Starts `autopeft serve` (SQLite, no proposer) on a free port, opens ``--connections`` TCP connections that each
send the start of a request and never finish its headers (slowloris), then every second counts how many the
server still holds open and times a normal `GET /api/v1/health` on a fresh connection. Writes
benchmarks/results/slow_headers.json and prints a table (docs/server.md, "Connections").

    python -m benchmarks.slow_headers --connections 1000 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIMIT_SETTINGS = ("AUTOPEFT_HEADER_TIMEOUT_S", "AUTOPEFT_MAX_CONNECTIONS")
PARTIAL = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _open_count(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has neither answered nor closed."""
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    return len(socks) - len(poller.poll(0))


def _health_ms(port: int) -> float | None:
    """A `GET /api/v1/health` on a fresh connection, in ms (None: no answer within 5 s)."""
    start = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = s.recv(64)
    except OSError:
        return None
    return round((time.perf_counter() - start) * 1000, 1) if answer.startswith(b"HTTP/1.1 200") else None


def run(connections: int, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="autopeft-slow-") as tmp:
        cmd = [sys.executable, "-m", "autopeft", "serve", "--port", str(port), "--proposer", "off"]
        cmd += ["--db", str(Path(tmp) / "slow.db"), "--log-level", "error"]
        server = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        socks: list[socket.socket] = []
        try:
            deadline = time.monotonic() + 120
            while _health_ms(port) is None:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.3)
            opened = time.monotonic()
            refused = 0
            for _ in range(connections):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                    s.sendall(PARTIAL)
                    socks.append(s)
                except OSError:
                    refused += 1
            timeline = []
            while (elapsed := time.monotonic() - opened) < seconds:
                timeline.append(
                    {"s": round(elapsed, 1), "open": _open_count(socks), "health_ms": _health_ms(port)}
                )
                time.sleep(max(0.0, 1.0 - (time.monotonic() - opened - elapsed)))
        finally:
            for s in socks:
                s.close()
            server.terminate()
            server.wait(30)
    closed_at = next((t["s"] for t in timeline if t["open"] == 0), None)
    return {"connections": connections, "refused_at_connect": refused, "all_closed_after_s": closed_at,
            "timeline": timeline}  # fmt: skip


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=30.0, help="how long to watch them")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose autopeft serves (to compare)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "slow_headers.json")
    args = p.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.root), os.environ.get("PYTHONPATH", "")])}
    result = run(args.connections, args.seconds, env)
    result.update(
        root=str(args.root),
        commit=subprocess.run(["git", "-C", str(args.root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip(),  # fmt: skip
        benchmark="slow_headers",
        command=" ".join(["python", "-m", "benchmarks.slow_headers", *(argv if argv is not None else sys.argv[1:])]),
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={"cpus": os.cpu_count(), "platform": platform.platform(), "load": _load()},
        settings={k: os.environ[k] for k in LIMIT_SETTINGS if k in os.environ},
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| s | still open | health ms |\n|---|---|---|")
    for t in result["timeline"]:
        print(f"| {t['s']} | {t['open']} | {t['health_ms']} |")
    print(f"all closed after {result['all_closed_after_s']} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
