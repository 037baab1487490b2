"""Server settings, read once from the environment (prefix ``AUTOPEFT_``) or given to
:func:`autopeft.api.main.create_app`."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from autopeft.migrations.engine import default_database_url

#: Host names a server always answers to: a page can only send them from the machine itself.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class Settings(BaseSettings):
    """Everything the server can be told; each field is also ``AUTOPEFT_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AUTOPEFT_", extra="ignore", frozen=True)

    database_url: str = Field(default_factory=default_database_url, description="SQLAlchemy URL or SQLite file path.")
    api_key: SecretStr | None = Field(None, description="When set, every request but /api/v1/health needs it.")
    migrate_on_start: bool = Field(True, description="Bring the schema up to date when the app starts.")

    # leases and retries (a study may override lease_seconds and max_retries)
    lease_seconds: float = Field(120.0, gt=0, le=86_400, description="Default lease of a claimed trial.")
    max_retries: int = Field(2, ge=0, le=100, description="Default expired leases a trial survives before it fails.")
    sweep_interval_s: float = Field(5.0, gt=0, description="How often expired leases are looked for.")

    # claiming
    retry_after_s: int = Field(1, ge=1, description="Retry-After of a 204 while a study is still proposing.")
    idle_retry_after_s: int = Field(10, ge=1, description="Retry-After of a 204 when no study has work coming.")
    claim_wait_s: float = Field(1.0, ge=0, le=30, description="Longest a claim waits for a proposal in flight.")
    worker_window_s: float = Field(120.0, gt=0, description="A worker counts as active this long after a claim.")

    # proposals
    proposer_enabled: bool = Field(
        True,
        description="Run the proposer in a thread of this process (`autopeft serve` runs it in a process of its own).",
    )
    proposer_threads: int = Field(
        2, ge=1, le=16, description="Space-filling rounds (sobol, random, a study's first trials) run at the same time."
    )
    proposal_processes: int = Field(
        2, ge=1, le=16, description="Model-based rounds (gp, saas, tpe) run at the same time, each in a process."
    )
    proposal_budget_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Longest one model-based round may take; past it the round's process is ended and that round "
        "comes from sobol.",
    )
    study_proposal_budget_s: float = Field(
        600.0,
        gt=0,
        description="Model-based proposing time one study may use per study_budget_window_s; past it, its rounds come "
        "from sobol until its use falls under it.",
    )
    study_budget_window_s: float = Field(1800.0, gt=0, description="The window of study_proposal_budget_s.")
    proposer_tick_s: float = Field(0.1, gt=0, description="Longest pause between looks at the queues.")
    proposal_lock_s: float = Field(900.0, gt=0, description="A proposer's lock on a study expires after this.")
    max_queue: int = Field(512, ge=1, description="Most queued trials a study keeps.")
    proposal_error_backoff_s: float = Field(30.0, ge=0, description="Pause before proposing again after an error.")
    torch_threads: int = Field(1, ge=1, le=64, description="torch.set_num_threads in the server.")
    gil_switch_interval_s: float = Field(
        0.001, gt=0, le=0.1, description="sys.setswitchinterval: short, so a proposal round cannot stall requests."
    )

    # database
    pool_size: int = Field(
        16, ge=1, description="Connections kept per server process: threadpool_size plus the proposer's."
    )
    max_overflow: int = Field(8, ge=0, description="Extra connections under load.")
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0, description="How long SQLite waits for a write lock.")
    threadpool_size: int = Field(
        12, ge=1, description="Threads serving database work per process (each waits on the database most of the time)."
    )

    # what the server reads, and who may talk to it (docs/server.md, "Security model")
    model_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Folders the server reads model configs under (`serve --models`; several joined by the path "
        "separator in the environment); the bundled model is always readable.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Host header values answered (`serve --allowed-hosts`, comma-separated in the environment; "
        "'*' answers any); others get 400.",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, le=600, description="A connection that has not sent a request's headers within this is closed."
    )
    max_connections: int = Field(
        1000, ge=1, description="Open connections per server process; more are answered 503 and closed at once."
    )

    # requests and logs
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger request bodies get 413.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = Field(True, description="One log line per request.")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, v: object) -> object:
        return None if v in ("", None) else v

    @field_validator("model_roots", mode="before")
    @classmethod
    def _split_paths(cls, v: object) -> object:
        return [p for p in v.split(os.pathsep) if p] if isinstance(v, str) else v

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: object) -> object:
        return [h.strip() for h in v.split(",") if h.strip()] if isinstance(v, str) else v

    @property
    def model_folders(self) -> tuple[Path, ...]:
        """The real folders the server reads models under: the bundled model's and ``model_roots``."""
        from autopeft.confine import real_roots
        from autopeft.encoder import bundled_model_dir

        return tuple(dict.fromkeys(real_roots([bundled_model_dir(), *self.model_roots])))

    @property
    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment (cached: read once per process)."""
    return Settings()
