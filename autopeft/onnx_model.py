"""Running a folder written by ``autopeft export --to onnx`` with onnxruntime and tokenizers only (no torch).

>>> model = OnnxModel.load("exported/")
>>> labels, scores = model.predict([("A man is eating.", "Someone eats.")])  # a label and its probability a row

The tokenizer is ``tokenizer.json`` read by the ``tokenizers`` library, truncated at the maximum length the
configuration was trained with and padded to the longest text of a batch, as ``autopeft predict`` does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autopeft.errors import ModelError

ONNX_INFO = "autopeft_onnx.json"
FORMAT = "autopeft-onnx"

Text = str | tuple[str, str] | list[str]


@dataclass
class OnnxModel:
    """An exported graph with its tokenizer and label names."""

    session: Any
    tokenizer: Any
    info: dict[str, Any]

    @classmethod
    def load(cls, folder: str | Path, *, threads: int | None = None) -> OnnxModel:
        """Open an exported folder; ``threads``: onnxruntime's intra-op threads (default: its own choice)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder).expanduser()
        info = read_onnx_info(folder)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(folder / info["graph"]), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(int(info["max_length"]))
        tokenizer.enable_padding(
            direction=info.get("padding_side") or "right", pad_id=int(info["pad_id"]), pad_token=info["pad_token"] or ""
        )
        return cls(session, tokenizer, info)

    @property
    def labels(self) -> list[str] | None:
        return self.info.get("labels")

    @property
    def is_regression(self) -> bool:
        return self.info["problem_type"] == "regression"

    def encode(self, texts: Sequence[Text]) -> dict[str, np.ndarray]:
        """The graph's inputs for single texts or ``(text_a, text_b)`` pairs (one batch)."""
        rows = [_row(t, self.info["pairs"]) for t in texts]
        encodings = self.tokenizer.encode_batch(rows)
        fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        return {
            name: np.asarray([getattr(e, fields[name]) for e in encodings], dtype=np.int64)
            for name in self.info["inputs"]
        }

    def logits(self, texts: Sequence[Text], batch_size: int = 64) -> np.ndarray:
        """``n x num_labels`` float32 logits."""
        parts = [
            self.session.run([self.info["output"]], self.encode(texts[i : i + batch_size]))[0]
            for i in range(0, len(texts), batch_size)
        ]
        width = 1 if self.is_regression else len(self.labels or [0])
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, width), dtype=np.float32)

    def predict(self, texts: Sequence[Text], batch_size: int = 64) -> tuple[list[str | float], list[float]]:
        """Label names (or regression outputs) and their scores: the softmax probability of the label (the
        output itself for a regression)."""
        return decode_logits(self.logits(texts, batch_size), self.labels, self.is_regression)


def decode_logits(logits: np.ndarray, labels: list[str] | None, regression: bool) -> tuple[list[Any], list[float]]:
    """Labels and their probabilities (softmax) from ``n x k`` logits; a regression's output twice."""
    if regression:
        values = [float(v) for v in logits[:, 0]]
        return list(values), values
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = shifted / shifted.sum(axis=-1, keepdims=True)
    best = probs.argmax(axis=-1)
    return [labels[int(i)] for i in best], [float(probs[n, i]) for n, i in enumerate(best)]


def _row(text: Text, pairs: bool) -> str | tuple[str, str]:
    if isinstance(text, str):
        return (text, "") if pairs else text
    if len(text) not in (1, 2) or not all(isinstance(t, str) for t in text):
        raise ModelError(f"a row is a text or a pair of texts, got {text!r:.80}")
    if not pairs:
        if len(text) == 2:
            raise ModelError("this model takes single texts, got a pair")
        return text[0]
    return (text[0], text[1] if len(text) == 2 else "")


def read_onnx_info(folder: Path) -> dict[str, Any]:
    """The export's description, or a one-line :class:`ModelError` when ``folder`` is not an ONNX export."""
    path = folder / ONNX_INFO
    if not path.is_file():
        raise ModelError(f"{str(folder)!r} is not an autopeft ONNX export (no {ONNX_INFO})")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read {str(path)!r}: {err}") from None
    if info.get("format") != FORMAT:
        raise ModelError(f"{str(path)!r} has format {info.get('format')!r}, not {FORMAT!r}")
    return info
