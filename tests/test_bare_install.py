"""``pip install autopeft`` with no extra, in a fresh virtual environment, run outside the checkout.

The wheel installs one import name; the bare package loads a saved trial and predicts with the
numbers the full install gives; the roles' commands name the extra they need in one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from autopeft.cli import main
from autopeft.train.saved import load_trained
from tests.train.conftest import tiny_encoder

ROOT = Path(__file__).resolve().parents[1]
DEV = tiny_encoder.FIXTURE_GLUE / "RTE" / "dev.tsv"


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _link_requirements(lines: Iterable[str], site: Path, seen: set[str]) -> None:
    """Put this environment's installed distributions that ``lines`` require (no extra), and what they require in
    turn, into ``site`` as symbolic links to the same files: pip then finds them installed, at the locked versions,
    where unzipping them again (torch alone is 700 MB) would be most of what a fresh install costs."""
    from packaging.requirements import Requirement

    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's, or another platform's
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError:  # pip installs it
            continue
        key = dist.metadata["Name"].lower().replace("-", "_")
        if key in seen:
            continue
        seen.add(key)
        if not any(p.name.lower().startswith(key + "-") for p in site.glob("*.dist-info")):
            origin = Path(dist.locate_file(""))
            for top in {str(f).split("/")[0] for f in dist.files or ()} - {"..", "__pycache__"}:
                if not top.endswith(".pth"):
                    (site / top).symlink_to(origin / top)
        _link_requirements(dist.requires or (), site, seen)


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> tuple[Path, Path]:
    """The wheel built from this checkout, and a fresh venv with the wheel (no extra) installed by pip; what the
    bare package requires is this environment's, linked in (pip checks that it satisfies the wheel and the lock)."""
    root = tmp_path_factory.mktemp("bare")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(root), str(ROOT)],
        root,
        env,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(root.glob("autopeft-*.whl"))
    venv.create(root / "venv", with_pip=True)
    (site,) = (root / "venv" / "lib").glob("python*/site-packages")
    _link_requirements(distribution("autopeft").requires or (), site, set())
    pip = [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / "requirements.lock")]
    done = _run(pip + [str(wheel)], root, env)
    assert done.returncode == 0, done.stderr[-3000:]
    return wheel, root / "venv" / "bin"


@pytest.mark.slow
def test_the_wheel_installs_one_import_name(bare) -> None:
    wheel, _ = bare
    with zipfile.ZipFile(wheel) as z:
        top = {name.split("/")[0] for name in z.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"autopeft"}


@pytest.mark.slow
def test_the_bare_package_loads_a_saved_trial_and_predicts(bare, tmp_path) -> None:
    _, bin_dir = bare
    model = tiny_encoder.build_tiny_encoder(tmp_path / "tiny")
    saved = tmp_path / "saved"
    config = json.dumps({"lora": {"rank": 4, "targets": ["query", "value"]}, "bitfit": {}})
    assert main(["train", "--task", "rte", "--data", str(tiny_encoder.FIXTURE_GLUE), "--model", str(model),
                 "--config", config, "--max-steps", "3", "--save", str(saved), "--no-progress"]) == 0  # fmt: skip
    expected, _ = load_trained(saved).predict_file(DEV)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    python = str(bin_dir / "python")
    outside = tmp_path / "elsewhere"  # not the checkout: its folders must not be importable from here
    outside.mkdir()
    names = _run([python, "-c", "import autopeft.api, autopeft.worker; import api"], outside, env)
    assert names.returncode == 1 and "No module named 'api'" in names.stderr
    missing = _run([python, "-c", "import datasets"], outside, env)
    assert missing.returncode == 1  # the worker extra is not there

    predicted = _run(["autopeft", "predict", "--trained", str(saved), "--input", str(DEV), "--json"], outside, env)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert json.loads(predicted.stdout)["predictions"] == expected
    loaded = _run([python, "-c", f"import autopeft; print(autopeft.load({str(saved)!r}).predict(['a b', 'c']))"],
                  outside, env)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, extra",
    [
        (["serve"], "server"),
        (["db", "current"], "server"),
        (["worker", "--server", "http://127.0.0.1:9"], "worker"),
        (["train", "--task", "rte", "--config", "{}"], "worker"),
        (["study", "list", "--server", "http://127.0.0.1:9"], "worker"),
    ],
)
def test_a_command_whose_extra_is_missing_names_it_in_one_line(bare, tmp_path, command, extra) -> None:
    _, bin_dir = bare
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = _run([str(bin_dir / "autopeft"), *command], tmp_path, env, timeout=120)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and f"pip install 'autopeft[{extra}]'" in line, line
