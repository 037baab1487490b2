"""``autopeft export --to onnx``: any configuration as one ONNX graph whose onnxruntime logits equal autopeft's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autopeft.cli import main
from autopeft.tasks.files import read_columns
from autopeft.train import load_trained, save_trained, train_trial
from tests.conftest import lane
from tests.train.conftest import tiny_encoder

pytest.importorskip("onnxruntime")

SETTINGS = {"max_steps": 4, "batch_size": 16, "learning_rate": 3e-2, "max_length": 48, "eval_every": 4}

#: One configuration of each family, and mixes of them.
CASES = {
    "serial_adapter": {"serial_adapter": {"size": 4}},
    "adamix": {"serial_adapter": {"size": 4, "experts": 3}},
    "parallel_adapter": {"parallel_adapter": {"size": 4, "layers": [1]}},
    "prefix": {"prefix": {"length": 3}},
    "prefix-reparameterized": {"prefix": {"length": 2, "reparameterize": True, "hidden": 8}},
    "lora": {"lora": {"rank": {"0": 2, "1": 4}, "targets": ["query", "value", "intermediate"]}},
    "dora": {"lora": {"rank": 2, "dora": True}},
    "ia3": {"ia3": {}},
    "bitfit": {"bitfit": {"layers": [0]}},
    "fish": {"fish": {"fraction": 0.02, "samples": 8}},
    "full": {"full": {}},
    "head-only": {},
    "mixed": {
        "serial_adapter": {"size": 4, "experts": 2},
        "parallel_adapter": {"size": 2},
        "prefix": {"length": 2, "layers": [1]},
        "lora": {"rank": 2, "targets": ["key"]},
        "bitfit": {},
        "fish": {"fraction": 0.01, "samples": 8},
    },
}


def _saved(model_dir: Path, glue_dir: Path, tmp_path: Path, config: dict, task: str = "rte", **settings) -> Path:
    trained = train_trial(task, model_dir, config, {**SETTINGS, **settings}, data_dir=glue_dir)
    return save_trained(trained, tmp_path / "saved")


def _dev_rows(saved: Path, glue_dir: Path, folder: str = "RTE") -> tuple[list[tuple[str, ...]], np.ndarray]:
    """The dev rows as the ONNX model takes them, and the logits autopeft predicts for them."""
    ours = load_trained(saved)
    columns = read_columns(ours.task, glue_dir / folder / "dev.tsv", need_label=False)
    texts = list(zip(*(columns[c] for c in ("text_a", "text_b") if c in columns), strict=True))
    return texts, ours.logits(columns)


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_logits_equal_autopeft_predict(name, tiny_dir, glue_dir, tmp_path, capsys) -> None:
    from autopeft.onnx_model import OnnxModel

    saved = _saved(tiny_dir, glue_dir, tmp_path, CASES[name])
    out = tmp_path / "onnx"
    assert main(["export", str(saved), "--to", "onnx", str(out)]) == 0
    assert {"model.onnx", "tokenizer.json", "autopeft_onnx.json"} <= {p.name for p in out.iterdir()}
    info = json.loads((out / "autopeft_onnx.json").read_text())
    assert info["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert info["labels"] == ["entailment", "not_entailment"] and info["pairs"] is True

    texts, expected = _dev_rows(saved, glue_dir)
    model = OnnxModel.load(out)
    got = model.logits(texts, batch_size=7)  # ragged batches: dynamic batch and sequence axes
    assert got.shape == expected.shape == (len(texts), 2)
    assert float(np.abs(got - expected).max()) < 1e-4

    capsys.readouterr()
    assert main(["predict", "--trained", str(saved), "--input", str(glue_dir / "RTE" / "dev.tsv")]) == 0
    predicted = capsys.readouterr().out.split()
    assert model.predict(texts)[0] == predicted


def test_the_graph_needs_only_onnxruntime_and_tokenizers(tiny_dir, glue_dir, tmp_path) -> None:
    """The folder serves without autopeft: a session over model.onnx fed by tokenizers' encodings."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    saved = _saved(tiny_dir, glue_dir, tmp_path, {"serial_adapter": {"size": 4}, "prefix": {"length": 2}})
    out = tmp_path / "onnx"
    assert main(["export", str(saved), "--to", "onnx", str(out)]) == 0
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i.shape == ["batch", "sequence"] for i in session.get_inputs())
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    enc = tok.encode("the cat sat on the mat", "a cat was sitting")
    feed = {
        "input_ids": np.array([enc.ids], dtype=np.int64),
        "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
        "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
    }
    (logits,) = session.run(["logits"], feed)
    expected = load_trained(saved).logits({"text_a": ["the cat sat on the mat"], "text_b": ["a cat was sitting"]})
    assert float(np.abs(logits - expected).max()) < 1e-4


def test_single_text_regression_task(tiny_dir, glue_dir, tmp_path) -> None:
    """A single-text task (SST-2) exports too; its rows are texts, not pairs."""
    from autopeft.onnx_model import OnnxModel

    saved = _saved(tiny_dir, glue_dir, tmp_path, {"lora": {"rank": 2}, "bitfit": {}}, task="sst2")
    out = tmp_path / "onnx"
    assert main(["export", str(saved), "--to", "onnx", str(out)]) == 0
    texts, expected = _dev_rows(saved, glue_dir, "SST-2")
    model = OnnxModel.load(out)
    assert model.info["pairs"] is False
    got = model.logits([t[0] for t in texts])
    assert float(np.abs(got - expected).max()) < 1e-4


