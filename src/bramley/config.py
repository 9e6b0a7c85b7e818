"""Settings: the one place that reads the environment (prefix BRAMLEY_)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRAMLEY_", extra="ignore")

    data_dir: Path = Path("./bramley-data")
    database_url: str | None = None
    redis_url: str | None = None
    log_format: str = "text"

    # Per-tenant limits; Iru documents 10,000/hour and its gateway enforces 50/second.
    rate_limit_per_second: int = Field(50, ge=1)
    rate_limit_per_hour: int = Field(10_000, ge=1)
    rate_limit_enabled: bool = True

    # Anything larger than this is refused before parsing (413), so a huge body never reaches the DB.
    max_body_bytes: int = 1_048_576
    # Base URL devices and profiles use (https://mdm.example.com); default: the request's own scheme and host.
    public_url: str | None = None
    # Header a TLS-terminating proxy puts the client certificate in (e.g. Client-Cert); unset = not trusted.
    client_cert_header: str | None = None
    # GET /mdm/t/<sub>/enroll wants a one-time enrollment code (`bramley mdm enroll-code`) unless this is on.
    open_enrollment: bool = False
    # PEM certificate (chain after the leaf) and key that sign enrollment profiles; unset = profiles unsigned.
    enroll_signing_cert: Path | None = None
    enroll_signing_key: Path | None = None
    # How long finished command outcomes stay in history before compaction.
    command_history_days: int = 30

    # Emit "" instead of null for unassigned user / never-seen timestamps (the real API's legacy habit).
    legacy_empty_strings: bool = False
    # Master key for secrets at rest: base64 of 32 random bytes. Unset: <data_dir>/master.key (created 0600).
    # SecretStr keeps it out of reprs and logs; read it with .get_secret_value().
    secret_key: SecretStr | None = None

    # Background jobs. `bramley serve` turns run_worker on (unless set); apps built elsewhere (tests) leave it off.
    run_worker: bool = False
    worker_concurrency: int = Field(2, ge=1)  # batches one worker runs side by side
    worker_batch_size: int = Field(500, ge=1)  # jobs claimed per round
    worker_poll_seconds: float = Field(1.0, gt=0)
    worker_lease_seconds: float = Field(120.0, gt=0)  # a claim older than this is taken again
    jobs_dead_retention_days: int = Field(7, ge=0)

    # APNs: Apple's production host unless pointed at a mock (or api.development.push.apple.com).
    apns_url: str = "https://api.push.apple.com"
    apns_ca_file: Path | None = None  # extra CA to trust for apns_url (a TLS mock, a corporate proxy)
    apns_concurrency: int = Field(8, ge=1)  # pushes in flight per topic
    apns_timeout_seconds: float = Field(10.0, gt=0)
    apns_expiration_seconds: int = Field(3600, ge=0)  # apns-expiration: APNs keeps the push this long

    # Apple's device enrollment (ADE/DEP) API, unless pointed at a fake; and how often each token syncs.
    ade_url: str = "https://mdmenrollment.apple.com"
    ade_sync_interval_seconds: float = Field(900.0, ge=60)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bramley.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
