"""How the platform runs (paths, dates), as opposed to what the data is (cdp.yml).

Read once at the edge (CLI, Dagster resource construction) and passed inward; library code never
looks at the environment itself.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from privacy.keys import PrivacyKeySettings


class PlatformSettings(BaseSettings, PrivacyKeySettings):
    """Settings from ``CDP_*`` environment variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="CDP_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".cdp"), description="root of everything the platform writes")
    config: Path | None = Field(default=None, description="cdp.yml; default CDP_HOME/cdp.yml")
    as_of: date | None = Field(default=None, description="behave as if today were this date")

    api_audit_dir: Path | None = Field(
        default=None,
        description="CDP_API_AUDIT_DIR: the API's PII audit log folder when moved from "
        "CDP_HOME/audit (erasure rewrites it, so the pipeline must know where it is)",
    )

    @property
    def config_path(self) -> Path:
        """The cdp.yml to read."""
        return self.config if self.config is not None else self.home / "cdp.yml"
