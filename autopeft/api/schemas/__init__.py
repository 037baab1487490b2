"""Pydantic v2 schemas, one module per resource: ``XCreate`` (request), ``XPublic`` (response), ``XsPublic`` (page)."""
