"""Exporting a saved trial for use without autopeft: an HF ``peft`` adapter, a plain ``transformers`` model,
or an ONNX graph (:mod:`autopeft.export_onnx`: every configuration, onnxruntime and tokenizers to serve it).

* :func:`export_peft` writes ``adapter_config.json`` and ``adapter_model.safetensors`` for a
  configuration HF peft can represent: LoRA (DoRA included), (IA)³ or prefix tuning, one of them
  (peft gives one adapter one method), plus LoRA with BitFit (peft's ``bias="all"``). The task head
  goes in as ``modules_to_save``. ``PeftModel.from_pretrained(base, OUT)`` computes what autopeft
  computed (prefix tuning: on decoders, with one length in every layer). Each family peft also has
  writes its own part (:meth:`autopeft.modules.base.Family.peft_adapter`); this module names none.
* :func:`export_merged` folds the configuration into the backbone's own weights (LoRA and DoRA,
  (IA)³, BitFit, FISH, full fine-tuning) and writes a model directory that
  ``AutoModelForSequenceClassification.from_pretrained`` loads, tokenizer and label names included.

Anything else is refused with :class:`~autopeft.errors.ExportError`, saying why. The files are
written without importing peft: its format is a JSON config and a safetensors file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from autopeft.encoder import bundled_model_dir
from autopeft.errors import ExportError
from autopeft.modules.registry import FAMILIES
from autopeft.peft_format import ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX, PROMPT_PREFIX, head_modules
from autopeft.saving import write_dir

if TYPE_CHECKING:
    from torch import nn

    from autopeft.handle import PeftHandle
    from autopeft.modules.base import Family
    from autopeft.train.saved import TrainedModel

Target = Literal["peft", "merged", "onnx"]
TARGETS: tuple[str, ...] = ("peft", "merged", "onnx")


def export_trained(
    trained_dir: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    **load: Any,
) -> Path:
    """Load the saved trial ``trained_dir`` (:func:`autopeft.train.load_trained`) and export it ``to``
    ``peft``, ``merged`` or ``onnx`` (:mod:`autopeft.export_onnx`; ``quantize="int8"`` there only) into the
    new directory ``out``; ``load`` goes to ``load_trained`` (``model=``)."""
    from autopeft.saving import check_save_path
    from autopeft.train.saved import load_trained

    if to not in TARGETS:
        raise ExportError(f"unknown export target {to!r} (use {', '.join(TARGETS)})")
    if quantize is not None and to != "onnx":
        raise ExportError(f"--quantize applies to --to onnx, not to {to}")
    path = check_save_path(out)
    if to == "onnx":
        from autopeft.export_onnx import export_onnx
        from autopeft.extras import require

        require("export", "autopeft export --to onnx")
        return export_onnx(load_trained(trained_dir, **load), path, quantize)
    trained = load_trained(trained_dir, **load)
    reason = refusal(trained.handle, to)
    if reason is not None:
        summary = trained.handle.config.summary(trained.handle.shape.n_layers)
        raise ExportError(f"cannot export {summary} to {to}: {reason}")
    writer = export_peft if to == "peft" else export_merged
    return writer(trained, path)


def refusal(handle: PeftHandle, to: str) -> str | None:
    """Why ``handle``'s configuration cannot be exported ``to`` peft or merged (None: it can)."""
    families = handle.config.families()
    if to == "merged":
        for name in families:
            if FAMILIES[name].unfoldable is not None:
                return f"{name} cannot fold into the weights: {FAMILIES[name].unfoldable}"
        return None
    return _peft_family(handle)[1]


# -- merged -----------------------------------------------------------------------------------------
def fold_into_weights(model: nn.Module) -> nn.Module:
    """Fold every injected module of ``model`` into the weights it wraps, in place: FISH deltas first,
    then the wrappers from the inside out (an (IA)³ scaling around a LoRA layer folds after it)."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module):
            for attr in list(module.parametrizations):
                parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
    for name, module in reversed(list(model.named_modules())):
        folded = getattr(module, "folded", None)
        if name and callable(folded):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, folded())
    if hasattr(model, "_autopeft_injected"):
        del model._autopeft_injected
    return model


def export_merged(trained: TrainedModel, out: Path) -> Path:
    """A plain ``transformers`` model directory with the configuration folded into the weights."""
    reason = refusal(trained.handle, "merged")
    if reason is not None:
        raise ExportError(reason)
    model = fold_into_weights(trained.model).cpu()
    _check_plain(model, trained)
    if trained.labels is not None:
        model.config.id2label = dict(enumerate(trained.labels))
        model.config.label2id = {label: i for i, label in enumerate(trained.labels)}

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        if trained.tokenizer is not None:  # a save from Python on a weights-only base has none
            trained.tokenizer.save_pretrained(str(tmp))

    return write_dir(out, write)


def _check_plain(model: nn.Module, trained: TrainedModel) -> None:
    """After folding, the model must have exactly the parameters of the base architecture."""
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        fresh = AutoModelForSequenceClassification.from_config(model.config)
    expected, got = set(fresh.state_dict()), set(model.state_dict())
    if expected != got:
        extra = sorted(got - expected)[:3] or sorted(expected - got)[:3]
        raise ExportError(f"the folded model does not match its architecture (first differences: {extra})")


# -- peft -------------------------------------------------------------------------------------------
def _peft_family(handle: PeftHandle) -> tuple[Family[Any] | None, str | None]:
    """The family whose peft adapter carries ``handle``'s configuration, or why there is none."""
    names = set(handle.config.families())
    carriers = [FAMILIES[n] for n in names if FAMILIES[n].peft_type is not None]
    riders = {n for family in carriers for n in family.peft_companions}
    missing = sorted(n for n in names if FAMILIES[n].peft_type is None and n not in riders)
    if missing:
        return None, f"HF peft has no {', '.join(missing)}"
    if len(carriers) != 1:
        return None, f"a peft adapter holds one method, and this configuration combines {', '.join(sorted(names))}"
    return carriers[0], carriers[0].peft_refusal(handle.config.families(), handle.layout, handle.shape)


def export_peft(trained: TrainedModel, out: Path) -> Path:
    """An HF peft adapter directory: ``adapter_config.json`` and ``adapter_model.safetensors``."""
    from safetensors.torch import save_file

    handle = trained.handle
    family, reason = _peft_family(handle)
    if family is None or reason is not None:
        raise ExportError(reason or "no family of this configuration exports to peft")
    config, tensors = family.peft_adapter(handle.config.families(), handle.layout, handle.shape)
    head = head_modules(handle.layout)
    config |= {
        "task_type": "SEQ_CLS",
        "base_model_name_or_path": _base_path(trained),
        "inference_mode": True,
        "modules_to_save": head,
    }
    prefix = PROMPT_PREFIX if family.peft_prompt else PEFT_PREFIX
    for name, p in handle.layout.head_named_parameters():  # peft stores a module_to_save under its own name
        tensors[f"{prefix}{name}"] = p
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    return write_dir(out, write)


def _base_path(trained: TrainedModel) -> str:
    model = trained.info.get("model")
    return str(model) if model else str(bundled_model_dir())
