"""The ``privacy:`` section of cdp.yml: how long event and decision data are kept.

Example::

    privacy:
      retention:
        events_days: 395      # the event log, the live state, the folded real-time lake data
        decisions_days: 395   # the decision log and its lake export

A missing key keeps that data for ever (nothing is removed unless a retention is configured).
Which retentions are too short depends on the rest of cdp.yml (the widest cap window, the
live profile's look-back): :func:`privacy.retention.retention_problems` says so, naming the key,
and the Dagster definitions refuse to load with such a configuration.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionSettings(_Strict):
    """Days of data kept, counted back from now (or ``--as-of``); None keeps everything."""

    events_days: StrictInt | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="events received longer ago are removed from the log, live state and lake",
    )
    decisions_days: StrictInt | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="decisions whose period ended longer ago leave the decision log and export",
    )


class PrivacyConfig(_Strict):
    """The whole ``privacy:`` section; every key has a working default."""

    retention: RetentionSettings = Field(default_factory=RetentionSettings)
