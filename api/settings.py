"""How the API runs: paths, limits and switches, from ``CDP_*`` environment variables.

The API shares ``CDP_HOME`` with the pipeline (it reads ``serving/`` and the keys file, writes
``audit/``); everything else is prefixed ``CDP_API_`` so it never collides with the platform's
own settings.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from privacy.keys import PrivacyKeySettings


class ApiSettings(BaseSettings, PrivacyKeySettings):
    """Settings read once by ``create_app`` (or ``cdp serve``) and passed inward."""

    model_config = SettingsConfigDict(env_prefix="CDP_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".cdp"), description="CDP_HOME: serving/, audit/, keys")
    config: Path | None = Field(
        default=None,
        description="CDP_CONFIG: the cdp.yml whose `decisions:` policy the API serves; default "
        "CDP_HOME/cdp.yml (a missing file means the default policy)",
    )
    api_host: str = Field(default="127.0.0.1", description="interface `cdp serve` binds")
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=2, ge=1, le=64, description="uvicorn worker processes")
    api_keys_file: Path | None = Field(
        default=None, description="hashed API keys (YAML); default CDP_HOME/api_keys.yml"
    )
    api_audit_dir: Path | None = Field(
        default=None, description="PII read audit log folder; default CDP_HOME/audit"
    )
    api_enable_introspection: bool = Field(
        default=False, description="allow GraphQL introspection (schema discovery)"
    )
    api_enable_graphiql: bool = Field(default=False, description="serve GraphiQL on /graphql")
    api_max_depth: int = Field(default=8, ge=2, description="deepest selection allowed")
    api_max_tokens: int = Field(default=2_000, ge=50, description="largest document, in tokens")
    api_max_aliases: int = Field(default=15, ge=1, description="most aliases in one document")
    api_max_selections: int = Field(
        default=1_000, ge=10, description="most field selections in a document, fragments expanded"
    )
    api_max_repeated_fields: int = Field(
        default=10, ge=1, description="most times one response name repeats in a selection set"
    )
    api_max_nodes: int = Field(
        default=100_000,
        ge=100,
        description="budget of an operation's estimated nodes (page sizes multiplied by path)",
    )
    api_max_response_bytes: int = Field(
        default=8 * 1024 * 1024, ge=64 * 1024, description="largest JSON response sent"
    )
    api_operation_timeout_seconds: float = Field(
        default=3.0, gt=0, le=300, description="time limit of one operation"
    )
    api_default_page_size: int = Field(default=50, ge=1)
    api_max_page_size: int = Field(default=500, ge=1, description="largest `first` accepted")
    api_secret_file: Path | None = Field(
        default=None,
        description="secret for identifier tokens and cursors; default CDP_HOME/secrets/api_secret",
    )
    api_metrics_public: bool = Field(
        default=False,
        description="serve /metrics without a key (only behind a network you control)",
    )
    api_snapshot_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often serving/CURRENT is checked"
    )

    api_now: datetime | None = Field(
        default=None,
        description="CDP_API_NOW: decide as if now were this instant (UTC when no offset is "
        "given); for demos and tests over a world whose as-of date is in the past",
    )

    @property
    def config_path(self) -> Path:
        """The cdp.yml holding the decision policy."""
        return self.config if self.config is not None else self.home / "cdp.yml"

    @property
    def decisions_dir(self) -> Path:
        """The decision log (decisions.sqlite) and the assignment key."""
        return self.home / "decisions"

    @property
    def serving_dir(self) -> Path:
        """Published snapshots and the CURRENT pointer."""
        return self.home / "serving"

    @property
    def keys_path(self) -> Path:
        """The API keys file."""
        return self.api_keys_file if self.api_keys_file is not None else self.home / "api_keys.yml"

    @property
    def secret_path(self) -> Path:
        """The installation secret behind identifier tokens and sealed cursors."""
        if self.api_secret_file is not None:
            return self.api_secret_file
        return self.home / "secrets" / "api_secret"

    @property
    def write_keys_path(self) -> Path:
        """The event intake's write keys (hashed), one per source."""
        return self.home / "write_keys.yml"

    @property
    def event_log_path(self) -> Path:
        """The event log the intake appends to."""
        return self.home / "events" / "log.sqlite"

    @property
    def audit_dir(self) -> Path:
        """Where PII reads are logged as JSON lines."""
        return self.api_audit_dir if self.api_audit_dir is not None else self.home / "audit"
