"""`cdp identity resolve` / `evaluate` on files the project has never seen: a FEBRL-like layout
(Australian-style columns, no email or phone) with typo'd duplicates within and across files."""

from __future__ import annotations

import logging
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from dagster_project.cli.identity import SPLINK_LOGGER, app

MAPPING = """\
record_id: rec_id
attributes:
  first_name: given_name
  last_name: surname
  birth_date: date_of_birth
  street_address: [street_number, address_1]
  postal_code: postcode
  city: suburb
  region: state
identifiers:
  national_id: soc_sec_id
"""

GIVEN = [
    "jack",
    "olivia",
    "noah",
    "charlotte",
    "william",
    "amelia",
    "oliver",
    "isla",
    "thomas",
    "mia",
    "james",
    "ava",
    "lucas",
    "grace",
    "henry",
    "chloe",
    "ethan",
    "zoe",
    "liam",
    "ella",
    "samuel",
    "ruby",
    "harrison",
    "lily",
    "lachlan",
    "sophie",
    "cooper",
    "emily",
    "riley",
]
SURNAMES = [
    "smith",
    "jones",
    "williams",
    "brown",
    "wilson",
    "taylor",
    "johnson",
    "white",
    "martin",
    "anderson",
    "thompson",
    "nguyen",
    "thomas",
    "walker",
    "harris",
    "lee",
    "ryan",
    "robinson",
    "kelly",
    "king",
    "davis",
    "wright",
    "evans",
    "roberts",
    "green",
    "hall",
    "wood",
    "jackson",
    "clarke",
    "patel",
    "khan",
    "lewis",
    "james",
    "phillips",
]
STREETS = [
    "kent street",
    "george road",
    "victoria avenue",
    "albert place",
    "church lane",
    "high street",
    "station road",
    "park crescent",
    "queen street",
    "king street",
]
SUBURBS = [
    ("bondi", "2026", "nsw"),
    ("fitzroy", "3065", "vic"),
    ("toowong", "4066", "qld"),
    ("fremantle", "6160", "wa"),
    ("glenelg", "5045", "sa"),
    ("hobart", "7000", "tas"),
]


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    return rng.choice(
        [
            text[:i] + text[i + 1 :],
            text[:i] + text[i + 1] + text[i] + text[i + 2 :],
            text[:i] + rng.choice("aeiourstn") + text[i + 1 :],
        ]
    )


def _febrl(tmp_path: Path, entities: int = 1000, seed: int = 4) -> tuple[Path, Path, Path]:
    rng = random.Random(seed)
    people = []
    for e in range(entities):
        suburb, postcode, state = rng.choice(SUBURBS)
        people.append(
            {
                "entity_id": f"e{e}",
                "given_name": rng.choice(GIVEN),
                "surname": rng.choice(SURNAMES),
                "street_number": str(rng.randint(1, 400)),
                "address_1": rng.choice(STREETS),
                "suburb": suburb,
                "postcode": postcode,
                "state": state,
                "date_of_birth": f"{rng.randint(1940, 2005)}{rng.randint(1, 12):02d}"
                f"{rng.randint(1, 28):02d}",
                "soc_sec_id": f"{rng.randint(1_000_000, 9_999_999)}",
            }
        )

    def noisy(person: dict) -> dict:
        copy = dict(person)
        for field in rng.sample(["given_name", "surname", "address_1", "suburb"], k=2):
            copy[field] = _typo(rng, copy[field])
        if rng.random() < 0.5:
            copy["soc_sec_id"] = ""  # not every system has the national id
        if rng.random() < 0.2:
            copy["date_of_birth"] = ""
        return copy

    rows_a, rows_b = [], []
    for i, person in enumerate(people):
        rows_a.append({**person, "rec_id": f"rec-{i}-org"})
        if rng.random() < 0.1:
            rows_a.append({**noisy(person), "rec_id": f"rec-{i}-dup-a"})
        if rng.random() < 0.6:
            rows_b.append({**noisy(person), "rec_id": f"rec-{i}-dup-b"})
    columns = [
        "rec_id",
        "given_name",
        "surname",
        "street_number",
        "address_1",
        "suburb",
        "postcode",
        "state",
        "date_of_birth",
        "soc_sec_id",
    ]
    file_a, file_b = tmp_path / "people_a.csv", tmp_path / "people_b.csv"
    pd.DataFrame(rows_a)[columns].to_csv(file_a, index=False)
    pd.DataFrame(rows_b)[columns].to_parquet(file_b.with_suffix(".parquet"), index=False)
    truth = pd.DataFrame(
        [
            {"source": "people_a.csv", "record_id": r["rec_id"], "entity_id": r["entity_id"]}
            for r in rows_a
        ]
        + [
            {"source": "people_b.parquet", "record_id": r["rec_id"], "entity_id": r["entity_id"]}
            for r in rows_b
        ]
    )
    truth_path = tmp_path / "truth.csv"
    truth.to_csv(truth_path, index=False)
    return file_a, file_b.with_suffix(".parquet"), truth_path


