"""Fixtures for task tests: a tiny BERT with a tokenizer, the fixture GLUE samples, an isolated cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_HELPER = Path(__file__).parents[1] / "train" / "tiny_encoder.py"
_spec = importlib.util.spec_from_file_location("autopeft_tiny_encoder", _HELPER)
tiny_encoder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_encoder)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tiny_encoder.build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert-tok"))


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    return tiny_encoder.FIXTURE_GLUE


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("autopeft-cache")


@pytest.fixture(autouse=True)
def isolated_cache(_session_cache, monkeypatch) -> Path:
    """Datasets and FISH masks cached under a temporary folder, never in the user's home."""
    monkeypatch.setenv("AUTOPEFT_CACHE_DIR", str(_session_cache))
    monkeypatch.delenv("AUTOPEFT_DATA_DIR", raising=False)
    return _session_cache


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run several times faster on one thread, more so on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
