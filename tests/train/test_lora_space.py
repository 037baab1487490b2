"""``"space": "lora"``: every configuration a study proposes is one peft method that ``autopeft export --to peft``
writes and ``PeftModel`` loads with autopeft's logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autopeft.cli import main
from autopeft.errors import SpaceError
from autopeft.optimize import Observation, propose
from autopeft.shape import model_shape
from autopeft.space import build_space
from autopeft.train import load_trained, save_trained, train_trial
from tests.train.conftest import tiny_encoder

SETTINGS = {"max_steps": 2, "batch_size": 16, "learning_rate": 5e-2, "max_length": 32, "eval_every": 2}
TEXTS = [("the cat sat on the mat", "a cat was sitting"), ("stocks fell sharply on monday", "markets rose")]


def study_proposals(space, n_sobol: int, n_model: int, seed: int = 0) -> list:
    """What a study proposes: its Sobol design, then the model's proposals after results for the design."""
    first = propose(space, [], [], n_sobol, seed=seed)
    rng = np.random.default_rng(seed)
    done = [Observation(p.x, float(rng.uniform(0.5, 0.9)), float(rng.uniform(0, 0.05))) for p in first]
    later = propose(space, done, [], n_model, seed=seed) if n_model else []
    return [p.config for p in [*first, *later]]


def _peft_logits_equal(model_dir: Path, config: dict, tmp_path: Path, attn: str = "sdpa") -> None:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    trained = train_trial("rte", model_dir, config, SETTINGS, data_dir=tiny_encoder.FIXTURE_GLUE)
    saved = save_trained(trained, tmp_path / "saved")
    out = tmp_path / "peft"
    assert main(["export", str(saved), "--to", "peft", str(out)]) == 0, config
    ours = load_trained(saved)
    first, second = zip(*TEXTS, strict=True)
    inputs = dict(ours.tokenizer(list(first), list(second), padding=True, return_tensors="pt"))
    with torch.no_grad():
        expected = ours.model.eval()(**inputs).logits
        base = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2, attn_implementation=attn)
        got = PeftModel.from_pretrained(base, str(out)).eval()(**inputs).logits
    assert (got - expected).abs().max() < 1e-5, config


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return tiny_encoder.build_tiny_encoder(tmp_path_factory.mktemp("lora-space-bert"), layers=3)


@pytest.mark.slow
def test_twenty_proposals_of_a_lora_study_export_to_peft_with_equal_logits(tiny_bert, tmp_path) -> None:
    pytest.importorskip("peft")
    space = build_space("lora", model_shape(str(tiny_bert)))
    configs = study_proposals(space, 12, 8)
    assert len(configs) == 20 and len({c.key(3) for c in configs}) == 20
    families = [set(c.families()) for c in configs]
    assert all(f in ({"lora"}, {"ia3"}) for f in families)
    assert {"lora"} in families and {"ia3"} in families
    for i, config in enumerate(configs):
        _peft_logits_equal(tiny_bert, config.to_json(), tmp_path / str(i))


def test_lora_proposals_on_a_decoder_export_too(tmp_path) -> None:
    pytest.importorskip("peft")
    model_dir = tiny_encoder.build_tiny_encoder(tmp_path / "llama", kind="llama")
    space = build_space("lora", model_shape(str(model_dir)))
    targets = {t for d in space.dims if d.name == "lora.targets" for v in d.values for t in v}
    assert {"gate", "up", "down"} <= targets
    for i, config in enumerate(study_proposals(space, 5, 0, seed=3)):
        _peft_logits_equal(model_dir, config.to_json(), tmp_path / str(i), attn="eager")


def test_the_lora_space_proposes_one_method_never_an_empty_configuration(tiny_bert) -> None:
    shape = model_shape(str(tiny_bert))
    space = build_space("lora", shape)
    assert [d.name for d in space.dims][:2] == ["family", "lora.rank[g0]"]
    rng = np.random.default_rng(0)
    seen = set()
    for x in rng.random((500, space.d)):
        config = space.decode(x)
        assert len(config.families()) == 1
        seen.add(next(iter(config.families())))
        assert space.decode(space.encode(config)).key(3) == config.key(3)
    assert seen == {"lora", "ia3"}
    off = [d.center(0) for d in space.dims]  # family lora, every rank 0
    assert space.decode(off).to_json() == {"lora": {"rank": 1, "layers": [2], "alpha": 8.0}}
    with pytest.raises(SpaceError, match="one family per configuration"):
        space.encode({"lora": {"rank": 2}, "ia3": {}})


def test_a_user_space_can_ask_for_one_family_but_not_with_fish() -> None:
    from autopeft.space.spec import parse_space_spec

    with pytest.raises(SpaceError, match="one_family"):
        parse_space_spec({"one_family": True, "families": {"lora": {"rank": [0, 4]}, "fish": {"fraction": [0, 0.01]}}})


def test_space_show_lora(capsys) -> None:
    assert main(["space", "show", "lora"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("space 'lora': d = 16 on 6 layers")
    assert "family           2  lora, ia3" in out and "lora.dora" in out and "lora.alpha       4  8, 16, 32, 64" in out
