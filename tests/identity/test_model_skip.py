"""When records carry too few attributes to train the model, identity resolves with
deterministic links alone and says why; what a trained model could not learn reads as advice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from identity import (
    IDENTITY_ATTRIBUTES,
    MODEL_FILE,
    MODEL_SKIPPED,
    MODEL_TRAINED,
    IdentitySettings,
    ModelSettings,
    comparison_training,
    describe_model,
    resolve,
    write_resolution,
)
from identity.diagnostics import LEARNT, NOT_LEARNT, PARTLY_LEARNT
from identity.model import MIN_EM_PAIRS
from identity.pipeline import MIN_RECORDS_FOR_MODEL

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _bare_accounts(count: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """People records that are nothing but an account id, and a cookie per tenth account."""
    uids = [f"shop:A{i}" for i in range(count)]
    cookies = [f"web:cookie:c{i}" for i in range(0, count, 10)]
    records = pd.DataFrame({"record_uid": uids + cookies})
    records["source"] = records["record_uid"].str.split(":").str[0]
    records["record_id"] = records["record_uid"].str.split(":", n=1).str[1]
    identifiers = pd.DataFrame(
        [(uid, "account_id", f"A{i}") for i, uid in enumerate(uids)]
        + [(f"web:cookie:c{i}", "account_id", f"A{i}") for i in range(0, count, 10)]
        + [(f"web:cookie:c{i}", "cookie_id", f"c{i}") for i in range(0, count, 10)],
        columns=["record_uid", "identifier_type", "identifier_value"],
    )
    return records, identifiers


def _named(count: int, prefix: str = "crm") -> pd.DataFrame:
    """People records with a first and last name (enough to compare), all different people."""
    return pd.DataFrame(
        {
            "record_uid": [f"{prefix}:{i}" for i in range(count)],
            "source": prefix,
            "record_id": [str(i) for i in range(count)],
            "first_name": [f"ann{i}" for i in range(count)],
            "last_name": "lee",
        }
    )


def test_identifiers_only_records_resolve_with_deterministic_links_alone() -> None:
    records, identifiers = _bare_accounts(500)
    resolution = resolve(
        records, identifiers, IdentitySettings(), run_id="r1", now=NOW
    )  # no ValueError from training: the model is skipped
    model = resolution.stats["model"]
    assert resolution.model is None
    assert model["status"] == MODEL_SKIPPED and not model["used"]
    assert model["model_ready_records"] == 0
    assert model["skipped"].startswith("only 0 of 550 records have 2 or more of first_name")
    assert f"at least {MIN_RECORDS_FOR_MODEL} are needed" in model["skipped"]
    assert model["attribute_records"]["first_name"] == 0
    line = describe_model(model)
    assert line.startswith("model skipped: only 0 of 550 records")
    assert line.endswith(
        "resolved with deterministic links alone (shared emails, phones and identifiers)"
    )
    # the identifiers still link: each tenth account with its cookie
    owner = resolution.identity_map.set_index("record_uid")["customer_id"]
    assert owner["shop:A10"] == owner["web:cookie:c10"]
    assert resolution.stats["customers"] == 500


def test_a_few_named_records_among_many_bare_ones_do_not_train() -> None:
    bare, identifiers = _bare_accounts(2000)
    records = pd.concat([bare, _named(30)], ignore_index=True)
    resolution = resolve(records, identifiers, IdentitySettings(), run_id="r1", now=NOW)
    model = resolution.stats["model"]
    assert model["status"] == MODEL_SKIPPED and model["model_ready_records"] == 30
    assert model["skipped"].startswith("only 30 of 2,230 records")


def test_training_on_a_sample_counts_the_records_the_sample_would_hold() -> None:
    bare, identifiers = _bare_accounts(4850)
    records = pd.concat(
        [bare, _named(150)], ignore_index=True
    )  # 5,485 records (cookies too), 150 named
    settings = IdentitySettings(model=ModelSettings(training_sample_records=1000))
    resolution = resolve(records, identifiers, settings, run_id="r1", now=NOW)
    model = resolution.stats["model"]
    assert model["status"] == MODEL_SKIPPED
    # 150 would be enough, but a 1,000-record sample of 5,485 would hold about 27 of them
    assert model["skipped"].startswith(
        "about 27 of the 1,000 records sampled for training (of 5,485)"
    )


def test_a_model_that_learnt_nothing_is_not_used() -> None:
    # enough records to compare, but all different people: no blocking key finds the
    # 200 pairs EM needs, so every m value would be Splink's default, not learnt
    resolution = resolve(_named(300), None, IdentitySettings(), run_id="r1", now=NOW)
    model = resolution.stats["model"]
    assert resolution.model is None
    assert model["status"] == MODEL_SKIPPED
    assert model["skipped"].startswith("no comparison could be learnt")
    rows = comparison_training(model["training"], model["attribute_records"])
    assert rows and all(row.status == NOT_LEARNT for row in rows)


def test_a_run_without_a_model_removes_the_previous_runs_model(tmp_path: Path) -> None:
    folder = tmp_path / "identity"
    folder.mkdir()
    (folder / MODEL_FILE).write_text("{}", encoding="utf-8")  # an earlier run's model
    records, identifiers = _bare_accounts(100)
    resolution = resolve(records, identifiers, IdentitySettings(), run_id="r2", now=NOW)
    write_resolution(resolution, folder)
    assert not (folder / MODEL_FILE).exists()


def test_training_diagnostics_say_what_to_do_per_comparison() -> None:
    training = {
        "trained_on_records": 1000,
        "em_sessions": ["em_first_name__last_name"],
        "em_comparable_pairs": {
            "first_name": 900,
            "last_name": 900,
            "birth_date": 12,
            "contact": 0,
        },
        "untrained_comparisons": ["birth_date", "contact"],
        "diagnostics": {
            "levels_not_learnt": [
                {"comparison": "first_name", "level": "Same formal name (nickname)", "why": "x"},
                {"comparison": "birth_date", "level": "Same birth date", "why": "x"},
                {"comparison": "contact", "level": "Same email", "why": "x"},
            ]
        },
    }
    # no contact detail at all; some birth dates, too few pairs of them
    present = dict.fromkeys(IDENTITY_ATTRIBUTES, 0) | {
        "first_name": 1000,
        "last_name": 1000,
        "birth_date": 40,
    }
    rows = {row.comparison: row for row in comparison_training(training, present)}
    assert [rows[n].status for n in ("first_name", "last_name", "birth_date", "contact")] == [
        PARTLY_LEARNT,
        LEARNT,
        NOT_LEARNT,
        NOT_LEARNT,
    ]
    assert rows["last_name"].advice == "learnt from 900 pairs; nothing to do"
    assert "Same formal name (nickname)" in rows["first_name"].advice
    assert "rare in these records" in rows["first_name"].advice
    assert rows["birth_date"].pairs == 12
    assert rows["birth_date"].advice.startswith(
        f"no m learnt: only 12 comparable pairs in the EM sessions ({MIN_EM_PAIRS} needed); "
        "add a source with birth_date"
    )
    assert {"email", "phone", "street_address"} <= set(rows["contact"].attributes)
    assert rows["contact"].advice.startswith("no m learnt: no record has email or phone or ")
    assert "add a source with email or phone or" in rows["contact"].advice
    line = describe_model(
        {"status": MODEL_TRAINED, "used": True, "edges": 7, "match_threshold": 0.99,
         "training": training}
    )  # fmt: skip
    assert line == (
        "model trained on 1,000 records, 2 of 4 comparisons learnt; "
        "7 model link(s) above match probability 0.99"
    )
