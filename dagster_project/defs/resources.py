"""The one Dagster resource every asset takes: where the workspace is and what day it is."""

from datetime import UTC, date, datetime, time
from pathlib import Path

import dagster as dg

from dagster_project.lib.config import LoadedConfig, load_config
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace
from privacy.keys import Keyring


class CdpResource(dg.ConfigurableResource):
    """Workspace paths, the validated cdp.yml and the run's as-of date.

    Assets never read the environment; `cdp run --as-of` and the UI's launchpad set ``as_of``.
    """

    home: str
    config_path: str
    as_of: str | None = None

    @classmethod
    def from_settings(cls, settings: PlatformSettings) -> "CdpResource":
        """Build from pydantic settings, resolving paths so runs do not depend on the cwd."""
        return cls(
            home=str(settings.home.resolve()),
            config_path=str(settings.config_path.resolve()),
            as_of=settings.as_of.isoformat() if settings.as_of else None,
        )

    def workspace(self) -> Workspace:
        """The folders under CDP_HOME, created if needed."""
        return Workspace(Path(self.home)).ensure()

    def loaded_config(self) -> LoadedConfig:
        """cdp.yml, validated (a ConfigError names the file, key and problem)."""
        return load_config(Path(self.config_path))

    def keyring(self) -> Keyring:
        """The privacy keyring (keyed hashes of identifiers), from the settings' secret.

        Not part of the resource's config, which the UI shows: the key is read from
        CDP_PRIVACY_KEY / CDP_PRIVACY_KEY_FILE / CDP_HOME/secrets/privacy_key at use.
        """
        return PlatformSettings(home=Path(self.home)).privacy_keyring(Path(self.home))

    def as_of_date(self) -> date | None:
        """The date the run pretends is today, or None for a normal run."""
        return date.fromisoformat(self.as_of) if self.as_of else None

    def now(self) -> datetime:
        """The run's 'now': the end of the as-of day, else the wall clock (UTC)."""
        as_of = self.as_of_date()
        if as_of is None:
            return datetime.now(UTC)
        return datetime.combine(as_of, time(23, 59, 59, 999999), tzinfo=UTC)
