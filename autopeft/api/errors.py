"""Errors of the server and its storage; :mod:`autopeft.api.handlers` turns each into one HTTP status.

They extend :class:`autopeft.errors.AutoPeftError` so that one hierarchy covers the product.
"""

from __future__ import annotations

from autopeft.errors import AutoPeftError


class ApiError(AutoPeftError):
    """Base of the server's own errors; ``status`` is the HTTP status it becomes."""

    status: int = 400


class InvalidRequestError(ApiError, ValueError):
    """The request is well-formed JSON but cannot be carried out as asked (422)."""

    status = 422


class NotFoundError(ApiError, LookupError):
    """A study or trial does not exist (404)."""

    status = 404


class ConflictError(ApiError):
    """The request contradicts the stored state: a stale lease, a repeated report that differs (409)."""

    status = 409


class StaleLeaseError(ConflictError):
    """The lease token is not the trial's current one (expired and handed on, or the trial finished)."""


class StorageError(ApiError):
    """The database failed in a way the request cannot fix (503: try again later)."""

    status = 503


class StorageUnavailableError(StorageError):
    """The database is unreachable or busy."""
