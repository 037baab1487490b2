"""A thread that keeps a trial's lease alive while it trains."""

from __future__ import annotations

import logging
import threading

from autopeft.client import LeaseLost, ServerClient, Unauthorized

log = logging.getLogger("autopeft.worker")


class Heartbeat(threading.Thread):
    """Sends a heartbeat every ``interval`` seconds; sets :attr:`lost` when the lease is gone."""

    def __init__(self, client: ServerClient, trial_id: int, token: str, interval: float) -> None:
        super().__init__(name=f"heartbeat-{trial_id}", daemon=True)
        self.client, self.trial_id, self.token = client, trial_id, token
        self.interval = max(0.1, interval)
        self.lost = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.client.heartbeat(self.trial_id, self.token)
            except (LeaseLost, Unauthorized) as err:
                log.warning("trial %s: lease lost (%s); stopping it", self.trial_id, err)
                self.lost.set()
                return
            except Exception as err:  # the server may be away for a while; the lease may still hold
                log.warning("trial %s: heartbeat failed (%s); will retry", self.trial_id, err)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
