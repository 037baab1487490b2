"""Exporting a saved trial to ONNX: one graph, backbone + configuration + task head, that onnxruntime runs.

Whatever the configuration (adapters, prefix, AdaMix with its experts averaged, FISH, LoRA, BitFit, mixes,
full fine-tuning), the model autopeft predicts with is traced as it is by torch's TorchScript ONNX
exporter (``torch.onnx.export(..., dynamo=False)``): the trace follows autopeft's modules and hooks like
any other torch code, so no graph is written by hand. The graph takes ``input_ids``, ``attention_mask``
(and ``token_type_ids`` where the model has them) with dynamic batch and sequence axes, and returns
``logits``.

The folder holds ``model.onnx``, the tokenizer (``tokenizer.json``, for the ``tokenizers`` library) and
:data:`ONNX_INFO` (labels, inputs, maximum length, whether the task takes text pairs), so onnxruntime and
tokenizers suffice to serve it (:mod:`autopeft.onnx_model`). Every export is checked before it is kept:
onnxruntime must give the torch model's logits, within :data:`TOLERANCE`, on two batches of different
sizes and lengths; an architecture the exporter cannot trace, or traces wrongly, is refused in one line.
``quantize="int8"`` applies onnxruntime's dynamic quantisation (int8 weights of the matrix products).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from autopeft.errors import ExportError
from autopeft.saving import write_dir

if TYPE_CHECKING:
    from autopeft.train.saved import TrainedModel

GRAPH = "model.onnx"
ONNX_INFO = "autopeft_onnx.json"
FORMAT, FORMAT_VERSION = "autopeft-onnx", 1
QUANTIZATIONS = ("int8",)
#: Largest difference allowed between onnxruntime's and torch's logits when an export is checked.
TOLERANCE = 1e-4
OPSET = 17
#: Texts the export is checked on: two batches of different sizes and lengths (dynamic axes).
CHECK_TEXTS = (
    [("a short one", "and its pair"), ("a somewhat longer sentence, to make the batch ragged", "short")],
    [("one", "two"), ("three four five", "six"), ("seven eight nine ten eleven twelve", "thirteen fourteen")],
)


class _Logits(torch.nn.Module):
    """The model as a function of named tensors to logits (the graph's one output)."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits


def input_names(trained: TrainedModel) -> list[str]:
    """``input_ids``, ``attention_mask`` and ``token_type_ids`` where the model takes them."""
    import inspect

    params = inspect.signature(trained.model.forward).parameters
    names = ["input_ids", "attention_mask"]
    type_vocab = getattr(trained.model.config, "type_vocab_size", 0) or 0
    if "token_type_ids" in params and type_vocab > 1:
        names.append("token_type_ids")
    return names


def _encode(trained: TrainedModel, pairs: list[tuple[str, str]], names: list[str]) -> dict[str, np.ndarray]:
    """The tokenizer's encoding of ``pairs`` (or their first texts for a single-text task), as int64 arrays."""
    pair = _takes_pairs(trained)
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs] if pair else None
    enc = trained.tokenizer(first, second, padding=True, truncation=True, max_length=trained.max_length)
    return {name: np.asarray(enc[name], dtype=np.int64) for name in names}


def _takes_pairs(trained: TrainedModel) -> bool:
    return trained.task is not None and len(trained.task.text_columns) > 1


def export_onnx(trained: TrainedModel, out: Path, quantize: str | None = None) -> Path:
    """Write ``trained`` as an ONNX folder at ``out`` (new or empty); see the module's docstring."""
    from autopeft.extras import require

    require("export", "autopeft export --to onnx")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantisation {quantize!r} (use {' or '.join(QUANTIZATIONS)})")
    if trained.tokenizer is None or trained.task is None:
        raise ExportError("this save has no task and tokenizer (saved from Python with handle.save); export --to peft")
    model = trained.model.cpu().eval()
    names = input_names(trained)
    model_type = trained.handle.shape.model_type

    def write(tmp: Path) -> None:
        graph = tmp / GRAPH
        _trace(model, names, _encode(trained, CHECK_TEXTS[0], names), graph, model_type)
        _check(model, graph, [_encode(trained, texts, names) for texts in CHECK_TEXTS], model_type)
        if quantize == "int8":
            _quantize_int8(graph)
        trained.tokenizer.save_pretrained(str(tmp))
        if not (tmp / "tokenizer.json").is_file():
            raise ExportError(f"the tokenizer of this {model_type} model has no tokenizer.json (a fast tokenizer)")
        info = _info(trained, names, quantize)
        (tmp / ONNX_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    return write_dir(out, write)


def _trace(model: torch.nn.Module, names: list[str], example: dict[str, np.ndarray], graph: Path, kind: str) -> None:
    import warnings

    args = tuple(torch.from_numpy(example[n]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python values: _check catches what matters
            torch.onnx.export(
                _Logits(model, names).eval(),
                args,
                str(graph),
                dynamo=False,
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=OPSET,
            )
    except Exception as err:  # the exporter raises many types; the first line says what it met
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"torch's ONNX exporter cannot export this {kind} model: {first[:300]}") from None


def _check(model: torch.nn.Module, graph: Path, batches: list[dict[str, np.ndarray]], kind: str) -> None:
    """onnxruntime must compute the torch model's logits on every batch (different sizes: dynamic axes)."""
    session = _session(graph)
    for batch in batches:
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.float().numpy()
        try:
            (got,) = session.run(["logits"], batch)
        except Exception as err:
            first = str(err).strip().splitlines()[0]
            raise ExportError(f"onnxruntime cannot run the graph exported from this {kind} model: {first}") from None
        diff = float(np.abs(got - expected).max())
        if not diff <= TOLERANCE:
            raise ExportError(
                f"the graph exported from this {kind} model computes other logits than torch (max difference "
                f"{diff:.2g} on a batch of {batch['input_ids'].shape}); the exporter does not trace it faithfully"
            )


def _session(graph: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def _quantize_int8(graph: Path) -> None:
    """Replace ``graph`` by its dynamic int8 quantisation (onnxruntime's ``quantize_dynamic``)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = graph.with_name("model.fp32.onnx")
    graph.rename(fp32)
    quantize_dynamic(str(fp32), str(graph), weight_type=QuantType.QInt8)
    fp32.unlink()


def _info(trained: TrainedModel, names: list[str], quantize: str | None) -> dict[str, Any]:
    from autopeft._version import __version__

    tok = trained.tokenizer
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "autopeft": __version__,
        "graph": GRAPH,
        "inputs": names,
        "output": "logits",
        "labels": trained.labels,
        "problem_type": "regression" if trained.is_regression else "single_label_classification",
        "pairs": _takes_pairs(trained),
        "max_length": trained.max_length,
        "pad_id": int(tok.pad_token_id) if tok.pad_token_id is not None else 0,
        "pad_token": tok.pad_token,
        "padding_side": getattr(tok, "padding_side", "right"),
        "quantize": quantize,
        "model_type": trained.handle.shape.model_type,
        "config": trained.handle.config.to_json(),
    }
