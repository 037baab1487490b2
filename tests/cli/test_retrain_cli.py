"""``autopeft study retrain`` against a real ``autopeft serve``: the chosen trial, the whole training file, dev."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

import autopeft
from autopeft.cli import main
from tests.worker.e2e import env, server, study_body, tiny_dir, tiny_encoder  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
GLUE = tiny_encoder.FIXTURE_GLUE
CONFIGS = [
    {"bitfit": {}},
    {"lora": {"rank": 2}},
    {"serial_adapter": {"size": 8}},
]
METRICS = [0.55, 0.6, 0.7]  # the largest configuration scores best: a budget changes the answer


def _claim(api: httpx.Client) -> dict:
    deadline = time.monotonic() + 120
    while (r := api.post("/trials/claim", json={"worker_id": "w"})).status_code != 200:
        assert r.status_code == 204 and time.monotonic() < deadline, r.text
        time.sleep(0.2)
    return r.json()


def _study(api: httpx.Client, model: Path) -> tuple[int, dict[int, dict]]:
    """A study whose three trials (the baselines) are reported done with METRICS; number -> trial."""
    body = study_body(model, max_trials=3, baselines=[{"config": c} for c in CONFIGS])
    body["task"] = {"name": "rte", "data_dir": str(GLUE)}
    body["training"] = {"max_steps": 3, "batch_size": 8, "max_length": 32, "learning_rate": 0.01, "seed": 5}
    study = api.post("/studies", json=body)
    assert study.status_code == 201, study.text
    for _ in CONFIGS:
        trial = _claim(api)
        count = autopeft.count(trial["config"], model)
        report = {"lease_token": trial["lease"]["token"], "metric": METRICS[trial["number"]],
                  "peft_params": count.peft_params, "param_fraction": count.param_fraction}
        assert api.post(f"/trials/{trial['id']}/complete", json=report).status_code == 200
    trials = api.get(f"/studies/{study.json()['id']}/trials").json()["data"]
    return study.json()["id"], {t["number"]: t for t in trials}


def test_retrain_best_number_and_budgeted_trials(tiny_dir, env, tmp_path, capsys, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("AUTOPEFT_CACHE_DIR", env["AUTOPEFT_CACHE_DIR"])
    train_rows = len((GLUE / "RTE" / "train.tsv").read_text(encoding="utf-8").strip().splitlines()) - 1
    with server(str(tmp_path / "s.db"), env, tmp_path) as s:
        api = httpx.Client(base_url=f"{s.url}/api/v1", timeout=60)
        study_id, trials = _study(api, tiny_dir)
        common = ["--server", s.url, "--no-progress", "--json"]

        out = tmp_path / "best"
        assert main(["study", "retrain", str(study_id), "--trial", "best", "--save", str(out), "--seeds", "2", *common]) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["trial"] == 2 and body["config"] == trials[2]["config"] and body["seeds"] == [5, 6]
        assert json.loads((out / "summary.json").read_text())["dev"] == body["dev"] and len(body["dev"]) == 2
        for seed in (5, 6):
            info = json.loads((out / f"seed-{seed}" / "trained.json").read_text())
            assert info["config"] == trials[2]["config"] and info["training"]["seed"] == seed
            assert info["result"]["train_examples"] == train_rows  # the whole file: no search split
            assert info["result"]["metrics"]["dev"][info["result"]["metric_name"]] in body["dev"]
        loaded = autopeft.load(out / "seed-5")
        assert loaded.handle.config.to_json() == trials[2]["config"]

        smallest = min(trials.values(), key=lambda t: t["param_fraction"])
        assert smallest["number"] != 2  # so that the budget changes the answer
        under = smallest["param_fraction"] * 1.01
        assert main(["study", "retrain", str(study_id), "--trial", "best", "--max-param-fraction", str(under),
                     "--save", str(tmp_path / "small"), *common]) == 0
        assert json.loads(capsys.readouterr().out)["trial"] == smallest["number"]
        assert main(["study", "retrain", str(study_id), "--trial", "0", "--save", str(tmp_path / "zero"), *common]) == 0
        assert json.loads(capsys.readouterr().out)["config"] == trials[0]["config"]

        for bad, message in (
            (["--trial", "9"], "has no trial #9"),
            (["--trial", "best", "--max-param-fraction", "1e-9"], "no front point with param_fraction <= 1e-09"),
            (["--trial", "x"], "--trial must be a trial number or best"),
        ):
            assert main(["study", "retrain", str(study_id), *bad, "--save", str(tmp_path / "bad"), *common]) == 2
            err = capsys.readouterr().err.strip()
            assert message in err and "\n" not in err
        assert not (tmp_path / "bad").exists()
