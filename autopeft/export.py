"""Exporting a saved trial for use without autopeft: an HF ``peft`` adapter, a plain ``transformers`` model,
or an ONNX graph (:mod:`autopeft.export_onnx`: every configuration, onnxruntime and tokenizers to serve it).

* :func:`export_peft` writes ``adapter_config.json`` and ``adapter_model.safetensors`` for a
  configuration HF peft can represent: LoRA (DoRA included), (IA)³ or prefix tuning, one of them
  (peft gives one adapter one method), plus LoRA with BitFit (peft's ``bias="all"``). The task head
  goes in as ``modules_to_save``. ``PeftModel.from_pretrained(base, OUT)`` computes what autopeft
  computed (prefix tuning: on decoders, with one length in every layer; see :data:`PREFIX_POSITIONS`).
* :func:`export_merged` folds the configuration into the backbone's own weights (LoRA and DoRA,
  (IA)³, BitFit, FISH, full fine-tuning) and writes a model directory that
  ``AutoModelForSequenceClassification.from_pretrained`` loads, tokenizer and label names included.

Anything else is refused with :class:`~autopeft.errors.ExportError`, saying why. The files are
written without importing peft: its format is a JSON config and a safetensors file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from autopeft.encoder import bundled_model_dir
from autopeft.errors import ExportError
from autopeft.modules.registry import FAMILIES
from autopeft.saving import write_dir

if TYPE_CHECKING:
    from torch import nn

    from autopeft.handle import PeftHandle
    from autopeft.train.saved import TrainedModel

Target = Literal["peft", "merged", "onnx"]
TARGETS: tuple[str, ...] = ("peft", "merged", "onnx")
#: The prefix of every key in a peft adapter file of a non-prompt-learning method (prompt learning: ``base_model.``).
PEFT_PREFIX = "base_model.model."
PROMPT_PREFIX = "base_model."
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


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
    return _peft_refusal(handle)


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
#: peft's prefix tuning passes the prefix as a key/value cache, and BERT-style embeddings then number
#: the real tokens from the prefix length on; autopeft keeps them at 0..n-1 on encoders. The exported prefix
#: is the same tensor, but the model around it sees other positions: refused rather than silently different.
#: On decoders autopeft numbers them as peft does, and the prefix exports.
PREFIX_POSITIONS = (
    "HF peft's prefix tuning shifts the positions of the real tokens by the prefix length on this "
    "architecture (autopeft does not), so the adapter would compute other logits"
)


def _peft_refusal(handle: PeftHandle) -> str | None:
    names = set(handle.config.families())
    if names in ({"lora"}, {"lora", "bitfit"}):
        if names == {"lora", "bitfit"} and handle.config.families()["bitfit"].layers is not None:
            return "peft trains all biases or none (bias='all'), and this bitfit trains some layers only"
        return None
    if names == {"ia3"}:
        return None
    if names == {"prefix"}:
        if not handle.layout.architecture.is_decoder:
            return PREFIX_POSITIONS
        lengths = handle.config.families()["prefix"].sizes(handle.shape.n_layers)
        if len(lengths) != handle.shape.n_layers or len(set(lengths.values())) > 1:
            return "peft's prefix tuning puts one length in every layer, and this prefix does not"
        return None
    peft_families = {"lora", "ia3", "prefix"}
    missing = sorted(names - peft_families - {"bitfit"})
    if missing:
        return f"HF peft has no {', '.join(missing)}"
    return f"a peft adapter holds one method, and this configuration combines {', '.join(sorted(names))}"


def export_peft(trained: TrainedModel, out: Path) -> Path:
    """An HF peft adapter directory: ``adapter_config.json`` and ``adapter_model.safetensors``."""
    from safetensors.torch import save_file

    handle = trained.handle
    reason = _peft_refusal(handle)
    if reason is not None:
        raise ExportError(reason)
    names = set(handle.config.families())
    builder = _lora_adapter if "lora" in names else _ia3_adapter if "ia3" in names else _prefix_adapter
    config, tensors = builder(handle)
    head = _head_modules(handle)
    config |= {
        "task_type": "SEQ_CLS",
        "base_model_name_or_path": _base_path(trained),
        "inference_mode": True,
        "modules_to_save": head,
    }
    prefix = PROMPT_PREFIX if builder is _prefix_adapter else PEFT_PREFIX
    for name, p in handle.layout.head_named_parameters():  # peft stores a module_to_save under its own name
        tensors[f"{prefix}{name}"] = p
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    return write_dir(out, write)


def _head_modules(handle: PeftHandle) -> list[str]:
    return sorted({name.split(".")[0] for name, _ in handle.layout.head_named_parameters()})


def _base_path(trained: TrainedModel) -> str:
    model = trained.info.get("model")
    return str(model) if model else str(bundled_model_dir())


def _module_regex(handle: PeftHandle, targets: list[str], layers: list[int]) -> str:
    """peft's ``target_modules`` as a regex: these linear layers of these layers (the model's own paths)."""
    arch = handle.layout.architecture
    chosen = "|".join(str(i) for i in layers)
    paths = "|".join(re.escape(arch.linears[t].path) for t in targets)
    return rf".*\.{re.escape(arch.layers)}\.({chosen})\.({paths})$"


def _lora_adapter(handle: PeftHandle) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from autopeft.modules.lora import LoRALinear

    settings = handle.config.families()["lora"]
    ranks = settings.sizes(handle.shape.n_layers)
    first = next(iter(ranks.values()))
    config: dict[str, Any] = {
        "peft_type": "LORA",
        "r": first,
        "lora_alpha": settings.scaling(first) * first,
        "target_modules": _module_regex(handle, settings.targets, list(ranks)),
        "lora_dropout": settings.dropout,
        "use_dora": settings.dora,
        "bias": "all" if "bitfit" in handle.config.families() else "none",
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    arch = handle.layout.architecture
    for layer, rank in ranks.items():
        if rank != first:  # peft matches pattern keys as whole trailing parts of module names
            for target in settings.targets:
                key = f"{arch.layers}.{layer}.{arch.linears[target].path}"
                config["rank_pattern"][key] = rank
                config["alpha_pattern"][key] = settings.scaling(rank) * rank
    tensors: dict[str, torch.Tensor] = {}
    for name, module in handle.model.named_modules():
        if isinstance(module, LoRALinear):
            tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = module.lora_A.weight
            tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = module.lora_B.weight
            if module.magnitude is not None:
                tensors[f"{PEFT_PREFIX}{name}.lora_magnitude_vector"] = module.magnitude
    if config["bias"] == "all":  # peft stores every bias of the model; those bitfit trained are among them
        for name, p in handle.model.named_parameters():
            if name.endswith("bias") and not name.startswith(tuple(f"{h}." for h in _head_modules(handle))):
                tensors[f"{PEFT_PREFIX}{name}"] = p
    return config, tensors


def _ia3_adapter(handle: PeftHandle) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from autopeft.modules.ia3 import INPUT_SCALED, IA3Linear

    settings = handle.config.families()["ia3"]
    layers = settings.layer_set(handle.shape.n_layers)
    targets = settings.targets_for(handle.shape.feed_forward_output)
    input_scaled = [t for t in targets if t in INPUT_SCALED]
    config = {
        "peft_type": "IA3",
        "target_modules": _module_regex(handle, targets, layers),
        "feedforward_modules": _module_regex(handle, input_scaled, layers) if input_scaled else [],
        "init_ia3_weights": True,
    }
    tensors = {}
    for name, module in handle.model.named_modules():
        if isinstance(module, IA3Linear):  # peft keeps (1, in) for feed-forward layers, (out, 1) for the others
            shape = (1, -1) if module.scale_input else (-1, 1)
            tensors[f"{PEFT_PREFIX}{name}.ia3_l"] = module.ia3_l.view(*shape)
    return config, tensors


def _prefix_adapter(handle: PeftHandle) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A decoder's prefix as peft's ``prompt_embeddings``: one row per virtual token, each layer's key then value."""
    bank = handle.layout.backbone.autopeft_prefix
    bank.fold()  # a reparameterised prefix becomes the prefixes it produces
    layers = sorted(bank.lengths)
    rows = torch.cat([bank.kv[str(i)][j] for i in layers for j in (0, 1)], dim=-1)
    config = {
        "peft_type": "PREFIX_TUNING",
        "num_virtual_tokens": bank.lengths[layers[0]],
        "num_layers": len(layers),
        "token_dim": bank.hidden,
        "num_attention_heads": bank.hidden // handle.layout.attention(0).head_dim,
        "num_transformer_submodules": 1,
        "prefix_projection": False,
        "encoder_hidden_size": handle.shape.hidden,
    }
    return config, {"prompt_embeddings": rows}
