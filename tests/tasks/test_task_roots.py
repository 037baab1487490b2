"""A worker reads task files and models only under its roots (issue 13, item 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autopeft.encoder import bundled_model_dir, resolve_model_dir
from autopeft.errors import ModelError, TaskError
from autopeft.roots import Roots
from autopeft.tasks import load_task_data, resolve_data_dir, resolve_task

#: The task of the attack run: /etc/passwd read as a headerless ':'-separated file.
PASSWD_TASK = {
    "name": "x",
    "data_dir": "/nonexistent",
    "train_file": "/etc/passwd",
    "delimiter": ":",
    "header": False,
    "text_columns": [0],
    "label_column": 6,
    "labels": ["a", "b"],
}


def _no_content(message: str) -> None:
    for secret in ("root:", "/bin/bash", "/bin/sh", "nologin"):
        assert secret not in message, message


def test_the_attack_task_names_the_path_and_the_roots_and_nothing_of_the_file(glue_dir: Path) -> None:
    with pytest.raises(TaskError) as err:
        resolve_data_dir(resolve_task(PASSWD_TASK), [glue_dir])
    message = str(err.value)
    assert "'/etc/passwd'" in message and str(glue_dir.resolve()) in message and "--data" in message
    _no_content(message)
    _no_content(err.value.public_message())


@pytest.mark.parametrize(
    "task",
    [
        {"name": "rte", "data_dir": "/etc"},
        {**PASSWD_TASK, "data_dir": None, "train_file": "../../../../../../../etc/passwd"},
        {**PASSWD_TASK, "data_dir": "RTE", "train_file": "train.tsv", "eval_file": "/etc/passwd"},
        {**PASSWD_TASK, "data_dir": "RTE", "train_file": "train.tsv", "eval_file": "../../../../../../../etc/passwd"},
    ],
    ids=["absolute data_dir", "dotdot train_file", "absolute eval_file", "dotdot eval_file"],
)
def test_paths_out_of_the_roots_are_refused_before_they_are_read(glue_dir: Path, task: dict) -> None:
    spec = resolve_task({k: v for k, v in task.items() if v is not None})
    with pytest.raises(TaskError, match="is outside the folders this worker may read"):
        resolve_data_dir(spec, [glue_dir])


def test_a_symlink_out_of_a_root_is_followed_and_refused(glue_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "RTE").mkdir(parents=True)
    (root / "RTE" / "train.tsv").symlink_to("/etc/passwd")
    os.symlink(glue_dir / "RTE" / "dev.tsv", root / "RTE" / "dev.tsv")
    with pytest.raises(TaskError, match="outside"):
        resolve_data_dir(resolve_task("rte"), [root])
    (root / "other").symlink_to("/etc")
    with pytest.raises(TaskError, match="outside"):
        resolve_data_dir(resolve_task({**PASSWD_TASK, "data_dir": "other", "train_file": "passwd"}), [root])


def test_tasks_inside_the_roots_are_found_as_before(glue_dir: Path, tmp_path: Path) -> None:
    linked = tmp_path / "glue-link"
    linked.symlink_to(glue_dir)  # a root may itself be a symlink: the operator chose it
    for roots in ([glue_dir], [tmp_path / "elsewhere", linked]):
        assert resolve_data_dir(resolve_task("rte"), roots) == (glue_dir / "RTE").resolve()
        relative = resolve_task({"name": "sst2", "data_dir": "SST-2"})
        assert resolve_data_dir(relative, roots) == (glue_dir / "SST-2").resolve()
    absolute = resolve_task({"name": "mrpc", "data_dir": str(glue_dir / "MRPC")})
    assert resolve_data_dir(absolute, [glue_dir]) == (glue_dir / "MRPC").resolve()
    with pytest.raises(TaskError, match="missing file") as err:
        resolve_data_dir(resolve_task({"name": "rte", "data_dir": "NOPE"}), [glue_dir])
    assert str(glue_dir.resolve()) in str(err.value)


def test_load_task_data_honours_the_roots(glue_dir: Path, tiny_dir: Path, tmp_path: Path) -> None:
    spec = resolve_task({"name": "rte", "data_dir": str(glue_dir)})
    assert load_task_data(spec, tiny_dir, 16, roots=[glue_dir]).train.num_rows > 0
    with pytest.raises(TaskError, match="outside"):
        load_task_data(spec, tiny_dir, 16, roots=[tmp_path])


def test_models_are_read_only_under_the_model_roots(tiny_dir: Path, tmp_path: Path) -> None:
    assert resolve_model_dir(None, [tmp_path]) == bundled_model_dir().resolve()  # the bundled model: always
    assert resolve_model_dir(str(tiny_dir), [tiny_dir.parent]) == tiny_dir.resolve()
    assert resolve_model_dir(tiny_dir.name, [tmp_path, tiny_dir.parent]) == tiny_dir.resolve()  # relative: below a root
    for model in (str(tiny_dir), "/etc", "../../../../etc"):
        with pytest.raises(ModelError, match="is outside the folders this worker may read") as err:
            resolve_model_dir(model, [tmp_path])
        assert "--models" in str(err.value)
    (tmp_path / "m").symlink_to(tiny_dir)
    with pytest.raises(ModelError, match="outside"):
        resolve_model_dir(str(tmp_path / "m"), [tmp_path])


def test_worker_roots_default_to_the_data_folders_and_the_bundled_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AUTOPEFT_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    roots = Roots.of()
    assert roots.data == ((tmp_path / "data" / "glue").resolve(),)
    assert roots.models == (bundled_model_dir().resolve(), *roots.data)
    monkeypatch.setenv("AUTOPEFT_DATA_DIR", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    roots = Roots.of([str(tmp_path / "c")], [str(tmp_path / "models")])
    assert roots.data == tuple((tmp_path / n).resolve() for n in "cab")
    assert roots.models == ((tmp_path / "models").resolve(),)