def test_int8_quantisation_shrinks_the_graph(tiny_dir, glue_dir, tmp_path) -> None:
    """int8 weights in a smaller graph that still runs; its accuracy on a real model is measured by
    ``python -m benchmarks.onnx_int8`` (a tiny random model's activations are too wide to say much)."""
    from autopeft.onnx_model import OnnxModel

    saved = _saved(tiny_dir, glue_dir, tmp_path, {"parallel_adapter": {"size": 8}}, learning_rate=1e-2)
    assert main(["export", str(saved), "--to", "onnx", str(tmp_path / "fp32")]) == 0
    assert main(["export", str(saved), "--to", "onnx", "--quantize", "int8", str(tmp_path / "int8")]) == 0
    fp32, int8 = OnnxModel.load(tmp_path / "fp32"), OnnxModel.load(tmp_path / "int8")
    assert int8.info["quantize"] == "int8" and fp32.info["quantize"] is None
    ops = {node.op_type for node in __import__("onnx").load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"}
    texts, _ = _dev_rows(saved, glue_dir)
    a, b = fp32.logits(texts), int8.logits(texts)
    assert np.isfinite(b).all() and b.shape == a.shape and float(np.abs(a - b).max()) > 0
    assert (tmp_path / "int8" / "model.onnx").stat().st_size < 0.8 * (tmp_path / "fp32" / "model.onnx").stat().st_size
    assert not [p for p in (tmp_path / "int8").iterdir() if "fp32" in p.name]


def test_quantize_is_refused_for_other_targets(tiny_dir, glue_dir, tmp_path, capsys) -> None:
    saved = _saved(tiny_dir, glue_dir, tmp_path, {"lora": {"rank": 2}})
    capsys.readouterr()
    assert main(["export", str(saved), "--to", "peft", "--quantize", "int8", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "autopeft export: error: --quantize applies to --to onnx, not to peft"
    assert not (tmp_path / "out").exists()


def test_an_exporter_failure_is_one_line_and_leaves_nothing(tiny_dir, glue_dir, tmp_path, capsys, monkeypatch) -> None:
    import torch

    saved = _saved(tiny_dir, glue_dir, tmp_path, {"lora": {"rank": 2}})

    def cannot(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", cannot)
    capsys.readouterr()
    assert main(["export", str(saved), "--to", "onnx", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "autopeft export: error: torch's ONNX exporter cannot export this bert model: "
        "Unsupported: ONNX export of operator foo\n"
    )
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_missing_export_extra_is_one_line(tiny_dir, glue_dir, tmp_path, capsys, monkeypatch) -> None:
    from autopeft import extras

    saved = _saved(tiny_dir, glue_dir, tmp_path, {"lora": {"rank": 2}})
    monkeypatch.setitem(extras.EXTRAS, "export", ("onnx", "no_such_module_onnxruntime"))
    capsys.readouterr()
    assert main(["export", str(saved), "--to", "onnx", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "needs the 'export' extra: pip install 'autopeft[export]'" in err and err.count("\n") == 1


@pytest.mark.slow
def test_the_bundled_minilm_with_the_autopeft_space_families(glue_dir, tmp_path) -> None:
    """The issue's bar: a serial_adapter + parallel_adapter + prefix point on the bundled MiniLM."""
    from autopeft.onnx_model import OnnxModel

    config = {
        "serial_adapter": {"size": 16, "layers": [0, 2, 4, 5]},
        "parallel_adapter": {"size": 8, "layers": [1, 2, 5]},
        "prefix": {"length": 4, "layers": [0, 3, 4]},
    }
    trained = train_trial("rte", None, config, {**SETTINGS, "max_steps": 2, "batch_size": 8}, data_dir=glue_dir)
    saved = save_trained(trained, tmp_path / "saved")
    assert main(["export", str(saved), "--to", "onnx", str(tmp_path / "onnx")]) == 0
    texts, expected = _dev_rows(saved, glue_dir)
    got = OnnxModel.load(tmp_path / "onnx").logits(texts, batch_size=10)
    assert float(np.abs(got - expected).max()) < 1e-4


KINDS = ["roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2", "modernbert", "llama", "mistral", "qwen2", "qwen3"]


@pytest.mark.parametrize("kind", lane(KINDS))
def test_every_architecture_exports_with_equal_logits(kind, glue_dir, tmp_path) -> None:
    """Every supported architecture (BERT above); a refusal, were the exporter to fail on one, is one line
    (test_an_exporter_failure_is_one_line_and_leaves_nothing)."""
    from autopeft.onnx_model import OnnxModel

    model_dir = tiny_encoder.build_tiny_encoder(tmp_path / "model", kind=kind)
    config = {"lora": {"rank": 2}, "parallel_adapter": {"size": 4}}
    if kind != "deberta-v2":  # its disentangled attention takes no prefix
        config["prefix"] = {"length": 2}
    saved = _saved(model_dir, glue_dir, tmp_path, config)
    assert main(["export", str(saved), "--to", "onnx", str(tmp_path / "onnx")]) == 0
    texts, expected = _dev_rows(saved, glue_dir)
    got = OnnxModel.load(tmp_path / "onnx").logits(texts, batch_size=9)
    assert float(np.abs(got - expected).max()) < 1e-4