@pytest.fixture(scope="module")
def febrl(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    folder = tmp_path_factory.mktemp("febrl")
    file_a, file_b, truth = _febrl(folder)
    mapping = folder / "mapping.yml"
    mapping.write_text(MAPPING)
    return file_a, file_b, truth, mapping


@pytest.fixture(scope="module")
def resolved(febrl, tmp_path_factory) -> tuple[Path, object]:
    file_a, file_b, _, mapping = febrl
    out = tmp_path_factory.mktemp("out") / "clusters.parquet"
    result = CliRunner().invoke(
        app, ["resolve", str(file_a), str(file_b), "--mapping", str(mapping), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out, result


def test_resolve_writes_one_row_per_input_record(febrl, resolved):
    file_a, file_b, _, _ = febrl
    out, result = resolved
    clusters = pd.read_parquet(out)
    assert list(clusters.columns) == ["record_id", "source", "customer_id", "cluster_size"]
    expected = len(pd.read_csv(file_a)) + len(pd.read_parquet(file_b))
    assert len(clusters) == expected
    assert set(clusters["source"]) == {"people_a.csv", "people_b.parquet"}
    assert "customers" in result.output and "Cluster sizes" in result.output


def test_evaluate_reports_pairwise_scores_on_unseen_data(febrl, resolved):
    _, _, truth, _ = febrl
    out, _ = resolved
    result = CliRunner().invoke(app, ["evaluate", "--clusters", str(out), "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and "true clusters" in result.output
    from identity.evaluate import evaluate_clusters

    scores = evaluate_clusters(pd.read_parquet(out), pd.read_csv(truth, dtype=str))
    # defaults, no tuning: links within and across files, almost never wrong
    assert scores.precision >= 0.97, scores
    assert scores.recall >= 0.9, scores


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("record_id: rec_id\nattributes:\n  nickname: given_name\n", "attributes.nickname"),
        (
            "record_id: rec_id\nattributes:\n  first_name: no_such_column\n",
            "attributes.first_name: column 'no_such_column' not found",
        ),
        ("attributes:\n  first_name: given_name\n", "record_id: missing"),
        ("record_id: rec_id\nidentifiers:\n  email: soc_sec_id\n", "identifiers.email"),
        ("record_id: [rec_id, nope]\n", "record_id: column 'nope' not found"),
        ("record_id: rec_id\nattributes: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_mappings_fail_naming_the_key(febrl, tmp_path, mapping: str, message: str):
    file_a, _, _, _ = febrl
    path = tmp_path / "bad.yml"
    path.write_text(mapping)
    result = CliRunner().invoke(
        app, ["resolve", str(file_a), "--mapping", str(path), "--out", str(tmp_path / "o.pq")]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.pq").exists()


def test_duplicate_and_missing_record_ids_fail_clearly(febrl, tmp_path):
    _, _, _, mapping = febrl
    bad = tmp_path / "bad.csv"
    bad.write_text("rec_id,given_name\nr1,ann\nr1,bob\n")
    small = tmp_path / "small.yml"
    small.write_text("record_id: rec_id\nattributes:\n  first_name: given_name\n")
    result = CliRunner().invoke(
        app, ["resolve", str(bad), "--mapping", str(small), "--out", str(tmp_path / "o.pq")]
    )
    assert result.exit_code == 2
    assert "record_id: values must be unique; duplicated: ['r1']" in result.output
    empty_id = tmp_path / "empty.csv"
    empty_id.write_text(
        "rec_id,given_name,surname,street_number,address_1,suburb,postcode,state,"
        "date_of_birth,soc_sec_id\n,ann,lee,1,a st,b,2000,nsw,19800101,1\n"
    )
    result = CliRunner().invoke(
        app, ["resolve", str(empty_id), "--mapping", str(mapping), "--out", str(tmp_path / "o.pq")]
    )
    assert result.exit_code == 2 and "record_id: empty on data row(s) [2]" in result.output


def test_small_inputs_resolve_with_rules_only(tmp_path):
    data = tmp_path / "tiny.csv"
    data.write_text("id,email,name\n1,ann@x.com,Ann Lee\n2,ANN@x.com,Ann Lee\n3,bob@y.com,Bob\n")
    mapping = tmp_path / "m.yml"
    mapping.write_text("record_id: id\nattributes:\n  email: email\n  full_name: name\n")
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        app, ["resolve", str(data), "--mapping", str(mapping), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    clusters = pd.read_parquet(out).set_index("record_id")
    assert clusters.loc["1", "customer_id"] == clusters.loc["2", "customer_id"]
    assert clusters.loc["3", "cluster_size"] == 1
    assert "not used" in result.output


#: What Splink says while it trains, in its own words: never printed unless --verbose.
SPLINK_LINES = ("not observed in dataset", "[EM sampling]", "Iteration 1:", "fully trained")


def _row(output: str, *texts: str) -> str:
    """The one table line holding every text."""
    [line] = [line for line in output.splitlines() if all(t in line for t in texts)]
    return line


def test_resolve_says_per_comparison_what_training_learnt_and_what_to_do(febrl, tmp_path, caplog):
    file_a, file_b, _, _ = febrl
    mapping = tmp_path / "no_birth_dates.yml"  # the files hold birth dates; nobody maps them
    mapping.write_text("".join(line for line in MAPPING.splitlines(True) if "birth" not in line))
    args = ["resolve", str(file_a), str(file_b), "--mapping", str(mapping)]
    wide = {"COLUMNS": "250"}
    quiet = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a.pq")], env=wide)
    assert quiet.exit_code == 0, quiet.output
    output = quiet.output
    assert output.index("Cluster sizes") < output.index("Model training")  # after the summary
    assert re.search(r"model trained on 1,700 records, \d of \d comparisons learnt", output)
    birth = _row(output, "birth_date", "not learnt")
    assert "no m learnt: no record has birth_date; add a source with birth_date" in birth
    assert "accept Splink's default m values" in birth
    # how many pairs each comparison was learnt from
    assert re.search(r"│ last_name +│ (partly )?learnt +│ +[1-9][\d,]* │", output)
    # contact: no email or phone in these files, so its email and phone levels are Splink's
    flat = re.sub(r"[│\s]+", " ", output)  # table cells wrap over lines
    assert "no record has email and phone; map email and phone if a source holds them" in flat
    assert not [text for text in SPLINK_LINES if text in output]
    assert "Splink said" not in output

    splink = logging.getLogger(SPLINK_LOGGER)
    try:
        with caplog.at_level(logging.DEBUG, logger=SPLINK_LOGGER):
            verbose = CliRunner().invoke(
                app, [*args, "--out", str(tmp_path / "b.pq"), "--verbose"], env=wide
            )
    finally:
        splink.setLevel(logging.NOTSET)  # the command sets it for its process
    assert verbose.exit_code == 0, verbose.output
    raw = [r.getMessage() for r in caplog.records if r.name == SPLINK_LOGGER]
    assert any("not observed in dataset" in message for message in raw)
    assert "Splink said" in verbose.output


def test_resolve_on_identifiers_only_says_the_model_was_skipped(tmp_path):
    data = tmp_path / "accounts.csv"
    data.write_text("id,account\n" + "".join(f"r{i},A{i % 100}\n" for i in range(120)))
    mapping = tmp_path / "m.yml"
    mapping.write_text("record_id: id\nidentifiers:\n  account_id: account\n")
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        app, ["resolve", str(data), "--mapping", str(mapping), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    output = " ".join(result.output.split())
    assert "model skipped: only 0 of 120 records have 2 or more of first_name" in output
    assert "customers were resolved with deterministic links alone" in output
    assert "Model training" not in output
    clusters = pd.read_parquet(out).set_index("record_id")
    assert clusters.loc["r1", "customer_id"] == clusters.loc["r101", "customer_id"]


def test_evaluate_rejects_truth_without_columns(resolved, tmp_path):
    out, _ = resolved
    truth = tmp_path / "t.csv"
    truth.write_text("record_id,person\nrec-1-org,e1\n")
    result = CliRunner().invoke(app, ["evaluate", "--clusters", str(out), "--truth", str(truth)])
    assert result.exit_code == 2 and "entity_id" in result.output


# -- cdp identity explain -------------------------------------------------------------------

EXPLAIN_NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def explained_home(tmp_path_factory) -> Path:
    """A CDP_HOME whose lake/identity holds a rules-only run: a person in three records (CRM,
    shop, cookie), a household sharing a phone under two names, a unique loyalty-id conflict."""
    from identity import IdentitySettings, resolve, write_resolution

    records = pd.DataFrame(
        [
            {"record_uid": "crm:1", "first_name": "Robert", "last_name": "Smith",
             "email": "bob@x.com", "phone": "2125550101"},
            {"record_uid": "shop:1", "first_name": "Bob", "last_name": "Smith",
             "email": "BOB@x.com"},
            {"record_uid": "web:cookie:c1"},
            {"record_uid": "crm:2", "first_name": "Mary", "last_name": "Jones",
             "phone": "2125550199", "birth_date": "1970-01-01"},
            {"record_uid": "crm:3", "first_name": "Paul", "last_name": "Jones",
             "phone": "2125550199", "birth_date": "1968-02-02"},
            {"record_uid": "crm:4", "first_name": "Ann", "last_name": "Lee"},
            {"record_uid": "crm:5", "first_name": "Ann", "last_name": "Lee"},
        ]
    )  # fmt: skip
    records["source"] = records["record_uid"].str.split(":").str[0]
    records["record_id"] = records["record_uid"].str.split(":", n=1).str[1]
    identifiers = pd.DataFrame(
        [
            ("shop:1", "account_id", "A1"),
            ("web:cookie:c1", "cookie_id", "c1"),
            ("web:cookie:c1", "account_id", "A1"),
            ("crm:4", "loyalty_id", "L4"),
            ("crm:5", "loyalty_id", "L5"),
            ("crm:4", "account_id", "A4"),
            ("crm:5", "account_id", "A4"),
        ],
        columns=["record_uid", "identifier_type", "identifier_value"],
    )
    resolution = resolve(
        records, identifiers, IdentitySettings(), train=False, run_id="r1", now=EXPLAIN_NOW
    )
    home = tmp_path_factory.mktemp("explain_home")
    write_resolution(resolution, home / "lake" / "identity")
    return home


def explain_cli(*args: str) -> Result:
    return CliRunner().invoke(app, ["explain", *args], env={"COLUMNS": "200"})


def test_explain_two_records_of_one_customer_shows_the_path(explained_home: Path) -> None:
    result = explain_cli(
        "--record", "crm:1", "--record", "web:cookie:c1", "--home", str(explained_home)
    )
    assert result.exit_code == 0, result.output
    assert "crm:1 and web:cookie:c1 are one customer" in result.output
    lines = result.output.splitlines()
    shop = next(i for i, line in enumerate(lines) if "shop:1" in line and "same_email" in line)
    cookie = next(
        i for i, line in enumerate(lines) if "web:cookie:c1" in line and "same_acc" in line
    )
    assert shop < cookie
    assert "b***@x.com" in result.output  # identity's own masked value, not the address


def test_explain_names_the_guard_that_refused_the_link(explained_home: Path) -> None:
    result = explain_cli("--record", "crm:2", "--record", "crm:3", "--home", str(explained_home))
    assert result.exit_code == 0, result.output
    assert "are different customers" in result.output
    assert "max_distinct_names_per_phone" in result.output
    assert "no saved model" in result.output


def test_explain_reports_a_split_by_a_unique_identifier(explained_home: Path) -> None:
    result = explain_cli("--record", "crm:4", "--record", "crm:5", "--home", str(explained_home))
    assert result.exit_code == 0, result.output
    assert "split:unique_loyalty_id" in result.output


def test_explain_a_customer_lists_records_and_links(explained_home: Path) -> None:
    identity_map = pd.read_parquet(explained_home / "lake" / "identity" / "identity_map.parquet")
    customer = identity_map.set_index("record_uid").loc["crm:1", "customer_id"]
    by_id = explain_cli("--customer-id", customer, "--home", str(explained_home))
    assert by_id.exit_code == 0, by_id.output
    assert f"customer {customer}: 3 record(s), 2 accepted link(s)" in by_id.output
    for uid in ("crm:1", "shop:1", "web:cookie:c1"):
        assert uid in by_id.output
    by_record = explain_cli("--record", "shop:1", "--home", str(explained_home))
    assert by_record.exit_code == 0 and by_record.output == by_id.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--record", "crm:99", "--record", "crm:1"], "no record 'crm:99' in the identity map"),
        (["--record", "crm:99"], "no record 'crm:99' in the identity map"),
        (["--customer-id", "cus_nobody"], "no customer 'cus_nobody' in the identity map"),
        (["--record", "crm1"], "write it as SOURCE:RECORD_ID"),
        ([], "give --customer-id ID, or --record SOURCE:RECORD_ID once or twice"),
        (["--customer-id", "c", "--record", "crm:1"], "give --customer-id ID"),
    ],
)
def test_explain_fails_clearly_on_unknown_input(
    explained_home: Path, args: list[str], message: str
) -> None:
    result = explain_cli(*args, "--home", str(explained_home))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_explain_without_identity_outputs_says_what_to_run(tmp_path: Path) -> None:
    result = explain_cli("--customer-id", "cus_1", "--home", str(tmp_path))
    assert result.exit_code == 2
    assert "no identity outputs in" in result.output and "cdp run" in result.output


def test_explain_scores_two_unlinked_records_with_the_saved_model(
    resolved_people, people_world, tmp_path: Path
) -> None:
    from identity import write_resolution

    _, _, truth = people_world
    write_resolution(resolved_people, tmp_path / "lake" / "identity")
    owner = resolved_people.identity_map.set_index("record_uid")["customer_id"]
    records = resolved_people.records.dropna(subset=["last_name"])
    same_last = records.groupby("last_name")["record_uid"].apply(list)
    a, b = next(
        (a, b)
        for uids in same_last
        for a in uids
        for b in uids
        if a < b and truth[a] != truth[b] and owner[a] != owner[b]
    )
    result = explain_cli("--record", a, "--record", b, "--home", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "below the threshold" in result.output or "never compared" in result.output
