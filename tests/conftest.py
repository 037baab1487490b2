"""Shared fixtures: tiny random models (encoders and decoders) so tests run in seconds."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist each worker gets one thread: two workers of two threads each on two cores only contend.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


#: The files that take longest (each a minute or more of real processes: servers, workers, the demo, a fresh
#: install), longest first. pytest-xdist hands files out in collection order (--dist loadfile), so these go first
#: and the short files fill in around them; last, one of them would leave the other workers idle at the end.
#: (pyproject's --no-loadscope-reorder keeps this order: xdist would otherwise put the files with most tests first.)
LONGEST_FIRST = (
    "tests/worker/test_end_to_end.py",
    "tests/worker/test_end_to_end_faults.py",
    "tests/worker/test_end_to_end_architectures.py",
    "tests/cli/test_demo_stop_cli.py",
    "tests/test_bare_install.py",
    "tests/worker/test_end_to_end_rules.py",
    "tests/api/test_serve_lifetime.py",
    "tests/cli/test_demo_cli.py",
    "tests/deploy/test_slurm_cluster.py",
    "tests/api/test_api_lifecycle.py",
    "tests/cli/test_retrain_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))


def tiny_config(kind: str = "bert", **overrides):
    """A 3-layer, hidden-32 config of the given architecture (a model type of autopeft.layouts):
    its entry's tiny example, with two labels unless ``overrides`` say otherwise."""
    from autopeft.layouts import ARCHITECTURES

    return ARCHITECTURES[kind].example_config(**{"num_labels": 2, **overrides})


def tiny_model(kind: str = "bert", seed: int = 0, **overrides):
    """A tiny random sequence classifier in eval mode, SDPA attention where the architecture has it."""
    from transformers import AutoModelForSequenceClassification

    from autopeft.encoder import attention_implementation

    torch.manual_seed(seed)
    config = tiny_config(kind, **overrides)
    config._attn_implementation = attention_implementation(config)
    return AutoModelForSequenceClassification.from_config(config).eval()


#: Every architecture autopeft supports, by model type (tests parametrise over these).
ARCHITECTURE_KINDS = [
    "bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2", "modernbert",
    "llama", "mistral", "qwen2", "qwen3",
]  # fmt: skip
#: The decoder LLMs among them.
DECODER_KINDS = ["llama", "mistral", "qwen2", "qwen3"]


#: The architectures whose cells of a matrix run in the fast lane (``pytest -m "not slow"``): one encoder
#: and one decoder. The full suite (the CI command) runs every cell.
FAST_KINDS = ("bert", "llama")

#: gp settings for a cheaper acquisition search than the defaults, in tests of the plumbing (not of the proposals).
FAST_GP = {"raw_samples": 64, "num_restarts": 2, "local_search_steps": 3, "mc_samples": 32}


def lane(values, fast=FAST_KINDS, kind_of=lambda value: value[0] if isinstance(value, tuple) else value) -> list:
    """``values`` as parameters of ``pytest.mark.parametrize``, those of an architecture outside ``fast``
    marked slow (a tuple's architecture is its first item)."""
    return [
        pytest.param(*(v if isinstance(v, tuple) else (v,)), marks=() if kind_of(v) in fast else pytest.mark.slow)
        for v in values
    ]


@pytest.fixture(params=["bert", pytest.param("roberta", marks=pytest.mark.slow)])
def encoder_kind(request) -> str:
    return request.param


@pytest.fixture
def base_model(encoder_kind):
    return tiny_model(encoder_kind)


@pytest.fixture
def model_copy(base_model):
    """A fresh copy of ``base_model`` to inject into (the original stays untouched)."""
    return copy.deepcopy(base_model)


def batch(vocab: int = 120, size: int = 3, length: int = 9, seed: int = 1, pad_id: int = 0):
    """input_ids and attention_mask with some padding in the last row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (size, length), generator=g)
    mask = torch.ones(size, length, dtype=torch.long)
    mask[-1, length - 3 :] = 0
    ids[-1, length - 3 :] = pad_id
    return ids, mask


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random BERT classifier saved as an HF model directory (no tokenizer)."""
    path = tmp_path_factory.mktemp("tiny-bert")
    tiny_model("bert").save_pretrained(path)
    return path
