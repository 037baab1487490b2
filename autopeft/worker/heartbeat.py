"""A thread that keeps a trial's lease alive while it trains."""

from __future__ import annotations

import logging
import threading

from autopeft.client import LeaseLost, ServerClient, Unauthorized

log = logging.getLogger("autopeft.worker")


class Heartbeat(threading.Thread):
    """Sends a heartbeat every ``interval`` seconds; sets :attr:`lost` (and :attr:`reason`) when the server
    says the lease is gone.

    A heartbeat that does not arrive (the server or the network is away) is only retried: the lease may
    still hold, and a lease that lapsed meanwhile is given back by the server on the next heartbeat if
    nobody claimed the trial since. Only the server's refusal ends the trial, and its words say why.
    """

    def __init__(self, client: ServerClient, trial_id: int, token: str, interval: float) -> None:
        super().__init__(name=f"heartbeat-{trial_id}", daemon=True)
        self.client, self.trial_id, self.token = client, trial_id, token
        self.interval = max(0.1, interval)
        self.lost = threading.Event()
        #: The server's words when it refused the lease (who holds the trial now, or what became of it).
        self.reason: str | None = None
        self._halt = threading.Event()

    def lose(self, reason: str) -> None:
        """The server refused the lease (said here, by a progress report): the trial stops at its next step."""
        if not self.lost.is_set():
            self.reason = reason
            log.warning("trial %s: lease lost (%s); stopping it", self.trial_id, reason)
            self.lost.set()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.client.heartbeat(self.trial_id, self.token)
            except (LeaseLost, Unauthorized) as err:
                self.lose(str(err))
                return
            except Exception as err:  # the server may be away for a while; the lease may still hold
                log.warning("trial %s: heartbeat failed (%s); will retry", self.trial_id, err)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
