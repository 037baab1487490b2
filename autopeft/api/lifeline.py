"""Processes that ``autopeft serve`` starts end when it ends, however it ends.

``autopeft serve`` starts a proposer process and, with ``--workers N``, N uvicorn processes.
Each child calls :func:`die_with_parent` first thing: Linux then sends it SIGTERM when the
server process dies (``prctl(PR_SET_PDEATHSIG)``; also when the server is killed with
SIGKILL), it checks that the server had not died already (before the request was made),
and a watchdog thread compares ``getppid()`` with the server's pid (systems without prctl,
and a second line of defence). On SIGTERM a child stops gracefully; one that has not
ended :data:`HARD_EXIT_S` seconds later is ended with ``os._exit``. The server itself stops
its children in its shutdown path (SIGTERM or SIGINT to it).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("autopeft.api")

#: The server's pid, for the processes it starts (uvicorn's worker processes read it here).
SERVE_PID_ENV = "AUTOPEFT_SERVE_PID"
#: How long a child may take to stop after its parent died, before it is ended outright.
HARD_EXIT_S = 20.0
#: How often the watchdog looks at the parent.
WATCH_S = 0.5
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """End this process (``sig``, then ``os._exit``) when the process ``parent_pid`` ends."""
    _set_parent_death_signal(sig)
    if os.getppid() != parent_pid:  # it died before we asked: nobody will send the signal
        _parent_gone(parent_pid, sig)
        return
    threading.Thread(target=_watch, args=(parent_pid, sig), name="autopeft-lifeline", daemon=True).start()


def die_with_server() -> None:
    """:func:`die_with_parent` for a process that ``autopeft serve`` started (it set :data:`SERVE_PID_ENV`)."""
    value = os.environ.get(SERVE_PID_ENV)
    if value and value.isdigit() and int(value) != os.getpid():
        die_with_parent(int(value))


def _set_parent_death_signal(sig: int) -> None:
    try:
        prctl = _prctl()
    except OSError as err:  # no libc to load: the watchdog still works
        log.warning("prctl unavailable (%s); relying on the watchdog", err)
        return
    if prctl is not None and prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %s); relying on the watchdog", ctypes.get_errno())


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (None off Linux); OSError where libc cannot be loaded. Looked up among the
    symbols the interpreter has loaded (``ctypes.util.find_library`` would start processes)."""
    if not sys.platform.startswith("linux"):
        return None
    for name in (None, "libc.so.6"):
        try:
            return ctypes.CDLL(name, use_errno=True).prctl
        except (OSError, AttributeError):
            continue
    raise OSError("no libc with prctl")


def ends_with_this_process(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when this process dies, even
    by SIGKILL (``PR_SET_PDEATHSIG``). None where prctl is unavailable. libc is loaded here, in
    the parent, so the forked child only makes the call. Start the child from the main thread:
    Linux sends the signal when the thread that started it ends."""
    try:
        prctl = _prctl()
    except OSError:
        return None
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody will send the signal
            os.kill(os.getpid(), sig)

    return preexec


def _watch(parent_pid: int, sig: int) -> None:
    while os.getppid() == parent_pid:
        threading.Event().wait(WATCH_S)
    _parent_gone(parent_pid, sig)


def _parent_gone(parent_pid: int, sig: int) -> None:
    log.warning("the server process %s is gone; stopping", parent_pid)
    hard_exit_after(HARD_EXIT_S)
    os.kill(os.getpid(), sig)


def hard_exit_after(seconds: float, code: int = 1) -> None:
    """End the process with ``os._exit(code)`` in ``seconds`` unless it has ended by then."""
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.start()
