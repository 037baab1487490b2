"""``autopeft serve-model OUT`` (issue 30): an exported model behind ``POST /predict``, batched, no database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from autopeft.cli import main
from autopeft.train import save_trained, train_trial
from tests.train.conftest import tiny_encoder

pytest.importorskip("onnxruntime")

SETTINGS = {"max_steps": 4, "batch_size": 16, "learning_rate": 3e-2, "max_length": 32, "eval_every": 4}
PAIRS = [["the cat sat on the mat", "a cat was sitting"], ["stocks fell sharply", "markets rose"], ["he said", "it"]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """A saved trial of a mixed configuration on a tiny BERT (RTE: text pairs), and its ONNX export."""
    tmp = tmp_path_factory.mktemp("serve-model")
    model_dir = tiny_encoder.build_tiny_encoder(tmp / "tiny")
    config = {"serial_adapter": {"size": 4}, "prefix": {"length": 2}, "lora": {"rank": 2}}
    trained = train_trial("rte", model_dir, config, SETTINGS, data_dir=tiny_encoder.FIXTURE_GLUE)
    saved = save_trained(trained, tmp / "saved")
    assert main(["export", str(saved), "--to", "onnx", str(tmp / "onnx")]) == 0
    return saved, tmp / "onnx"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expected(onnx_dir: Path, rows: list) -> tuple[list, list]:
    from autopeft.onnx_model import OnnxModel

    return OnnxModel.load(onnx_dir).predict(rows)


def test_serve_model_answers_predict_and_stops(exported) -> None:
    """The command as a user runs it: start it, query it (concurrently: rows are batched), stop it."""
    _, onnx_dir = exported
    port = _free_port()
    cmd = [sys.executable, "-m", "autopeft", "serve-model", str(onnx_dir), "--port", str(port), "--max-wait-ms", "50"]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve-model did not start within 60 s"
                time.sleep(0.2)
        assert health.json()["model"]["kind"] == "onnx" and health.json()["model"]["pairs"] is True

        r = httpx.post(f"{url}/predict", json={"pairs": PAIRS}, timeout=30)
        assert r.status_code == 200, r.text
        labels, scores = _expected(onnx_dir, PAIRS)
        assert r.json()["labels"] == labels
        assert r.json()["scores"] == pytest.approx(scores, abs=1e-5)
        assert all(label in ("entailment", "not_entailment") for label in r.json()["labels"])

        with ThreadPoolExecutor(8) as pool:  # eight requests at once: their rows share batches
            answers = list(pool.map(lambda row: httpx.post(f"{url}/predict", json={"pairs": [row]}, timeout=30),
                                    PAIRS * 3))  # fmt: skip
        assert [a.json()["labels"][0] for a in answers] == labels * 3
        assert max(httpx.get(f"{url}/health").json()["last_batches"]) > 1

        bad = httpx.post(f"{url}/predict", json={"texts": []}, timeout=10)
        assert bad.status_code == 422
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(10)
    assert server.returncode is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)


def test_serving_a_saved_trial_gives_the_onnx_answers(exported) -> None:
    """A folder of `train --save` serves too (autopeft's own model on torch), with the same labels and scores."""
    from autopeft.api.model_serving import create_model_app, load_predictor

    saved, onnx_dir = exported
    app = create_model_app(load_predictor(saved), batch_size=2)
    with TestClient(app) as client:
        r = client.post("/predict", json={"pairs": PAIRS})
        assert r.status_code == 200, r.text
        labels, scores = _expected(onnx_dir, PAIRS)
        assert r.json()["labels"] == labels and r.json()["scores"] == pytest.approx(scores, abs=1e-4)
        assert client.get("/health").json()["model"]["kind"] == "autopeft"
        assert client.get("/health").json()["last_batches"] == [2, 1]  # three rows in batches of two


@pytest.mark.parametrize(
    "body, message",
    [
        ({"texts": ["a"], "pairs": [["a", "b"]]}, "send either 'texts'"),
        ({}, "send either 'texts'"),
        ({"pairs": [["only one"]]}, "at least 2 items"),
        ({"texts": "not a list"}, "valid list"),
        ({"rows": ["a"]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_requests_are_422_saying_what_is_wrong(exported, body, message) -> None:
    from autopeft.api.model_serving import create_model_app, load_predictor

    app = create_model_app(load_predictor(exported[1]))
    with TestClient(app) as client:
        r = client.post("/predict", json=body)
        assert r.status_code == 422 and message in r.text, r.text


def test_a_folder_that_is_no_model_is_one_line(tmp_path, capsys) -> None:
    assert main(["serve-model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autopeft serve-model: error: ") and "not a saved autopeft trial" in err
    assert err.count("\n") == 1


def test_serve_model_is_a_registered_command() -> None:
    done = subprocess.run([sys.executable, "-m", "autopeft", "--help"], capture_output=True, text=True, timeout=60,
                          env={**os.environ})  # fmt: skip
    assert "serve-model" in done.stdout
