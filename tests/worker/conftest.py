"""The end-to-end tests' fixtures (defined in e2e.py, beside their helpers)."""

from tests.worker.e2e import env, pg_url, tiny_dir  # noqa: F401 (fixtures)
