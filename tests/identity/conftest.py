"""Fixtures of the identity tests: a constructed world, one trained model, one resolution."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.support.identity_data import make_persons, messy_records


@pytest.fixture(scope="session")
def people_world() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """~1,500 records of 800 people across a CRM and a shop, with truth."""
    return messy_records(make_persons(800, seed=11), seed=12)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def trained_model(people_world):
    """One real Splink model trained on the constructed world, shared by the session."""
    from identity import ModelSettings, normalize_records, train_model

    records, _, _ = people_world
    return train_model(normalize_records(records), ModelSettings())


@pytest.fixture(scope="session")
def resolved_people(people_world, trained_model):
    """The constructed world resolved once (rules + the shared model)."""
    from identity import IdentitySettings, resolve

    records, identifiers, _ = people_world
    return resolve(
        records, identifiers, IdentitySettings(), model=trained_model, run_id="run-1", now=NOW
    )
