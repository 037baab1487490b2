"""A worker checks, before it claims anything, that every family trains a step here."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from autopeft.cli import main
from autopeft.modules import FAMILIES, prefix
from autopeft.train.selfcheck import check_families


@pytest.fixture
def broken_prefix(monkeypatch):
    """This environment's transformers ignores the prefix (as 5.24 did with the old argument name)."""
    monkeypatch.setattr(prefix, "cache_argument", lambda attention: "renamed_cache")


def test_every_family_trains_a_step_on_a_tiny_model(tiny_model_dir: Path):
    checks = check_families(tiny_model_dir)
    assert sorted(c.family for c in checks) == sorted(FAMILIES)
    assert [c for c in checks if not c.ok] == []


def test_a_broken_family_is_named_and_the_others_still_pass(tiny_model_dir: Path, broken_prefix):
    checks = {c.family: c for c in check_families(tiny_model_dir, ["lora", "prefix", "serial_adapter"])}
    assert checks["lora"].ok and checks["serial_adapter"].ok
    assert not checks["prefix"].ok
    assert checks["prefix"].error.startswith("ConfigError: prefix tuning is not supported with transformers")
    assert "\n" not in checks["prefix"].error


@pytest.mark.slow
def test_worker_check_exits_0_when_all_families_work(capsys):
    assert main(["worker", "--check", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"self-check: {len(FAMILIES)} families train a step with the bundled MiniLM on cpu" in out


@pytest.mark.slow
def test_worker_check_exits_2_naming_the_broken_family(capsys, broken_prefix):
    assert main(["worker", "--check", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autopeft worker: error: self-check with the bundled MiniLM on cpu: family 'prefix' fails")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_a_worker_with_a_broken_family_refuses_to_start_before_it_claims(capsys, broken_prefix):
    with socket.socket() as s:  # a server that would answer nothing: the worker must not even get that far
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        assert main(["worker", "--server", url, "--device", "cpu", "--no-progress"]) == 2
        s.settimeout(0.2)
        with pytest.raises(TimeoutError):
            s.accept()  # no connection was made
    assert "family 'prefix' fails" in capsys.readouterr().err


def test_worker_without_server_or_check_is_a_one_line_error(capsys):
    assert main(["worker"]) == 2
    assert "--server URL is required" in capsys.readouterr().err
