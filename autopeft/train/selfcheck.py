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

from autopeft.config import parse_config
from autopeft.encoder import load_model, resolve_model_dir
from autopeft.errors import AutoPeftError
from autopeft.handle import inject, trained_whole
from autopeft.modules import FAMILIES
from autopeft.shape import shape_of


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
    """Inject each family (by default every registered one the model supports) into ``model`` on
    ``device``, run one forward and backward pass on a tiny batch, and report what failed."""
    base = load_model(resolve_model_dir(model), 2).eval()
    if families is None:
        unsupported = shape_of(base).unsupported
        families = [name for name in FAMILIES if name not in unsupported]
    out = []
    for family in families:
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
    settings = dict(FAMILIES[family].check_settings)
    if "targets" in settings:  # every target name there is: keep the ones this architecture has
        present = shape_of(base).linear_shapes
        settings["targets"] = [t for t in settings["targets"] if t in present]
    config = parse_config({family: settings})
    model = copy.deepcopy(base)
    stand_in = FAMILIES[family].prepare_for_check(config.families()[family], model, trained_whole(model, config))
    model.to(device)
    handle = inject(model, config, prepared={family: stand_in} if stand_in is not None else None)
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
