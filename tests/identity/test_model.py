"""The Splink identity model: training, prediction, JSON round trip and real-time scoring.

Real Splink training on a constructed world (identity-core's ``messy_records`` normalized by
``normalize_records``) with known truth; no mocks.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest
import splink
from pydantic import ValidationError

from identity import EDGE_COLUMNS, ModelSettings, TrainedModel, normalize_records, train_model
from identity._splink_log import capture_splink
from identity.blocking import COMPARED_COLUMNS
from identity.comparisons import MIN_COMPARED_ATTRIBUTES, comparison_specs
from identity.model import CandidateScorer

SETTINGS = ModelSettings(max_pairs_for_u=200_000, threads=2)
#: For models whose quality a test does not look at: fewer random pairs, faster training.
QUICK = {"max_pairs_for_u": 10_000, "threads": 2}
EVIDENCE = [c for c in COMPARED_COLUMNS if c != "first_name_canonical"]


@pytest.fixture(scope="module")
def world(
    people_world: tuple[pd.DataFrame, pd.DataFrame, pd.Series],
) -> tuple[pd.DataFrame, pd.Series]:
    """~1,450 normalized records of 800 people (households, typos, nicknames) and truth."""
    raw, _, truth = people_world
    return normalize_records(raw), truth


@pytest.fixture(scope="module")
def model(world: tuple[pd.DataFrame, pd.Series]) -> TrainedModel:
    return train_model(world[0], SETTINGS)


@pytest.fixture(scope="module")
def scored(model: TrainedModel, world: tuple[pd.DataFrame, pd.Series]) -> pd.DataFrame:
    """Every blocked pair with its score (threshold 0)."""
    return model.predict(world[0], threshold=0.0)


def _person(record: dict[str, object], uid: str, **values: object) -> dict[str, object]:
    return {**record, "record_uid": uid, "record_id": uid.split(":")[1], **values}


def _pair_truth(edges: pd.DataFrame, truth: pd.Series) -> pd.Series:
    left = truth.loc[edges["record_uid_l"]].to_numpy()
    right = truth.loc[edges["record_uid_r"]].to_numpy()
    return pd.Series(left == right, index=edges.index)


def test_model_separates_duplicates_from_non_matches(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series]
) -> None:
    records, truth = world
    edges = model.predict(records)
    assert list(edges.columns) == list(EDGE_COLUMNS)
    same = _pair_truth(edges, truth)
    kept = truth.loc[records["record_uid"]]
    sizes = kept.value_counts()
    true_pairs = int((sizes * (sizes - 1) // 2).sum())
    precision = same.mean()
    recall = same.sum() / true_pairs
    assert precision >= 0.99, f"precision {precision:.4f}"
    assert recall >= 0.85, f"recall {recall:.4f}"
    assert (edges["record_uid_l"] < edges["record_uid_r"]).all()
    assert (edges["evidence_type"] == "model").all() and (edges["rule"] == "splink").all()
    assert edges["identifier_type"].isna().all()
    assert (edges["match_probability"] >= model.settings.match_threshold).all()
    details = json.loads(edges["details"].iloc[0])
    assert set(details) == {spec.name for spec in comparison_specs()}
    assert {"level", "match_weight"} <= set(details["first_name"])


def test_household_members_and_namesakes_do_not_match(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series]
) -> None:
    records, _ = world
    base = records.iloc[0].to_dict()
    home = {
        "last_name": "kowalczyk",
        "street_address": "12 birch st",
        "postal_code": "02134",
        "city": "boston",
        "phone": "+16175550101",
    }
    extra = [
        # A household: same last name, address and landline; different people.
        _person(
            base,
            "t:h1",
            first_name="anna",
            first_name_canonical="anna",
            birth_date="1961-04-02",
            email="anna.k@example.org",
            **home,
        ),
        _person(
            base,
            "t:h2",
            first_name="piotr",
            first_name_canonical="piotr",
            birth_date="1958-11-23",
            email=None,
            **home,
        ),
        # Two people with a common name in one postal code, different birth dates and contact
        # details.
        _person(
            base,
            "t:n1",
            first_name="james",
            first_name_canonical="james",
            last_name="smith",
            birth_date="1970-01-15",
            email="jsmith70@example.org",
            phone="+13125550111",
            street_address="5 oak ave",
            postal_code="60601",
            city="chicago",
        ),
        _person(
            base,
            "t:n2",
            first_name="james",
            first_name_canonical="james",
            last_name="smith",
            birth_date="1988-07-30",
            email="james.smith88@example.net",
            phone="+12065550177",
            street_address="77 pine rd",
            postal_code="60601",
            city="chicago",
        ),
        # The same namesake again, with a nickname and a typo in the street: a true match.
        _person(
            base,
            "t:n3",
            first_name="jim",
            first_name_canonical="james",
            last_name="smith",
            birth_date="1970-01-15",
            email="jsmith70@example.org",
            phone=None,
            street_address="5 oak av",
            postal_code="60601",
            city="chicago",
        ),
    ]
    frame = pd.concat([records, pd.DataFrame(extra)], ignore_index=True)
    scored = model.predict(frame, threshold=0.0)
    pairs = {
        (left, right): p
        for left, right, p in scored[
            ["record_uid_l", "record_uid_r", "match_probability"]
        ].itertuples(index=False)
    }
    threshold = model.settings.match_threshold
    assert ("t:h1", "t:h2") in pairs, "household members must be compared (blocked)"
    assert pairs[("t:h1", "t:h2")] < threshold
    assert ("t:n1", "t:n2") in pairs, "namesakes in one postal code must be compared"
    assert pairs[("t:n1", "t:n2")] < threshold
    assert pairs[("t:n1", "t:n3")] >= threshold
    assert pairs.get(("t:n2", "t:n3"), 0.0) < threshold


def test_save_and_load_give_identical_predictions(
    model: TrainedModel,
    world: tuple[pd.DataFrame, pd.Series],
    scored: pd.DataFrame,
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs" / "r1" / "identity_model.json"
    model.save(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "cdp.identity.model"
    levels = document["splink"]["comparisons"][0]["comparison_levels"]
    assert any("m_probability" in level and "u_probability" in level for level in levels)
    loaded = TrainedModel.load(path)
    assert loaded.settings == model.settings
    assert loaded.to_json() == model.to_json()
    pd.testing.assert_frame_equal(loaded.predict(world[0], threshold=0.0), scored)


def test_training_is_reproducible(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series]
) -> None:
    again = train_model(world[0], SETTINGS).to_json()
    first = model.to_json()
    for document in (again, first):
        document["training"].pop("seconds")
        document["training"].pop("stage_seconds")
    assert again == first


def test_threshold_is_honoured(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series], scored: pd.DataFrame
) -> None:
    for threshold in (0.5, 0.99, 0.999999):
        edges = model.predict(world[0], threshold=threshold)
        assert (edges["match_probability"] >= threshold).all()
        assert len(edges) == int((scored["match_probability"] >= threshold).sum())
    assert len(scored) > len(model.predict(world[0]))
    with pytest.raises(ValueError, match="threshold"):
        model.predict(world[0], threshold=1.0)
    with pytest.raises(ValidationError):
        ModelSettings(match_threshold=1.5)


def test_absent_columns_are_treated_as_null(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series]
) -> None:
    records, truth = world
    slim = records.drop(
        columns=[
            "phone",
            "street_address",
            "city",
            "first_name_canonical",
            "email_user",
            "email_domain",
            "region",
            "country",
        ]
    )
    edges = model.predict(slim)
    assert len(edges) > 0
    assert _pair_truth(edges, truth).mean() >= 0.99
    for detail in edges["details"].head(20):
        assert json.loads(detail)["contact"]["level"] != "Same phone"
    # A model trained on a small slim frame works too: comparisons EM had too few pairs for
    # keep Splink's default m values and say so.
    small = slim.head(80)
    small_model = train_model(small, ModelSettings(**QUICK))
    assert set(small_model.training["untrained_comparisons"]) == {
        "first_name",
        "last_name",
        "birth_date",
        "contact",
        "identifiers",  # the frame has no person identifiers at all
    }
    assert 0 < small_model.probability_two_random_records_match < 1
    assert list(small_model.predict(small, threshold=0.0).columns) == list(EDGE_COLUMNS)


def test_scorer_reproduces_batch_weights(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series], scored: pd.DataFrame
) -> None:
    records, _ = world
    scorer = model.scorer(records)
    assert isinstance(scorer, CandidateScorer) and len(scorer) == len(records)
    batch = scored.set_index(["record_uid_l", "record_uid_r"])
    compared = 0
    for record in records.sample(100, random_state=3).to_dict("records"):
        uid = record["record_uid"]
        mine = batch[
            (batch.index.get_level_values(0) == uid) | (batch.index.get_level_values(1) == uid)
        ]
        realtime = scorer.score(record).set_index(["record_uid_l", "record_uid_r"])
        assert sorted(realtime.index) == sorted(mine.index)
        assert sorted(scorer.candidates(record)) == sorted(
            {left if right == uid else right for left, right in mine.index}
        )
        joined = realtime.join(mine, rsuffix="_batch")
        assert (
            (joined["match_weight"] - joined["match_weight_batch"]).abs().max() <= 1e-6
            if len(joined)
            else True
        )
        assert (
            (joined["match_probability"] - joined["match_probability_batch"]).abs().max() <= 1e-9
            if len(joined)
            else True
        )
        for mine_detail, batch_detail in zip(
            joined["details"], joined["details_batch"], strict=True
        ):
            a, b = json.loads(mine_detail), json.loads(batch_detail)
            assert {k: v["level"] for k, v in a.items()} == {k: v["level"] for k, v in b.items()}
        compared += len(joined)
    assert compared > 60


def test_scorer_levels_match_splink_sql_on_hard_values(model: TrainedModel) -> None:
    """Every pair of a small crafted frame (accents, scripts, near thresholds, bad dates)."""
    names = [
        ("josé", "garcía"),
        ("jose", "garcia"),
        ("zoë", "brontë"),
        ("ζωή", "παππάς"),
        ("martha", "marhta"),
        ("dwayne", "duane"),
        ("dixon", "dicksonx"),
        ("li", "wu"),
        ("garcia", "jose"),
        ("jon", "jonathan"),
    ]
    dates = [
        "1980-02-29",
        "1980-03-01",
        "1981-02-28",
        "1990-12-31",
        "2000-01-01",
        "1980-13-01",
        "not a date",
        None,
        "1890-02-01",
        "1980-02-28",
    ]
    rows = []
    for i, ((first, last), birth) in enumerate(zip(names, dates, strict=True)):
        rows.append(
            {
                "record_uid": f"x:{i}",
                "first_name": first,
                "first_name_canonical": first,
                "last_name": last,
                "birth_date": birth,
                "email": f"{first}.{last}@mail{i % 3}.com",
                "phone": f"+1617555{i % 4:04d}",
                "street_address": ["1 rue de l'église", "1 rue de l eglise"][i % 2],
                "postal_code": ["75001", "75002", "57001"][i % 3],
                "city": ["paris", "pariss"][i % 4 // 3],
                "country": "FR",
                # same, one transposition, one edit, another type, several, none
                "person_identifiers": [
                    "national_id:12345",
                    "national_id:12354",
                    "national_id:1234",
                    "account_id:12345",
                    "account_id:a7\nnational_id:12345",
                    None,
                    "account_id:A7",
                    "national_id:é2345",
                    "national_id:12345",
                    "loyalty_id:x",
                ][i],
            }
        )
    frame = pd.DataFrame(rows)
    # The trained parameters applied with a rule that compares every pair of the frame.
    everything = ModelSettings(blocking_rules=["l.country = r.country"], threads=2)
    base = TrainedModel(everything, model.splink_settings)
    scorer = base.scorer(frame)
    batch = base.predict(frame, threshold=0.0).set_index(["record_uid_l", "record_uid_r"])
    assert len(batch) == len(list(combinations(range(len(rows)), 2)))
    for record in rows:
        realtime = scorer.score(record).set_index(["record_uid_l", "record_uid_r"])
        joined = realtime.join(batch, rsuffix="_batch", how="inner")
        assert len(joined) == len(rows) - 1
        assert (joined["match_weight"] - joined["match_weight_batch"]).abs().max() <= 1e-6
        for mine, theirs in zip(joined["details"], joined["details_batch"], strict=True):
            a, b = json.loads(mine), json.loads(theirs)
            assert {k: v["level"] for k, v in a.items()} == {k: v["level"] for k, v in b.items()}
            for name in a:
                assert a[name]["match_weight"] == pytest.approx(b[name]["match_weight"], abs=1e-3)


def test_scorer_add_makes_a_new_record_matchable(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series]
) -> None:
    records, _ = world
    scorer = model.scorer(records)
    newcomer = {
        "record_uid": "web:n1",
        "first_name": "ottoline",
        "last_name": "vandermeer",
        "birth_date": "1979-05-06",
        "email": "ottoline@example.org",
        "postal_code": "02139",
        "city": "cambridge",
    }
    again = {**newcomer, "record_uid": "web:n2", "first_name": "otoline", "email": None}
    assert scorer.score(again).empty
    size = len(scorer)
    scorer.add(newcomer)
    assert len(scorer) == size + 1
    result = scorer.score(again)
    assert list(result["record_uid_l"]) == ["web:n1"]
    assert result["match_probability"].iloc[0] >= model.settings.match_threshold
    scorer.add(
        {
            **newcomer,
            "postal_code": "99999",
            "birth_date": "1950-01-01",
            "email": "other@example.org",
            "last_name": "other",
            "first_name": "someone",
        }
    )
    assert len(scorer) == size + 1, "re-adding a uid replaces the record"
    assert scorer.score(again).empty
    with pytest.raises(ValueError, match="record_uid"):
        scorer.add({"first_name": "x", "last_name": "y"})
    assert scorer.score({"first_name": "lonely"}).empty  # too little to score


def test_block_size_cap_applies_in_batch_and_real_time(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series]
) -> None:
    records = world[0].head(400).copy()
    records.loc[records.index[:6], "postal_code"] = "00000"
    records.loc[records.index[:6], "city"] = "placeholder"
    settings = ModelSettings(
        blocking_rules=["l.postal_code = r.postal_code"], max_block_size=5, threads=2
    )
    capped = TrainedModel(settings, model.splink_settings)
    batch = capped.predict(records, threshold=0.0)
    placeholder = set(records["record_uid"].iloc[:6])
    assert not (
        batch["record_uid_l"].isin(placeholder) & batch["record_uid_r"].isin(placeholder)
    ).any()
    scorer = capped.scorer(records)
    assert scorer.candidates(records.iloc[0].to_dict()) == []
    counts = capped.count_comparisons(records)
    assert counts == {"postal_code": len(batch)}


def test_bad_input_fails_with_a_clear_message(
    model: TrainedModel, world: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    records, _ = world
    with pytest.raises(ValueError, match="record_uid"):
        model.predict(records.drop(columns=["record_uid"]))
    doubled = pd.concat([records.head(5), records.head(2)], ignore_index=True)
    with pytest.raises(ValueError, match="not unique"):
        model.predict(doubled)
    with pytest.raises(ValueError, match="at least two"):
        train_model(records.head(1), SETTINGS)
    bad = tmp_path / "model.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=str(bad)):
        TrainedModel.load(bad)
    bad.write_text(json.dumps({"format": "something else"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not an identity model"):
        TrainedModel.load(bad)
    with pytest.raises(ValueError, match="not found"):
        TrainedModel.load(tmp_path / "missing.json")
    with pytest.raises(ValidationError, match="unknown column 'shoe_size'"):
        ModelSettings(blocking_rules=["l.shoe_size = r.shoe_size"])
    with pytest.raises(ValidationError, match="not of the form"):
        ModelSettings(blocking_rules=["l.email = r.phone"])


def test_custom_blocking_rules_limit_the_pairs(world: tuple[pd.DataFrame, pd.Series]) -> None:
    records = world[0]
    settings = ModelSettings(blocking_rules=["l.email = r.email"], **QUICK)
    only_email = train_model(records, settings)
    scored = only_email.predict(records, threshold=0.0)
    emails = records.set_index("record_uid")["email"]
    assert len(scored) > 0
    assert (
        emails.loc[scored["record_uid_l"]].to_numpy()
        == emails.loc[scored["record_uid_r"]].to_numpy()
    ).all()
    scorable = records[records[list(EVIDENCE)].notna().sum(axis=1) >= MIN_COMPARED_ATTRIBUTES]
    pairs = scorable.dropna(subset=["email"]).merge(scorable, on="email")
    expected = int((pairs["record_uid_x"] < pairs["record_uid_y"]).sum())
    assert len(scored) == expected


def test_splink_messages_become_training_diagnostics_not_output(
    world: tuple[pd.DataFrame, pd.Series], caplog: pytest.LogCaptureFixture
) -> None:
    records = world[0].assign(birth_date=None)  # a world without birth dates
    with caplog.at_level(logging.DEBUG):
        model = train_model(records, ModelSettings(**QUICK))
        model.predict(records)

    diagnostics = model.training["diagnostics"]
    not_learnt = [r for r in diagnostics["levels_not_learnt"] if r["comparison"] == "birth_date"]
    assert {r["level"] for r in not_learnt} >= {"Same birth date", "All other comparisons"}
    assert all(r["why"] == "0 comparable pairs in EM (200 needed)" for r in not_learnt)
    unseen = [r for r in diagnostics["levels_not_observed"] if r["comparison"] == "birth_date"]
    assert unseen and all(r["parameter"] == "m" and r["stages"] for r in unseen)
    assert all(stage.startswith("em_") for r in unseen for stage in r["stages"])
    assert set(diagnostics["em_iterations"]) == set(model.training["em_sessions"])
    # Blocks are counted exactly first: a block under the cap is not sampled, so Splink's
    # 1% probe (which found "zero blocked pairs" in blocks of a few thousand) never runs.
    first = model.training["em_sessions"][0]
    assert "zero blocked pairs" not in diagnostics["em_sampling"][first]
    assert "no sampling" in diagnostics["em_sampling"][first]
    assert diagnostics["splink_log_records"] > 0
    assert model.prediction_diagnostics["splink_warnings"] == []

    # Splink itself reached no handler; its raw lines are DEBUG records of identity.splink.
    assert [r for r in caplog.records if r.name.split(".")[0] == "splink"] == []
    raw = [r for r in caplog.records if r.name == "identity.splink"]
    assert raw and {r.levelno for r in raw} == {logging.DEBUG}
    assert any("not observed in dataset" in r.getMessage() for r in raw)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_capture_keeps_only_its_own_thread_and_splink_s_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    splink_file = str(Path(splink.__file__).resolve().parent / "internals" / "training.py")
    other = threading.Thread(
        target=lambda: logging.getLogger("splink.internals.x").warning("from another thread")
    )
    with caplog.at_level(logging.INFO), capture_splink("u") as captured:
        logging.getLogger("splink.internals.x").warning("WARNING:\nsomething odd")
        other.start()
        other.join()
        warnings.warn_explicit("splink says so", UserWarning, splink_file, 1)
        with pytest.warns(RuntimeWarning, match="not splink"):
            warnings.warn("not splink", RuntimeWarning, stacklevel=1)
    messages = {w["message"] for w in captured.as_dict()["splink_warnings"]}
    assert messages == {"something odd", "splink says so"}
    shown = [r.getMessage() for r in caplog.records if r.name.startswith("splink")]
    assert shown == ["from another thread"]
    assert logging.getLogger("splink").propagate  # restored
