"""``autopeft params``, ``train``, saving and ``predict`` on a tiny random model of every architecture;
one-line refusals for a family an architecture cannot run and for an unknown architecture."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from autopeft.cli import main
from autopeft.support import support_matrix
from tests.conftest import ARCHITECTURE_KINDS, DECODER_KINDS

_HELPER = Path(__file__).parents[1] / "train" / "tiny_encoder.py"
_spec = importlib.util.spec_from_file_location("autopeft_tiny_encoder_arch_cli", _HELPER)
tiny_encoder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_encoder)

GLUE = tiny_encoder.FIXTURE_GLUE
QUICK = ["--max-steps", "3", "--batch-size", "16", "--max-length", "32", "--lr", "0.01", "--no-progress"]
KINDS = [k for k in ARCHITECTURE_KINDS if k != "bert"]  # BERT: tests/cli/test_train_cli.py
#: Linears and adapters together: every layout path a trial uses (a decoder's feed-forward output is ``down``).
CONFIG = {"serial_adapter": {"size": 4}, "lora": {"rank": 2, "targets": ["query", "value", "output"]}}


def config_for(kind: str) -> dict:
    from autopeft.layouts import ARCHITECTURES

    arch = ARCHITECTURES[kind]
    return {**CONFIG, "lora": {"rank": 2, "targets": ["query", "value", arch.feed_forward_output]}}


@pytest.fixture(scope="module", params=KINDS)
def arch_dir(request, tmp_path_factory) -> tuple[str, Path]:
    kind = request.param
    return kind, tiny_encoder.build_tiny_encoder(tmp_path_factory.mktemp(f"tiny-{kind}"), kind=kind)


@pytest.fixture(autouse=True)
def quiet_machine(tmp_path_factory, monkeypatch):
    import torch

    monkeypatch.setenv("AUTOPEFT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "autopeft-cache-arch-cli"))
    monkeypatch.delenv("AUTOPEFT_DATA_DIR", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_params_counts_and_refuses_in_one_line(arch_dir, capsys) -> None:
    kind, path = arch_dir
    assert main(["params", "--model", str(path), "--config", json.dumps(config_for(kind)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # rank 2 in 2 layers; query 32 -> 32, value 32 -> 32 (a decoder's 2 of 4 heads: 32 -> 16), the feed-forward
    # output 64 -> 32
    value = 32 + (16 if kind in DECODER_KINDS else 32)
    assert (
        out["by_family"]["lora"] == 2 * 2 * ((32 + 32) + value + (64 + 32)) and out["by_family"]["serial_adapter"] > 0
    )
    for family, reason in support_matrix()[kind].items():
        if reason is None:
            continue
        settings = {"prefix": {"length": 2}, "bitfit": {}}[family]
        assert main(["params", "--model", str(path), "--config", json.dumps({family: settings})]) == 2
        err = capsys.readouterr().err
        assert err == f"autopeft params: error: {family} is not supported on {kind}: {reason}\n"


def test_train_save_and_predict(arch_dir, tmp_path, capsys) -> None:
    kind, path = arch_dir
    out_dir = tmp_path / "trained"
    cmd = [
        "train",
        "--task",
        "rte",
        "--data",
        str(GLUE),
        "--model",
        str(path),
        "--config",
        json.dumps(config_for(kind)),
    ]
    assert main([*cmd, *QUICK, "--save", str(out_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 3 and 0 <= result["metric"] <= 1 and result["peft_params"] > 0
    assert main(["predict", "--trained", str(out_dir), "--input", str(GLUE / "RTE" / "dev.tsv"), "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert len(predictions) == 24 and set(predictions) <= {"entailment", "not_entailment"}


def test_an_unknown_architecture_is_one_line_exit_2(tmp_path, capsys) -> None:
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50).save_pretrained(tmp_path)
    assert main(["params", "--model", str(tmp_path), "--config", '{"lora": {"rank": 2}}']) == 2
    err = capsys.readouterr().err
    supported = "bert, roberta, xlm-roberta, electra, distilbert, deberta-v2, modernbert, llama, mistral, qwen2, qwen3"
    expected = f"unsupported architecture 'gpt2': autopeft supports the model types {supported}"
    assert err == f"autopeft params: error: {expected}\n"


def test_support_prints_the_generated_tables_and_the_docs_hold_them(capsys) -> None:
    from autopeft.support import documented, render

    assert main(["support"]) == 0
    assert capsys.readouterr().out == render() + "\n"
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert documented(doc) == render(), "docs/configuration.md: paste the output of `autopeft support`"
    assert main(["support", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == support_matrix()
