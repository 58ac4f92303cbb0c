"""Every store's eraser for one CDP_HOME, in the order an erasure runs them.

Sources before what is derived from them: the landing files, lake and identity outputs first,
then the real-time path (event log, live state, outbox), the warehouse, the serving snapshots,
the decision log, the audit log, exports and run artefacts, and last Dagster's run storage
(scanned only: no asset records personal values there). The CLI, the ``privacy/erasures`` asset,
its check and the benchmark all take their list from here, so a new store is added once.
"""

from __future__ import annotations

from pathlib import Path

from dagster_project.lib.config import load_config
from dagster_project.lib.erasure.lake import LakeEraser
from dagster_project.lib.settings import PlatformSettings
from dagster_project.lib.workspace import Workspace
from privacy.erase_derived import derived_erasers
from privacy.erase_events import EventsEraser
from privacy.stores import Eraser
from privacy.suppression import store_normalizer


def build_erasers(home: Path, config_path: Path) -> list[Eraser]:
    """The erasers of every store under ``home`` (cdp.yml at ``config_path``)."""
    home = Path(home)
    loaded = load_config(Path(config_path))
    normalize = store_normalizer(home)
    audit_dir = PlatformSettings(home=home).api_audit_dir  # CDP_API_AUDIT_DIR, as the API
    return [
        LakeEraser(loaded, Workspace(home), normalize),
        EventsEraser(home, normalize, loaded.config.realtime.identifiers),
        *derived_erasers(home, normalize, audit_dir=audit_dir),
    ]
