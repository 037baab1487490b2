"""The attack of issue 13, item 2, through a real server and a real worker loop: a study whose task
points at /etc/passwd, or whose model lies outside the worker's roots, fails its trial with a
message that names the path and the roots and quotes nothing of any file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from autopeft.client import ServerClient
from autopeft.worker.loop import Worker
from autopeft.worker.spool import Spool
from tests.api.conftest import live_server
from tests.tasks.test_task_roots import PASSWD_TASK

FIXTURE_GLUE = Path(__file__).resolve().parents[1] / "fixtures" / "glue"


def _run_one(url: str, study: dict[str, Any], tmp_path: Path, **roots: Any) -> tuple[dict[str, Any], str]:
    api = httpx.Client(base_url=f"{url}/api/v1", timeout=60)
    created = api.post("/studies", json=study)
    assert created.status_code == 201, created.text
    lines: list[str] = []
    worker = Worker(
        ServerClient(url),
        device="cpu",
        study_id=created.json()["id"],
        max_trials=1,
        progress=False,
        say=lines.append,
        spool=Spool(url, root=tmp_path / "spool"),
        **roots,
    )
    assert worker.run() == 1
    (trial,) = api.get(f"/studies/{created.json()['id']}/trials").json()["data"]
    return trial, "\n".join(lines)


def _study(**fields: Any) -> dict[str, Any]:
    return {
        "name": "attack",
        "max_trials": 1,
        "optimizer": {"method": "sobol"},
        "training": {"max_steps": 1, "batch_size": 2},
        "baselines": [{"bitfit": {}}],
        **fields,
    }


@pytest.fixture
def url(tmp_path: Path):
    with live_server(f"sqlite:///{tmp_path / 'roots.db'}", proposer_enabled=False) as server:
        yield server.url


def test_a_task_that_names_etc_passwd_fails_without_reading_it(url: str, tmp_path: Path):
    trial, said = _run_one(url, _study(task=PASSWD_TASK), tmp_path, data_roots=[str(FIXTURE_GLUE)])
    error = trial["error"]
    assert trial["state"] == "failed" and "'/etc/passwd'" in error and str(FIXTURE_GLUE.resolve()) in error, error
    for secret in ("root:", "/bin/bash", "/bin/sh", "nologin"):
        assert secret not in error and secret not in said


def test_a_model_outside_the_model_roots_fails_without_being_read(url: str, tmp_path: Path, tiny_model_dir: Path):
    from tests.conftest import tiny_config

    body = _study(task="rte", model=str(tiny_model_dir), model_config=tiny_config("bert").to_dict())
    trial, _ = _run_one(url, body, tmp_path, data_roots=[str(FIXTURE_GLUE)])
    assert trial["state"] == "failed" and f"model {str(tiny_model_dir)!r} is outside" in trial["error"], trial["error"]
    assert "--models" in trial["error"]


def test_a_file_of_an_allowed_model_folder_linked_from_outside_is_not_read(url: str, tmp_path: Path, tiny_model_dir):
    """Issue 27: a config.json in an allowed model folder that was a symlink to a file outside the roots was
    opened by the worker, and its content went to the server in the trial's error. Every file of a model
    folder is resolved and must lie inside the roots."""
    from tests.conftest import tiny_config

    secret = tmp_path / "private" / "notes.json"
    secret.parent.mkdir()
    secret.write_text('{"model_type": "SECRET_MODEL_TYPE_VALUE"}')
    models = tmp_path / "models"
    folder = models / "tiny"
    folder.mkdir(parents=True)
    for part in tiny_model_dir.iterdir():
        if part.name != "config.json":
            (folder / part.name).write_bytes(part.read_bytes())
    (folder / "config.json").symlink_to(secret)
    body = _study(task="rte", model=str(folder), model_config=tiny_config("bert").to_dict())
    trial, said = _run_one(url, body, tmp_path, data_roots=[str(FIXTURE_GLUE)], model_roots=[str(models)])
    error = trial["error"]
    assert trial["state"] == "failed" and "config.json leads outside the folders this worker may read" in error, error
    assert "SECRET" not in error and "SECRET" not in said and str(secret) not in error
