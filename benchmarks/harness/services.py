"""The service as a user runs it: ``autopeft serve`` and ``autopeft worker`` as subprocesses of the
benchmark. Each one ends with it: SIGTERM then SIGKILL when it stops, and the kernel's parent-death
signal when it is killed outright (the server takes its proposer along)."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from autopeft.api.lifeline import ends_with_this_process
from benchmarks.harness.phases import ExperimentError, say

NVIDIA_SMI = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-l", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this one's, unbuffered, with ``extra``."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def tail(path: Path, n: int = 3000) -> str:
    """The end of a log file, for an error message."""
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def terminate(procs: Iterable[subprocess.Popen], timeout: float) -> None:
    """SIGTERM to every process still running, then SIGKILL to those not gone within ``timeout`` seconds."""
    procs = [p for p in procs if p.poll() is None]
    for p in procs:
        p.terminate()
    end = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def server_transport(log_path: Path) -> Any:
    """An httpx transport whose failures (no answer, refused, timed out) are an :class:`ExperimentError`
    that names the request and the server's log, not a traceback."""
    import httpx

    class _Transport(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            try:
                return super().handle_request(request)
            except httpx.TransportError as err:
                raise ExperimentError(
                    f"the server did not answer {request.method} {request.url.path} "
                    f"({type(err).__name__}{f': {err}' if str(err) else ''}); its log: {log_path}"
                ) from err

    return _Transport()


class Service:
    """``autopeft serve`` on ``OUT/autopeft.db`` as a subprocess, and an HTTP client to it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = out / "logs" / "server.log"
        self.proc: subprocess.Popen | None = None
        self.http: Any = None

    def __enter__(self) -> Self:
        import httpx

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "autopeft", "serve", "--db", str(self.out / "autopeft.db")]
        cmd += ["--port", str(self.port), "--log-level", "warning"]
        ends = ends_with_this_process()  # also when this benchmark is killed with SIGKILL
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=self.out, preexec_fn=ends
            )
        headers = {}
        if os.environ.get("AUTOPEFT_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['AUTOPEFT_API_KEY']}"
        self.http = httpx.Client(
            base_url=self.url, timeout=120, headers=headers, transport=server_transport(self.log_path)
        )
        try:
            self._wait_healthy(180)
        except BaseException:  # never leave the server running behind a failed start
            self.__exit__()
            raise
        say(f"server {self.url} (database {self.out / 'autopeft.db'}, log {self.log_path})")
        return self

    def _wait_healthy(self, timeout: float) -> None:
        import httpx

        assert self.proc is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise ExperimentError(f"autopeft serve exited ({self.proc.returncode}): {tail(self.log_path)}")
            try:
                if self.http.get("/api/v1/health", timeout=2).status_code == 200:
                    return
            except (httpx.HTTPError, ExperimentError):
                pass
            time.sleep(0.5)
        raise ExperimentError(f"autopeft serve did not answer in {timeout:.0f} s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.http is not None:
            self.http.close()
        if self.proc is not None:
            terminate([self.proc], 20)

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        if r.status_code != 200:
            raise ExperimentError(f"GET {path}: {r.status_code} {r.text[:500]}")
        return r.json()

    def study_or_none(self, study_id: int) -> dict[str, Any] | None:
        r = self.http.get(f"/api/v1/studies/{study_id}")
        return r.json() if r.status_code == 200 else None

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post("/api/v1/studies", json=body)
        if r.status_code != 201:
            raise ExperimentError(f"the server refused study {body['name']!r}: {r.status_code} {r.text[:1000]}")
        return r.json()

    def stop(self, study_id: int) -> None:
        self.http.post(f"/api/v1/studies/{study_id}/stop")


def start_workers(svc: Service, plan: Mapping[str, Any], batch: str, study_id: int | None) -> list[subprocess.Popen]:
    """``plan["workers"]`` ``autopeft worker`` processes on ``plan["device"]`` (one thread each on a CPU),
    taking trials of ``study_id`` or of any study; logs in ``OUT/logs/<batch>-worker<i>.log``."""
    procs = []
    cpu = not plan["device"].startswith("cuda") and "OMP_NUM_THREADS" not in os.environ
    env = child_env(OMP_NUM_THREADS="1") if cpu else child_env()
    for i in range(plan["workers"]):
        cmd = [sys.executable, "-m", "autopeft", "worker", "--server", svc.url, "--device", plan["device"]]
        cmd += ["--data", plan["data"], "--no-progress", "--worker-id", f"{batch}-w{i}", "--poll", "2"]
        if study_id is not None:
            cmd += ["--study", str(study_id)]
        log = svc.out / "logs" / f"{batch}-worker{i}.log"
        with log.open("a") as f:
            ends = ends_with_this_process()
            procs.append(
                subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=svc.out, preexec_fn=ends)
            )
    say(f"{batch}: started {len(procs)} worker(s) on {plan['device']} (logs {svc.out / 'logs'}/{batch}-worker*.log)")
    return procs


def pump(proc: subprocess.Popen, log: Path, prefix: str) -> None:
    """Copy a child's output to its log; say its lines about seeds and errors (run in a thread)."""
    with log.open("a") as f:
        for line in proc.stdout:  # type: ignore[union-attr]
            f.write(line)
            f.flush()
            if line.strip() and not line.startswith("wrote ") and ("seed" in line or "Error" in line):
                say(f"{prefix}: {line.rstrip()}")


class GpuSampler:
    """``nvidia-smi ... -l 1`` in the background, writing a CSV; a summary when stopped."""

    def __init__(self, path: Path, device: str) -> None:
        self.path = path
        self.proc: subprocess.Popen | None = None
        self.note: str | None = None
        if not device.startswith("cuda"):
            self.note = "not sampled: the trials ran on the CPU"
        elif shutil.which("nvidia-smi") is None:
            self.note = "not sampled: nvidia-smi is not on PATH"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w") as f:
                self.proc = subprocess.Popen(
                    NVIDIA_SMI, stdout=f, stderr=subprocess.DEVNULL, preexec_fn=ends_with_this_process()
                )

    def stop(self) -> dict[str, Any]:
        if self.proc is None:
            return {"note": self.note}
        terminate([self.proc], 5)
        return summarise_gpu_samples(self.path.read_text().splitlines()) | {"csv": self.path.name}


def summarise_gpu_samples(lines: Iterable[str]) -> dict[str, Any]:
    """Mean/median GPU utilisation (%) and memory (MiB) of ``utilization.gpu, memory.used`` lines."""
    util, mem = [], []
    for line in lines:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2:
            continue
        try:
            u, m = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        util.append(u)
        mem.append(m)
    if not util:
        return {"samples": 0, "note": "nvidia-smi wrote no samples"}
    return {
        "samples": len(util),
        "utilization_mean": statistics.mean(util),
        "utilization_median": statistics.median(util),
        "utilization_share_above_50": sum(u > 50 for u in util) / len(util),
        "memory_mean_mib": statistics.mean(mem),
        "memory_max_mib": max(mem),
    }
