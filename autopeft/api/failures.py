"""Failed trials grouped by cause, and when a study should pause instead of burning its budget.

A broken environment (a library release a family does not support, a missing data file on
every worker) fails every trial the same way. Grouping failures by their error's last line,
with numbers masked (tensor sizes, row numbers and trial ids differ from trial to trial),
shows the cause at a glance; the same cause failing trials again and again pauses the study.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from autopeft.trial_state import TrialState

#: Pause when this many finished trials in a row failed with the same cause ...
PAUSE_STREAK = 5
#: ... or when one cause failed more than half of the last this many finished trials.
PAUSE_WINDOW = 10
_NUMBER = re.compile(r"\d+(\.\d+)?")
MAX_LINE = 300


def one_line(error: str | None) -> str:
    """The line of an error that says what went wrong: a traceback's last non-empty line."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    line = lines[-1] if lines else "(no error message)"
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def cause(error: str | None) -> str:
    """The key failures are grouped by: :func:`one_line` with every number masked."""
    return _NUMBER.sub("#", one_line(error))


@dataclass(frozen=True)
class FailedTrial:
    """What grouping needs of a failed trial."""

    id: int
    number: int
    error: str | None
    worker_id: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class FailureGroup:
    """Trials that failed the same way: the first one's message stands for all."""

    error: str
    count: int
    first_trial_id: int
    first_trial_number: int
    worker_id: str | None
    last_at: datetime | None


def group_failures(failed: Iterable[FailedTrial]) -> list[FailureGroup]:
    """Failed trials grouped by :func:`cause`, most frequent first (then the earliest first)."""
    groups: dict[str, list[FailedTrial]] = {}
    for trial in sorted(failed, key=lambda t: t.id):
        groups.setdefault(cause(trial.error), []).append(trial)
    out = [
        FailureGroup(
            error=one_line(members[0].error),
            count=len(members),
            first_trial_id=members[0].id,
            first_trial_number=members[0].number,
            worker_id=members[0].worker_id,
            last_at=max((t.finished_at for t in members if t.finished_at), default=None),
        )
        for members in groups.values()
    ]
    return sorted(out, key=lambda g: (-g.count, g.first_trial_id))


def pause_reason(recent: Sequence[tuple[str, str | None]]) -> str | None:
    """Why a study should pause, given its finished trials newest first as ``(state, error)``; None: it should not.

    Pauses when the last :data:`PAUSE_STREAK` finished trials failed with one cause, or when one
    cause failed more than half of the last :data:`PAUSE_WINDOW`.
    """
    window = list(recent[:PAUSE_WINDOW])
    causes = [cause(error) if state == TrialState.FAILED else None for state, error in window]
    streak = causes[:PAUSE_STREAK]
    if len(streak) == PAUSE_STREAK and streak[0] is not None and len(set(streak)) == 1:
        first = next(error for state, error in window if state == TrialState.FAILED)
        return f"the last {PAUSE_STREAK} trials failed with: {one_line(first)}"
    counted = [c for c in causes if c is not None]
    for key in dict.fromkeys(counted):
        n = counted.count(key)
        if n > PAUSE_WINDOW // 2:
            first = next(error for (state, error), c in zip(window, causes, strict=True) if c == key)
            return f"{n} of the last {len(window)} trials failed with: {one_line(first)}"
    return None
