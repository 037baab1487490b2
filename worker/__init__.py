"""The worker: claim a trial, train it with :mod:`autopeft.train`, report, repeat.

>>> from worker import ServerClient, Worker
>>> Worker(ServerClient("http://server:8000", api_key="..."), device="cuda:0").run()
"""

from worker.client import LeaseLost, ServerClient, Unauthorized
from worker.loop import Worker

__all__ = ["LeaseLost", "ServerClient", "Unauthorized", "Worker"]
