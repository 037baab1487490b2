"""Issue 27: the server reads model configs only under its model roots (``autopeft serve --models DIR``; the
bundled model always), never echoes a file's contents, and does not reveal whether a folder exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SECRET = "SECRET_MODEL_TYPE_VALUE"


@pytest.fixture
def disk(tmp_path: Path, tiny_model_dir: Path) -> dict[str, Path]:
    """An allowed root with a good model, a model whose config is a secret, and a model whose config.json is a
    link to a private file; a private folder outside the root with the same secret config."""
    root, private = tmp_path / "models", tmp_path / "private"
    root.mkdir()
    private.mkdir()
    shutil.copytree(tiny_model_dir, root / "tiny")
    secret_config = json.dumps({"model_type": SECRET, "hidden_size": 7})
    for folder in (root / "odd", private / "model"):
        folder.mkdir()
        (folder / "config.json").write_text(secret_config)
    (private / "notes.json").write_text(secret_config)
    (root / "linked").mkdir()
    (root / "linked" / "config.json").symlink_to(private / "notes.json")
    return {"root": root, "private": private}


def _create(client, study_body, model: str, **fields):
    body = study_body(model=model, **fields)
    del body["model_config"]
    return client.post("/api/v1/studies", json=body)


def test_a_model_under_the_roots_is_read_and_one_outside_is_not(make_client, study_body, disk):
    client = make_client(model_roots=[str(disk["root"])])
    inside = _create(client, study_body, str(disk["root"] / "tiny"))
    assert inside.status_code == 201 and inside.json()["model_shape"]["n_layers"] == 3, inside.text
    relative = _create(client, study_body, "tiny")  # looked for below each root, as a worker does
    assert relative.status_code == 201, relative.text

    outside = _create(client, study_body, str(disk["private"] / "model"))
    missing = _create(client, study_body, str(disk["private"] / "no-such-folder"))
    for r in (outside, missing):
        detail = r.json()["detail"]
        assert r.status_code == 422 and SECRET not in r.text
        assert "autopeft serve --models DIR" in detail and "model_config" in detail, detail
    # the answer is the same whether the folder exists or not: nothing about the disk leaks
    said = [r.json()["detail"].replace(str(disk["private"] / name), "X") for r, name in ((outside, "model"),
                                                                                     (missing, "no-such-folder"))]
    assert said[0] == said[1]


def test_a_model_outside_the_roots_works_with_the_config_the_client_sends(make_client, study_body, disk):
    client = make_client(model_roots=[str(disk["root"])])
    r = client.post("/api/v1/studies", json=study_body(model=str(disk["private"] / "model")))
    assert r.status_code == 201 and r.json()["model_shape"]["n_layers"] == 3, r.text


def test_by_default_only_the_bundled_model_is_read(make_client, study_body, disk):
    client = make_client()
    assert _create(client, study_body, str(disk["root"] / "tiny")).status_code == 422
    bundled = _create(client, study_body, None, space="grouped")
    assert bundled.status_code == 201 and bundled.json()["model_shape"]["hidden"] == 384


def test_a_config_the_server_read_is_never_echoed(make_client, study_body, disk):
    client = make_client(model_roots=[str(disk["root"])])
    r = _create(client, study_body, str(disk["root"] / "odd"))
    assert r.status_code == 422 and SECRET not in r.text, r.text
    assert "model_type is not one autopeft supports" in r.json()["detail"]


def test_a_config_linked_from_outside_the_roots_is_not_opened(make_client, study_body, disk):
    client = make_client(model_roots=[str(disk["root"])])
    r = _create(client, study_body, str(disk["root"] / "linked"))
    assert r.status_code == 422 and SECRET not in r.text, r.text
    detail = r.json()["detail"]
    assert "config.json leads outside the folders this server may read" in detail
    assert str(disk["private"]) not in detail  # where the link leads is not said either
