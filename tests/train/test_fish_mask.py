"""FISH and IRD masks: exact size, the right candidates, the right Fisher, caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autopeft.config import parse_config
from autopeft.encoder import load_model
from autopeft.errors import ConfigError
from autopeft.tasks import load_task_data, resolve_task
from autopeft.train import TrialCache, TrialStopped, estimate_fish_mask, run_trial
from autopeft.train import fisher as fisher_module
from autopeft.train import prepare as prepare_module
from autopeft.train.batching import collate
from autopeft.train.evaluate import task_loss
from autopeft.train.trial import reset_head
from tests.modules.test_families import candidates_of

CPU = torch.device("cpu")


@pytest.fixture
def sst2(tiny_dir: Path, glue_dir: Path):
    return load_task_data(resolve_task("sst2", str(glue_dir)), tiny_dir, 32)


@pytest.fixture
def model(tiny_dir: Path):
    m = load_model(tiny_dir, 2)
    reset_head(m, 0)
    return m


def _mask(model, data, fish: dict, bitfit: dict | None = None, seed: int = 0, rows=range(48)):
    body = {"fish": fish} | ({"bitfit": bitfit} if bitfit is not None else {})
    config = parse_config(body)
    return config, estimate_fish_mask(model, config.fish, candidates_of(model, config), data, list(rows), seed=seed, device=CPU)


def _k(model, config) -> int:
    backbone = sum(p.numel() for p in model.bert.parameters())
    return config.fish.mask_size(backbone)


def _selected(mask: dict[str, torch.Tensor]) -> set[tuple[str, int]]:
    return {(n, int(i)) for n, m in mask.items() for i in m.reshape(-1).nonzero().squeeze(1)}


@pytest.mark.parametrize("ird", [False, True])
def test_mask_has_exactly_k_entries_over_backbone_candidates(model, sst2, ird: bool) -> None:
    config, mask = _mask(model, sst2, {"fraction": 0.03, "samples": 16, "ird": ird})
    assert sum(int(m.sum()) for m in mask.values()) == _k(model, config)
    params = dict(model.named_parameters())
    for name, m in mask.items():
        assert name.startswith("bert.") and m.dtype == torch.bool and m.shape == params[name].shape
    assert not any(name.startswith("classifier") for name in mask)


def test_bitfit_biases_are_not_candidates(model, sst2) -> None:
    config, mask = _mask(model, sst2, {"fraction": 0.05, "samples": 8}, bitfit={})
    backbone = {n for n, _ in model.named_parameters() if n.startswith("bert.")}
    bitfit_names = backbone - set(candidates_of(model, config))
    assert bitfit_names and all(n.endswith("bias") for n in bitfit_names)
    assert not set(mask) & bitfit_names
    assert sum(int(m.sum()) for m in mask.values()) == _k(model, config)


def _fisher_by_backward(model, data, rows) -> dict[str, torch.Tensor]:
    """Independent reference: loss.backward() per example into .grad, squared and averaged."""
    candidates = {n: p for n, p in model.named_parameters() if n.startswith("bert.")}
    for p in model.parameters():
        p.requires_grad_(p in set(candidates.values()))
    total = {n: torch.zeros_like(p) for n, p in candidates.items()}
    model.eval()
    for row in rows:
        batch = collate(data.train[[int(row)]], 0)
        model.zero_grad()
        task_loss(model(**{k: v for k, v in batch.items() if k != "labels"}).logits, batch["labels"], False).backward()
        for n, p in candidates.items():
            if p.grad is not None:
                total[n] += p.grad.square()
    return {n: t / len(rows) for n, t in total.items()}


def test_plain_fish_selects_the_top_empirical_fisher(model, sst2) -> None:
    config, mask = _mask(model, sst2, {"fraction": 0.02, "samples": 48})  # every row: the draw does not matter
    reference = _fisher_by_backward(model, sst2, range(48))
    flat = torch.cat([reference[n].reshape(-1) for n in reference])
    chosen = torch.cat([mask.get(n, torch.zeros_like(reference[n], dtype=torch.bool)).reshape(-1) for n in reference])
    assert int(chosen.sum()) == _k(model, config)
    assert flat[chosen].min() >= flat[~chosen].max() * (1 - 1e-5)


def test_ird_differs_from_fish_and_stays_in_the_first_range(model, sst2) -> None:
    fish = {"fraction": 0.02, "samples": 32}
    config, plain = _mask(model, sst2, fish)
    _, ird = _mask(model, sst2, {**fish, "ird": True})
    assert _selected(plain) != _selected(ird)
    # Round 0 keeps the top m_1 entries of the Fisher over all drawn samples; IRD never leaves that range.
    rows = np.random.default_rng(0).choice(np.arange(48), size=32, replace=False)
    reference = _fisher_by_backward(model, sst2, rows)
    flat = torch.cat([reference[n].reshape(-1) for n in reference])
    k, total = _k(model, config), flat.numel()
    m1 = round(total * (k / total) ** (1 / fisher_module.IRD_ROUNDS))
    threshold = torch.topk(flat, m1).values.min()
    offsets = dict(zip(reference, np.cumsum([0] + [t.numel() for t in reference.values()]), strict=False))
    picked = torch.tensor([offsets[n] + i for n, i in _selected(ird)])
    assert flat[picked].min() >= threshold * (1 - 1e-5)


def test_ird_pass_sizes_halve() -> None:
    assert fisher_module._ird_pass_sizes(16) == [16, 8, 4, 2]
    assert fisher_module._ird_pass_sizes(3) == [3, 2, 1, 1]


def test_same_seed_same_mask_other_seed_other_samples(model, sst2) -> None:
    fish = {"fraction": 0.02, "samples": 8}
    _, a = _mask(model, sst2, fish, seed=0)
    _, b = _mask(model, sst2, fish, seed=0)
    _, c = _mask(model, sst2, fish, seed=1)
    assert _selected(a) == _selected(b)
    assert _selected(a) != _selected(c)


def test_too_large_fraction_is_a_config_error(model, sst2) -> None:
    with pytest.raises(ConfigError, match=r"fish.fraction 1 selects .* not already trained by another family"):
        _mask(model, sst2, {"fraction": 1.0, "samples": 2}, bitfit={})


def test_should_stop_interrupts_estimation(model, sst2) -> None:
    calls = []
    with pytest.raises(TrialStopped, match="fish mask"):
        config = parse_config({"fish": {"fraction": 0.01, "samples": 16}})
        estimate_fish_mask(
            model,
            config.fish,
            candidates_of(model, config),
            sst2,
            list(range(48)),
            seed=0,
            device=CPU,
            should_stop=lambda: calls.append(1) or len(calls) > 3,
        )
    assert len(calls) == 4
    assert all(p.requires_grad for p in model.parameters())  # gradient flags restored after the interruption


def test_masks_are_cached_on_disk_between_workers(tiny_dir: Path, glue_dir: Path, monkeypatch) -> None:
    config = {"fish": {"fraction": 0.02, "samples": 8, "ird": True}}
    settings = {"max_steps": 3, "batch_size": 16, "max_length": 32, "learning_rate": 1e-3, "seed": 7}
    first = run_trial("sst2", tiny_dir, config, settings, data_dir=glue_dir, cache=TrialCache())
    assert first.prepare_seconds > 0

    def refuse(*args, **kwargs):
        raise AssertionError("the mask should have come from the cache")

    monkeypatch.setattr(fisher_module, "estimate_fish_mask", refuse)
    again = run_trial("sst2", tiny_dir, config, settings, data_dir=glue_dir, cache=TrialCache())  # a new worker
    assert again.metric == first.metric and again.losses == first.losses
    with pytest.raises(AssertionError, match="from the cache"):  # another fraction is another mask
        run_trial("sst2", tiny_dir, {"fish": {**config["fish"], "fraction": 0.03}}, settings, data_dir=glue_dir)


def test_disk_cache_ignores_a_foreign_key() -> None:
    mask = {"w": torch.tensor([True, False])}
    prepare_module.save_cached_mask("key-a", mask)
    assert torch.equal(prepare_module.load_cached_mask("key-a")["w"], mask["w"])
    assert prepare_module.load_cached_mask("key-b") is None
