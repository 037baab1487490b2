"""Every process `autopeft serve` starts ends when the server ends, however it ends (issue 13, item 7).

Before: after SIGTERM the proposer process lived on with parent PID 1 (uvicorn re-raised the
signal after its shutdown, so the server's ``finally`` never ran; the proposer looked for its
parent only after seconds of imports). Real processes, SQLite, a few seconds each.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root``, with its start time (to tell a reused pid apart)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            parents.setdefault(st[0], []).append(int(entry))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            st = _stat(child)
            if st is not None and child not in found:
                found[child] = st[2]
                todo.append(child)
    return found


def alive(processes: dict[int, str]) -> list[int]:
    """Those still running (a zombie has ended; a pid with another start time is another process)."""
    out = []
    for pid, started in processes.items():
        st = _stat(pid)
        if st is not None and st[1] != "Z" and st[2] == started:
            out.append(pid)
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, dict[int, str]]:
    """`autopeft serve` with its proposer process (and uvicorn workers with --workers), once healthy
    and once every child it starts is up."""
    port = _port()
    env = {**os.environ, "AUTOPEFT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "autopeft", "serve", "--db", str(tmp_path / "life.db"), "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=(tmp_path / "serve.log").open("w"), stderr=subprocess.STDOUT)
    want = 1 + (int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 0)  # proposer + workers
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        try:
            healthy = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            healthy = False
        children = descendants(proc.pid)
        python_children = [p for p in children if "resource_tracker" not in _cmdline(p)]
        if healthy and len(python_children) >= want:
            return proc, children
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the server did not start: {(tmp_path / 'serve.log').read_text()[-3000:]}")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def assert_all_end(proc: subprocess.Popen, children: dict[int, str], timeout: float = 45.0) -> None:
    proc.wait(timeout)
    deadline = time.monotonic() + timeout
    while (left := alive(children)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive(children)
    for pid in left:  # do not leave them to the next test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after the server ended: {[(p, _cmdline(p)) for p in left]}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_the_proposer_ends_with_the_server(tmp_path: Path, sig: int):
    proc, children = start_server(tmp_path)
    assert any("multiprocessing" in _cmdline(p) for p in children), children  # the proposer process
    proc.send_signal(sig)
    assert_all_end(proc, children)
    if sig != signal.SIGKILL:
        assert proc.returncode in (0, 130, 143, -sig), proc.returncode


def test_uvicorn_workers_and_the_proposer_end_when_the_server_is_killed(tmp_path: Path):
    proc, children = start_server(tmp_path, "--workers", "2")
    assert len(children) >= 3, children
    proc.send_signal(signal.SIGKILL)
    assert_all_end(proc, children)


def test_a_proposer_whose_server_died_while_it_started_ends_at_once(tmp_path: Path):
    """The race of the report: the server died during the proposer's seconds of imports, so the
    proposer took PID 1 for its parent and never noticed. It is told its parent's pid now."""
    code = "import sys\nfrom autopeft.api.proposer import run_process\nrun_process(int(sys.argv[1]))\n"
    env = {**os.environ, "AUTOPEFT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "AUTOPEFT_LOG_LEVEL": "ERROR"}
    orphan = subprocess.Popen([sys.executable, "-c", code, "1"], env=env)  # "1" is not its parent: it died
    try:
        assert orphan.wait(60) == 0  # it ends by itself, soon, and cleanly
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait(10)
            pytest.fail("the proposer outlived the server it was started for")


def test_a_proposal_round_ends_with_the_server(tmp_path: Path):
    """Issue 27: a model round runs in a process of the proposer's fork server; killing the server ends it too."""
    from autopeft.accounting import estimate
    from autopeft.shape import model_shape

    proc, _ = start_server(tmp_path)
    port = proc.args[proc.args.index("--port") + 1]
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    heavy = {"method": "saas", "saas_warmup": 512, "saas_samples": 512, "saas_max_tree_depth": 3, "n_initial": 4}
    baselines = [{"bitfit": {}}, {"serial_adapter": {"size": 8}}, {"prefix": {"length": 4}}, {"lora": {"rank": 2}}]
    body = {"name": "heavy", "task": "rte", "space": "full", "optimizer": heavy, "max_trials": 50,
            "training": {"max_steps": 1}, "seed": 0, "baselines": [{"config": b} for b in baselines]}  # fmt: skip
    study = http.post("/api/v1/studies", json=body).json()["id"]
    shape = model_shape(None)
    try:
        for _ in baselines:
            trial = http.post("/api/v1/trials/claim", json={"worker_id": "w", "study_id": study}).json()
            count = estimate(trial["config"], shape)
            report = {"lease_token": trial["lease"]["token"], "metric": 0.5, "peft_params": count.peft_params,
                      "param_fraction": count.param_fraction}  # fmt: skip
            assert http.post(f"/api/v1/trials/{trial['id']}/complete", json=report).status_code == 200
        deadline = time.monotonic() + 60
        while len([p for p in descendants(proc.pid) if "forkserver" in _cmdline(p)]) < 2:  # the server and a round
            assert time.monotonic() < deadline, [_cmdline(p)[:150] for p in descendants(proc.pid)] + [
                (tmp_path / "serve.log").read_text()[-3000:]
            ]
            time.sleep(0.2)
        children = descendants(proc.pid)
    except BaseException:  # leave no server behind a failed check
        left = descendants(proc.pid)
        proc.kill()
        assert_all_end(proc, left)
        raise
    finally:
        http.close()
    proc.send_signal(signal.SIGKILL)
    assert_all_end(proc, children)
