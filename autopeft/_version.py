"""The package's version, in one place (pyproject reads it; ``autopeft.__version__`` hands it on)."""

__version__ = "0.1.0"
