"""A worker's check of itself: every family injects into this model and trains a step here.

A broken environment (a transformers release a family does not support, a device that
cannot run a family) then shows at start, in seconds, with the family's name, instead of
as a study whose trials fail one after another.

>>> [c for c in check_families(None, device="cpu") if not c.ok]
[]
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from autopeft.encoder import LINEAR_PATHS, load_model, resolve_model_dir
from autopeft.errors import AutoPeftError
from autopeft.modules import FAMILIES, fish_candidates, inject

#: The smallest configuration of each family that still exercises its code paths.
CHECK_SETTINGS: dict[str, dict] = {
    "serial_adapter": {"size": 2, "experts": 2},
    "parallel_adapter": {"size": 2},
    "prefix": {"length": 2},
    "lora": {"rank": 2, "targets": list(LINEAR_PATHS)},
    "bitfit": {},
    "fish": {"fraction": 0.001, "samples": 2},
    "full": {},
}


@dataclass(frozen=True)
class FamilyCheck:
    """How one family fared: ``error`` is one line, None when it trained a step."""

    family: str
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_families(
    model: str | Path | None,
    families: Iterable[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    say: Callable[[FamilyCheck], None] | None = None,
) -> list[FamilyCheck]:
    """Inject each family (all registered ones by default) into ``model`` on ``device``, run one
    forward and backward pass on a tiny batch, and report what failed."""
    base = load_model(resolve_model_dir(model), 2).eval()
    out = []
    for family in families or FAMILIES:
        start = time.perf_counter()
        try:
            _train_one_step(base, family, torch.device(device))
            error = None
        except Exception as err:  # noqa: BLE001 - whatever breaks, the worker must not start
            error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}".rstrip(": ")
        check = FamilyCheck(family, time.perf_counter() - start, error)
        if say is not None:
            say(check)
        out.append(check)
    return out


def _train_one_step(base: torch.nn.Module, family: str, device: torch.device) -> None:
    if family not in CHECK_SETTINGS:
        raise AutoPeftError(f"no self-check configuration for family {family!r}")
    config = {family: CHECK_SETTINGS[family]}
    model = copy.deepcopy(base)
    mask = _fish_mask(model, config) if family == "fish" else None
    model.to(device)
    handle = inject(model, config, fish_mask=mask)
    model.train()
    g = torch.Generator().manual_seed(0)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(min(5, vocab - 1), vocab, (2, 6), generator=g).to(device)
    attention = torch.ones_like(ids)
    attention[1, 4:] = 0
    loss = model(input_ids=ids, attention_mask=attention, labels=torch.tensor([0, 1], device=device)).loss
    if not torch.isfinite(loss):
        raise AutoPeftError(f"the loss is {loss.item()}")
    loss.backward()
    trained = [p for params in handle.peft_parameters().values() for p in params]
    if not trained:
        raise AutoPeftError("it trains no parameters")
    if any(p.grad is None for p in trained):
        raise AutoPeftError("some of its parameters get no gradient")
    if not all(torch.isfinite(p.grad).all() for p in trained):
        raise AutoPeftError("its gradients are not finite")


def _fish_mask(model: torch.nn.Module, config: dict) -> dict[str, torch.Tensor]:
    """A small random mask over the FISH candidates (the real one is estimated from data)."""
    from autopeft.config import parse_config

    g = torch.Generator().manual_seed(0)
    return {
        name: torch.rand(p.shape, generator=g) < 0.001
        for name, p in fish_candidates(model, parse_config(config)).items()
    }
