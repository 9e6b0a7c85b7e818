"""Settings: the one place that reads the environment (prefix BRAMLEY_)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
    # Emit "" instead of null for unassigned user / never-seen timestamps (the real API's legacy habit).
    legacy_empty_strings: bool = False

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bramley.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
