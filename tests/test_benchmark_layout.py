"""The benchmarks stay a small harness and short commands (issue 28): no file over 800 lines, none
edits ``sys.path``, every command runs as ``python -m benchmarks.NAME``, and the harness depends on
no command (commands import the harness, never the other way)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SOURCES = sorted(BENCH.rglob("*.py"))
COMMANDS = [
    "baselines",
    "decoder_llm",
    "early_stopping",
    "fairness",
    "gpu_experiment",
    "methods",
    "onnx_int8",
    "optimizer",
    "param_counts",
    "report",
    "server",
    "slow_headers",
    "warm_start",
]


def test_no_benchmark_file_is_over_800_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 800}
    assert SOURCES and long == {}


def test_no_benchmark_edits_sys_path() -> None:
    assert [str(p.relative_to(ROOT)) for p in SOURCES if "sys.path" in p.read_text()] == []


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_runs_as_a_module(name: str, capsys) -> None:
    source = (BENCH / f"{name}.py").read_text()
    assert 'if __name__ == "__main__":' in source and "main()" in source.split('if __name__ == "__main__":')[1]
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_a_command_runs_from_the_repository_root_in_a_fresh_interpreter() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "python -m benchmarks.report --check" in done.stdout, done.stderr


def _benchmark_imports(path: Path) -> set[str]:
    """Every ``benchmarks.*`` module a file imports, at any depth (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {n for n in names if n.split(".")[0] == "benchmarks"}


def test_the_harness_imports_no_benchmark_command() -> None:
    allowed = ("benchmarks.harness", "benchmarks.plots")
    found = {
        str(path.relative_to(ROOT)): sorted(n for n in _benchmark_imports(path) if not n.startswith(allowed))
        for path in sorted((BENCH / "harness").glob("*.py"))
    }
    assert {k: v for k, v in found.items() if v} == {}
