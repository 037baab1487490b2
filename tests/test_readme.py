"""The README's commands: each one is run here, parsed by the real CLI, or run by `.ci/run`.

The two install commands are what `.ci/run` and the Dockerfile do; every `autopeft ...`
line parses with the real argument parser; the configuration commands run; the REST
examples run with curl against a live server; the compose file names the services the
README describes.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from autopeft.cli import build_parser, main
from tests.api.conftest import live_server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(lang: str, text: str = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def shell_lines(block: str) -> list[str]:
    """Commands of a bash block: continuation lines joined, comments and blanks dropped."""
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def autopeft_commands() -> list[list[str]]:
    commands = []
    for block in blocks("bash"):
        for line in shell_lines(block):
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]  # VAR=value autopeft ...
                if words and words[0] == "autopeft":
                    commands.append(words[1:])
    return commands


def test_the_readme_names_both_commands_and_ci_runs_the_test_command() -> None:
    demo, tests = blocks("bash", section("Two commands"))
    install = (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -c requirements.lock torch==2.13.0 "
        "&& pip install -c requirements.lock -e "
    )
    assert demo.strip() == install + "'.[all]' && autopeft demo"
    assert tests.strip() == install + "'.[all,test]' && python -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text() + (ROOT / ".ci" / "suite.sh").read_text()
    for step in (
        "python3 -m venv",
        "pip install -q -c requirements.lock torch==2.13.0",
        "pip install -q -c requirements.lock -e '.[all,test]'",
        "pytest -q",
    ):
        assert step in ci
    assert 'if [ "$rc" -eq 5 ]' in ci  # pytest collecting nothing fails the run


def test_the_lock_pins_every_package_once_and_the_torch_the_readme_installs() -> None:
    lines = [line for line in (ROOT / "requirements.lock").read_text().splitlines() if line and not line.startswith("#")]
    names = [line.split("==")[0].lower() for line in lines]
    assert all("==" in line for line in lines) and len(names) == len(set(names))
    assert "torch==2.13.0" in lines and "autopeft" not in names
    # every dependency pyproject names (test and bench extras included) is pinned
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    for requirement in wanted:
        name = re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        if name == "autopeft":  # an extra made of other extras (all)
            continue
        assert name in {n.replace("_", "-") for n in names}, f"{name} is not in requirements.lock"


def test_the_image_installs_with_the_readmes_commands() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = [line.removeprefix("RUN ").strip() for line in dockerfile.splitlines() if line.startswith("RUN ")]
    assert runs[-3:] == [
        "python3 -m venv /app/.venv",
        "pip install -c requirements.lock torch==2.13.0",
        "pip install -c requirements.lock -e '.[all]'",
    ]


def test_the_compose_file_runs_db_api_and_gpu_workers() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "api", "worker"} <= set(services)
    assert services["db"]["image"].startswith("postgres")
    assert services["api"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["api"]["environment"]["AUTOPEFT_DATABASE_URL"].startswith("postgresql://")
    assert services["api"]["command"][:2] == ["autopeft", "serve"]
    assert services["worker"]["command"][:2] == ["autopeft", "worker"]
    assert "http://api:8000" in services["worker"]["command"]
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "container_name" not in services["worker"]  # --scale worker=N needs unnamed containers
    # The commands the services run parse with the real CLI.
    for name in ("api", "worker"):
        build_parser().parse_args(services[name]["command"][1:])


@pytest.mark.parametrize("argv", autopeft_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_autopeft_command_in_the_readme_parses(argv: list[str]) -> None:
    build_parser().parse_args(argv)


def test_the_readme_has_the_commands_a_user_needs() -> None:
    verbs = {argv[0] for argv in autopeft_commands()}
    assert {"demo", "serve", "worker", "study", "train", "predict", "params", "space"} <= verbs


def test_the_training_examples_say_where_the_data_is() -> None:
    """The library looks for GLUE only in ``$AUTOPEFT_DATA_DIR`` and ``./data/glue``; this project's
    machines keep it in ``../shared/data/glue``, so the examples name it (the demo alone looks there too)."""
    trains = [argv for argv in autopeft_commands() if argv[0] == "train"]
    assert trains and all("--data" in argv for argv in trains)


@pytest.mark.parametrize(
    "argv", [a for a in autopeft_commands() if a[0] in ("params", "space")], ids=lambda a: " ".join(a)[:60]
)
def test_the_configuration_commands_run(argv: list[str], capsys) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out.strip()


def test_the_study_example_is_accepted_as_written() -> None:
    from autopeft.api.schemas.studies import StudyCreate

    (study,) = blocks("json", section("A study"))
    StudyCreate.model_validate(json.loads(study))


def test_local_links_point_at_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_rest_examples_run_against_a_live_server(tmp_path: Path) -> None:
    (study,) = blocks("json", section("A study"))
    (tmp_path / "study.json").write_text(study)
    script = "\n".join(blocks("bash", section("The REST API")))
    assert "export SERVER=http://127.0.0.1:8000" in script
    with live_server(f"sqlite:///{tmp_path / 'readme.db'}") as server:
        body = script.replace("export SERVER=http://127.0.0.1:8000", f"export SERVER={server.url}")
        # Every request must succeed (curl fails on a 4xx/5xx answer).
        prelude = 'set -euo pipefail\ncurl() { command curl --fail-with-body --max-time 30 "$@"; }\n'
        done = subprocess.run(
            ["bash", "-c", prelude + body], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        out = done.stdout
        import httpx

        trials = httpx.get(f"{server.url}/api/v1/studies/1/trials").json()["data"]
        study_state = httpx.get(f"{server.url}/api/v1/studies/1").json()["state"]
    assert '"id":1' in out.replace(" ", "")
    reported = [t for t in trials if t["state"] == "completed"]
    assert len(reported) == 1 and reported[0]["metric"] == 0.71 and reported[0]["worker_id"] == "my-script"
    assert study_state == "stopped"

