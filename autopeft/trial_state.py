"""The states of a trial, written once: the tables' check constraint, the API's schemas, the counts per
state, storage's queries and the CLI all use :class:`TrialState` (a migration keeps the states of its own
revision written out).

A trial is proposed ``queued``, leased ``running``, and ends ``completed``, ``failed`` or ``stopped`` (by the
study's early-stopping rule); an expired lease puts it back to ``queued``.
"""

from __future__ import annotations

from enum import StrEnum


class TrialState(StrEnum):
    """A trial's state; a ``str``, so it compares, hashes and serialises as its value."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


#: States of a trial that is not over: it is waiting for a worker or held by one.
OPEN_STATES: tuple[TrialState, ...] = (TrialState.QUEUED, TrialState.RUNNING)
#: States of a trial that is over.
FINISHED_STATES: tuple[TrialState, ...] = (TrialState.COMPLETED, TrialState.FAILED, TrialState.STOPPED)
