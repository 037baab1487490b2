"""A tiny random BERT (or any supported architecture) with a real WordPiece tokenizer, saved as an HF model directory.

The vocabulary is built from the fixture GLUE samples (their most common words plus
single characters), so the fixture texts tokenise into mostly known ids and a tiny
model can fit them in a few dozen steps. Shared by tests/tasks, tests/train and
tests/cli, which load it by path with :func:`importlib` (test folders are not packages).
"""

from __future__ import annotations

import csv
import re
import string
from collections import Counter
from pathlib import Path

FIXTURE_GLUE = Path(__file__).resolve().parents[1] / "fixtures" / "glue"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def fixture_texts() -> list[str]:
    """Every text cell of the fixture files (the columns the built-in tasks read)."""
    columns = {"RTE": ("sentence1", "sentence2"), "MRPC": ("#1 String", "#2 String"), "SST-2": ("sentence",)}
    texts = []
    for task, names in columns.items():
        for split in ("train", "dev"):
            with (FIXTURE_GLUE / task / f"{split}.tsv").open(encoding="utf-8-sig", newline="") as f:
                for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                    texts += [row[n] for n in names]
    return texts


def build_vocab(texts: list[str], words: int = 400) -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    counts = Counter(w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower()))
    common = [w for w, _ in counts.most_common(words) if w not in chars]
    return SPECIAL + chars + ["##" + c for c in string.ascii_lowercase + string.digits] + common


def build_tiny_encoder(path: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0, kind: str = "bert") -> Path:
    """Write a random encoder (``kind``: a model type of autopeft.layouts, BERT by default) and a WordPiece
    tokenizer to ``path`` (like the bundled MiniLM, without a head)."""
    import torch
    from transformers import AutoModel, BertConfig, BertModel, BertTokenizer

    vocab = build_vocab(fixture_texts())
    tokenizer = BertTokenizer(vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    if kind != "bert":
        AutoModel.from_config(_other_config(kind, len(vocab), layers, hidden)).save_pretrained(path)
        return path
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=160,
        hidden_dropout_prob=0.0,  # full-batch steps then descend smoothly: "loss goes down" is a sharp test
        attention_probs_dropout_prob=0.0,
        initializer_range=0.2,  # random features diverse enough for a frozen backbone to be adapted
    )
    BertModel(config).save_pretrained(path)
    return path


def _other_config(kind: str, vocab: int, layers: int, hidden: int):
    """The architecture's tiny example resized like the BERT above, with the tokenizer's special ids."""
    from autopeft.layouts import ARCHITECTURES

    arch = ARCHITECTURES[kind]
    sizes = {"vocab_size": vocab, "max_position_embeddings": 160, "initializer_range": 0.2, "pad_token_id": 0}
    if kind == "distilbert":
        sizes |= {"n_layers": layers, "dim": hidden, "hidden_dim": 2 * hidden}
    else:
        sizes |= {"num_hidden_layers": layers, "hidden_size": hidden, "intermediate_size": 2 * hidden}
    if kind == "electra":
        sizes["embedding_size"] = hidden
    return arch.example_config(**sizes)
