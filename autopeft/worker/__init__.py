"""The worker: claim a trial, train it with :mod:`autopeft.train`, report, repeat.

>>> from autopeft.client import ServerClient
>>> from autopeft.worker import Worker
>>> Worker(ServerClient("http://server:8000", api_key="..."), device="cuda:0").run()

It talks to the server through :class:`autopeft.client.ServerClient`, the REST client that
``autopeft study`` and the demo use too.
"""

from autopeft.worker.loop import Worker

__all__ = ["Worker"]
