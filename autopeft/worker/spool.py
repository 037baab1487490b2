"""Finished results wait here on disk until the server has them.

A worker writes each report before sending it and deletes it once the server
answered (accepted, or refused because the lease is gone). A worker that is killed
while the server is away sends its spooled reports when it starts again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def default_spool_dir() -> Path:
    base = os.environ.get("AUTOPEFT_CACHE_DIR") or os.path.join(Path.home(), ".cache", "autopeft")
    return Path(base) / "spool"


class Spool:
    """One folder per server URL; one JSON file per pending report."""

    def __init__(self, server_url: str, root: Path | None = None) -> None:
        digest = hashlib.sha256(server_url.encode()).hexdigest()[:16]
        self.dir = (root or default_spool_dir()) / digest
        self.dir.mkdir(parents=True, exist_ok=True)

    def put(self, trial_id: int, kind: str, body: dict[str, Any]) -> Path:
        path = self.dir / f"{trial_id}-{body['lease_token']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"trial_id": trial_id, "kind": kind, "body": body}))
        tmp.replace(path)  # atomic: a crash leaves the old file or the new one, never half of one
        return path

    def pending(self) -> list[tuple[Path, dict[str, Any]]]:
        out = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                out.append((path, json.loads(path.read_text())))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # unreadable: nothing we could send
        return out

    @staticmethod
    def done(path: Path) -> None:
        path.unlink(missing_ok=True)
