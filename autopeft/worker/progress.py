"""The training loop's evaluation hook on a worker: each evaluation goes to the server, which answers
whether the trial goes on (the study's early-stopping rule; see :mod:`autopeft.early_stopping`).

Only the server's explicit ``continue: false`` stops a trial. A report that does not arrive (the
server is away, answers 5xx, or refuses it as malformed) never does: training goes on and the next
evaluation reports again. A lease the server says is gone stops the trial the way a lost heartbeat
does (the worker drops it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from autopeft.client import LeaseLost, ServerClient

log = logging.getLogger("autopeft.worker")


class ProgressReporter:
    """``on_evaluation(step, metric, total_steps) -> go on`` for one trial held under ``token``."""

    def __init__(
        self,
        client: ServerClient,
        trial_id: int,
        token: str,
        lost: threading.Event,
        on_stop: Callable[[], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.client, self.trial_id, self.token, self.lost = client, trial_id, token, lost
        #: Called with the server's words when it refuses the lease (else :attr:`lost` is set directly).
        self.on_lost = on_lost
        #: Called when the server stops the trial (the worker halts its heartbeats: the lease is over).
        self.on_stop = on_stop
        #: The server's reason when it stopped the trial; None while it goes on.
        self.stopped_because: str | None = None
        #: Evaluations whose report did not arrive.
        self.missed = 0

    def __call__(self, step: int, metric: float, total_steps: int) -> bool:
        try:
            answer = self.client.progress(self.trial_id, self.token, step, metric, total_steps)
        except LeaseLost as err:  # the loop's should_stop ends the trial at its next step
            if self.on_lost is not None:
                self.on_lost(str(err))
            else:
                log.warning("trial %s: lease lost (%s); stopping it", self.trial_id, err)
                self.lost.set()
            return True
        except Exception as err:  # an outage, a 5xx, a refusal: never a reason to stop training
            self.missed += 1
            log.warning(
                "trial %s: progress at step %d not delivered (%s); training goes on", self.trial_id, step, err
            )
            return True
        if answer.get("continue", True) is False:
            self.stopped_because = str(answer.get("reason") or "stopped by the study's early-stopping rule")
            if self.on_stop is not None:
                self.on_stop()
            return False
        return True
