"""One model-based proposal round in a process of its own, so that it can be abandoned.

A round that overruns its time budget, or whose study stops while it runs, is ended by terminating
its process (SIGTERM, then SIGKILL), which is then reaped: nothing of it stays, and no thread of the
server is left computing. Processes come from a fork server that imported the optimiser once
(torch, botorch), so starting one costs a fork, not seconds of imports. The round's inputs go in
pickled; its proposals and the study's updated :class:`~autopeft.optimize.OptimizerState` come back
the same way (a fitted model that does not pickle is left behind: the next round fits again).
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

#: What the fork server imports once, so that each round's process starts with the optimiser loaded.
PRELOAD = [
    "autopeft.api.proposal_process",
    "autopeft.optimize.engine",
    "autopeft.optimize.methods.bayesian",
    "autopeft.optimize.gp",
    "autopeft.optimize.saas",
    "autopeft.optimize.acquisition",
    "autopeft.optimize.discrete",
]
#: How often a running round looks at its deadline and whether it was cancelled.
POLL_S = 0.05
#: Seconds a terminated process gets to exit before SIGKILL.
TERM_GRACE_S = 2.0
#: The niceness a round's process adds to its own: requests and space-filling rounds go first on a busy CPU.
NICE = 10

_context_lock = threading.Lock()
_context: Any = None


class RoundAbandoned(Exception):
    """The round's process was ended before it answered (``reason``: ``overrun`` or ``cancelled``)."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(f"{reason} after {seconds:.1f} s")
        self.reason, self.seconds = reason, seconds


@dataclass(frozen=True)
class RoundResult:
    """What a round's process sent back: its proposals, the study's optimiser state after it, and its time."""

    proposals: list[Any]
    state: Any
    seconds: float


def context() -> Any:
    """The fork-server context (its server starts with the first process, or :func:`start`)."""
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context = ctx
        return _context


def start() -> None:
    """Start the fork server now (its imports take seconds), so the first round does not wait for them."""
    from multiprocessing import forkserver

    context()
    forkserver.ensure_running()


def run_round(
    kwargs: dict[str, Any],
    budget_s: float,
    cancelled: Callable[[], bool],
    started: Callable[[int], None] = lambda pid: None,
) -> RoundResult:
    """``autopeft.optimize.propose(**kwargs)`` in a process of its own, ended after ``budget_s`` seconds or as
    soon as ``cancelled()`` (asked every :data:`POLL_S`) is true: then :class:`RoundAbandoned`. An error of
    the optimiser is raised here as it was raised there. ``started`` gets the process id."""
    ctx = context()
    payload = pickle.dumps(kwargs)
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(writer, payload), name="autopeft-proposal", daemon=True)
    t0 = time.monotonic()
    proc.start()
    writer.close()
    try:
        started(proc.pid)
        while not reader.poll(POLL_S):
            seconds = time.monotonic() - t0
            if not proc.is_alive() and not reader.poll(0):
                raise RuntimeError(f"the proposal's process died (exit code {proc.exitcode})")
            if seconds > budget_s:
                raise RoundAbandoned("overrun", seconds)
            if cancelled():
                raise RoundAbandoned("cancelled", seconds)
        try:
            ok, value = pickle.loads(reader.recv_bytes())
        except EOFError:
            raise RuntimeError(f"the proposal's process died (exit code {proc.exitcode})") from None
        if not ok:
            raise value
        proposals, state = value
        return RoundResult(proposals, state, time.monotonic() - t0)
    finally:
        reader.close()
        end(proc)


def end(proc: Any) -> None:
    """Terminate ``proc`` if it still runs, and reap it (SIGKILL after :data:`TERM_GRACE_S`)."""
    if proc.is_alive():
        proc.terminate()
        proc.join(TERM_GRACE_S)
        if proc.is_alive():
            proc.kill()
    proc.join()
    proc.close()


def _child(writer: Connection, payload: bytes) -> None:
    """The round's process: propose, send the result (or the error) back, exit."""
    import os
    import signal

    from autopeft.api.lifeline import die_with_parent
    from autopeft.optimize import propose

    # its parent is the fork server, which ends with the process that started it (the server's proposer):
    # a round never outlives the server, however the server ends
    die_with_parent(os.getppid(), signal.SIGKILL)
    os.nice(NICE)
    kwargs = pickle.loads(payload)
    try:
        out: tuple[bool, Any] = (True, (propose(**kwargs), kwargs.get("state")))
        try:
            data = pickle.dumps(out)
        except Exception:  # noqa: BLE001 - a fitted model that does not pickle stays behind
            state = kwargs.get("state")
            if state is not None:
                state.fitted_model, state.fitted_for = None, None
            data = pickle.dumps(out)
    except Exception as err:  # noqa: BLE001 - the optimiser's error goes back to the server as it is
        try:
            data = pickle.dumps((False, err))
        except Exception:  # noqa: BLE001 - an error that does not pickle goes back as its text
            data = pickle.dumps((False, RuntimeError(f"{type(err).__name__}: {err}")))
    writer.send_bytes(data)
    writer.close()
