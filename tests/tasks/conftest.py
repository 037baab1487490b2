"""Fixtures for task tests: the same as the trial tests' (a tiny BERT with a tokenizer, the
fixture GLUE samples, an isolated cache, one torch thread)."""

from tests.train.conftest import _session_cache, glue_dir, isolated_cache, one_thread, tiny_dir, tiny_encoder

__all__ = ["_session_cache", "glue_dir", "isolated_cache", "one_thread", "tiny_dir", "tiny_encoder"]
