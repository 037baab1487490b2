"""How a benchmark command runs: a deadline from ``--time-limit``, one exit code per outcome, and
progress lines. Phases save what they measured as they go, so the same command continues a run."""

from __future__ import annotations

import datetime
import signal
import time
from collections.abc import Callable


class ExperimentError(RuntimeError):
    """A phase could not finish (the message says why and where the logs are)."""


class Unfinished(Exception):
    """``--time-limit`` was reached; running the same command again continues."""


class Terminated(Exception):
    """The command got SIGTERM: raised in its main thread so that every ``finally`` runs (the
    workers give their trials back, the server stops) instead of the process dying around them."""


def say(line: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {line}", flush=True)


def past(deadline: float | None) -> bool:
    """Whether the deadline (a ``time.monotonic()`` value, or none) has passed."""
    return deadline is not None and time.monotonic() > deadline


def _terminated(signum: int, frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


def exit_code(work: Callable[[float | None], object], time_limit: float | None) -> int:
    """A benchmark command's exit code: run ``work`` with its deadline (``time_limit`` minutes from now,
    or none); 0 when it ends, 3 when the time limit stopped it cleanly (the same command continues),
    1 on an :class:`ExperimentError`, said on one line; 143 on SIGTERM and 130 on Ctrl-C, after the
    server and workers it started have stopped."""
    deadline = time.monotonic() + 60 * time_limit if time_limit else None
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        work(deadline)
    except Unfinished as err:
        limit = f" of {time_limit:g} min" if time_limit else ""
        say(f"time limit{limit} reached ({err}): run the same command again to continue")
        return 3
    except ExperimentError as err:
        say(f"error: {err}")
        return 1
    except (Terminated, KeyboardInterrupt) as err:
        say(f"stopped ({err or 'SIGINT'}); its server and workers are stopped: run the same command again to continue")
        return 143 if isinstance(err, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
