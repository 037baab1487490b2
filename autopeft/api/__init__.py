"""The autopeft study server: FastAPI routes over SQL storage, with proposals made in the background.

Entry points: :func:`autopeft.api.main.create_app` (the app factory) and ``autopeft serve``.
Layers: ``routes`` (HTTP) -> ``service`` (what an endpoint does) -> ``storage`` (SQL,
immutable records); ``proposer`` calls autopeft.space/optimize; ``handlers`` maps errors.
"""
