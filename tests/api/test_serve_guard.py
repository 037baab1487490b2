"""Issue 27, through a real `autopeft serve`: `--models DIR`, `--allowed-hosts`, and connections that never
finish their headers (3,000 of them stayed open for 40 s and more) are closed after the header timeout; at the
connection cap the one that waited longest for its headers makes room, so a client that sends its request at
once is served."""

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


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection (or ``timeout`` passes: then b"...open")."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(4096):
            out += chunk
    except TimeoutError:
        return out + b"...open"
    except ConnectionResetError:
        return out + b"...reset"
    return out


def _read_response(sock: socket.socket, timeout: float) -> bytes:
    """One whole response: its headers, then as many body bytes as its content-length says (TCP may split them)."""
    sock.settimeout(timeout)
    out = b""
    while b"\r\n\r\n" not in out:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection after {out!r}"
        out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection after {head + body!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def server(tmp_path: Path, tiny_model_dir: Path):
    port = _port()
    env = {
        **os.environ,
        "AUTOPEFT_LOG_LEVEL": "WARNING",
        "AUTOPEFT_HEADER_TIMEOUT_S": "4",
        "AUTOPEFT_MAX_CONNECTIONS": "20",
    }
    cmd = [sys.executable, "-m", "autopeft", "serve", "--port", str(port), "--proposer", "off"]
    cmd += ["--models", str(tiny_model_dir.parent), "--allowed-hosts", "box.example,studies.example"]
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield port, url, log
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_models_and_allowed_hosts(server, study_body, tiny_model_dir):
    port, url, log = server
    assert httpx.get(f"{url}/api/v1/health", headers={"Host": f"box.example:{port}"}).status_code == 200
    assert httpx.get(f"{url}/api/v1/health", headers={"Host": "studies.example"}).status_code == 200
    refused = httpx.get(f"{url}/api/v1/health", headers={"Host": "other.example"})
    assert refused.status_code == 400 and "--allowed-hosts other.example" in refused.json()["detail"]
    body = study_body(model=str(tiny_model_dir))
    del body["model_config"]
    created = httpx.post(f"{url}/api/v1/studies", json=body, timeout=60)
    assert created.status_code == 201 and created.json()["model_shape"]["n_layers"] == 3, created.text
    said = log.read_text()
    assert "reads model configs under" in said and str(tiny_model_dir.parent.resolve()) in said
    assert "box.example" in said and "localhost" in said


def test_unfinished_headers_are_cut_off_and_extra_connections_refused(server):
    port, url, _ = server
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    start = time.monotonic()
    answer = _read_all(slow, timeout=20)
    assert answer.startswith(b"HTTP/1.1 408") and not answer.endswith(b"open"), answer
    assert 3.5 < time.monotonic() - start < 15

    kept = socket.create_connection(("127.0.0.1", port))  # a kept-alive connection: its next request is timed too
    kept.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _read_response(kept, timeout=5).startswith(b"HTTP/1.1 200")
    kept.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert _read_all(kept, timeout=20).startswith(b"HTTP/1.1 408")

    opened = time.monotonic()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]  # the cap, all silent
    assert httpx.get(f"{url}/api/v1/health", timeout=10).status_code == 200  # served at once: the oldest made room
    assert time.monotonic() - opened < 3.5  # (before any header timeout)
    assert _read_all(idle[0], timeout=1).startswith(b"HTTP/1.1 408")
    rest = [_read_all(s, timeout=20) for s in idle[1:]]
    assert all(a.startswith(b"HTTP/1.1 408") for a in rest), rest[:3]
    for s in (slow, kept, *idle):
        s.close()
