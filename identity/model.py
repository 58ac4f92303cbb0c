"""The probabilistic identity model: Splink 5 on DuckDB, trained per run, saved as JSON.

``train_model`` estimates a Fellegi-Sunter model on the normalized record frame (u by random
sampling, m by expectation maximisation, the prior from near-certain deterministic rules);
``TrainedModel.predict`` scores the blocked pairs of a whole frame and returns the contract's
edge frame; ``TrainedModel.scorer`` builds the in-memory candidate index that the real-time
resolver uses to score one new record in milliseconds.

Real time cannot afford a DuckDB query per call (several milliseconds of fixed cost in
DuckDB 2.0's Python layer), so the scorer evaluates each comparison level in Python with the
test defined next to its Splink SQL in ``identity.comparisons`` (rapidfuzz on UTF-8 bytes,
which is what DuckDB's string distances use) and combines the trained model's own weights with
Splink's formulas; a pair scores the same in batch and in real time (tested to 1e-6).
Candidates come from in-memory indexes over the batch model's blocking keys and block-size cap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from splink import DuckDBAPI, Linker, SettingsCreator
from splink.internals.comparison_level import _default_m_values
from splink.internals.exceptions import SplinkException
from splink.internals.misc import prob_to_match_weight

from identity._frames import empty_frame
from identity._splink_log import capture_splink, splink_stage
from identity.blocking import (
    COMPARED_COLUMNS,
    EM_ALWAYS,
    EM_TRAINING_KEYS,
    EMAIL_USER_COLUMN,
    EMAIL_USER_SQL,
    NAME_PAIR_COLUMN,
    NAME_PAIR_SQL,
    PERSON_IDENTIFIERS_COLUMN,
    BlockingKey,
)
from identity.comparisons import (
    BIRTH_DAY_COLUMN,
    BIRTH_DAY_SQL,
    DETERMINISTIC_RULES,
    MIN_COMPARED_ATTRIBUTES,
    LevelTest,
    birth_day,
    comparison_specs,
    email_user,
    person_comparisons,
    person_identifiers_text,
)
from identity.settings import ModelSettings
from identity.vocabulary import EDGE_COLUMNS, EDGE_SCHEMA

logger = logging.getLogger(__name__)

MODEL_FORMAT: Final[str] = "cdp.identity.model"
MODEL_FORMAT_VERSION: Final[int] = 1
_INPUT_TABLE: Final[str] = "cdp_model_input"
#: EM needs at least this many comparable pairs to estimate a comparison's m values.
MIN_EM_PAIRS: Final[int] = 200
# Attributes that count towards MIN_COMPARED_ATTRIBUTES (the canonical first name repeats
# the first name, so it does not count twice).
_EVIDENCE_COLUMNS: Final[tuple[str, ...]] = tuple(
    c for c in COMPARED_COLUMNS if c != "first_name_canonical"
)


# --------------------------------------------------------------------------------------------
# Preparing the record frame (shared by training, prediction and the real-time index)
# --------------------------------------------------------------------------------------------


def _connect(threads: int | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    if threads is not None:
        con.execute(f"set threads = {int(threads)}")
    con.execute("set preserve_insertion_order = false")
    return con


_DERIVED_SQL: Final[dict[str, str]] = {
    NAME_PAIR_COLUMN: NAME_PAIR_SQL,
    EMAIL_USER_COLUMN: EMAIL_USER_SQL,
    BIRTH_DAY_COLUMN: BIRTH_DAY_SQL,
}


def _input_columns(keys: Sequence[BlockingKey]) -> list[str]:
    """Columns read from the record frame (the rest are derived from them)."""
    columns = [*COMPARED_COLUMNS, PERSON_IDENTIFIERS_COLUMN]
    for key in keys:
        columns.extend(c for c in key.columns if c not in columns and c not in _DERIVED_SQL)
    return columns


def _as_arrow(records: pd.DataFrame) -> pa.Table:
    if "record_uid" not in records.columns:
        raise ValueError("records: missing column 'record_uid' (the normalized record frame)")
    frame = records.reset_index(drop=True)
    return pa.Table.from_pandas(frame, preserve_index=False)


def _prepare(
    con: duckdb.DuckDBPyConnection,
    records: pd.DataFrame,
    keys: Sequence[BlockingKey],
    table: str,
    sample: int | None = None,
    seed: int = 0,
) -> tuple[int, int]:
    """Create ``table`` with the model's columns, name pair and block sizes.

    Returns:
        (records read, records the model can score).
    """
    arrow = _as_arrow(records)
    present = set(arrow.column_names)
    con.register("cdp_model_raw", arrow)
    try:
        null_uids, duplicates = con.execute(
            "select count(*) filter (where record_uid is null), "
            "count(record_uid) - count(distinct record_uid) from cdp_model_raw"
        ).fetchall()[0]
        if null_uids:
            raise ValueError(f"records: {null_uids} rows have a null record_uid")
        if duplicates:
            raise ValueError(f"records: record_uid is not unique ({duplicates} duplicates)")
        columns = _input_columns(keys)
        select = ["cast(record_uid as varchar) as record_uid"]
        for column in columns:
            if column in present:
                select.append(f"nullif(cast({column} as varchar), '') as {column}")
            else:
                select.append(f"cast(null as varchar) as {column}")
        base = f"select {', '.join(select)} from cdp_model_raw"
        if sample is not None:
            base = (
                f"select * from ({base}) using sample reservoir({int(sample)} rows) "
                f"repeatable ({int(seed)})"
            )
        enough = " + ".join(f"({c} is not null)::int" for c in _EVIDENCE_COLUMNS)
        plain = [c for c in columns if c != "first_name_canonical"]
        derived = ", ".join(f"{sql} as {name}" for name, sql in _DERIVED_SQL.items())
        con.execute(f"""
            create or replace table {table}__base as
            with base as ({base}),
            canon as (
                select record_uid, {", ".join(plain)},
                    coalesce(first_name_canonical, first_name) as first_name_canonical
                from base
                where {enough} >= {MIN_COMPARED_ATTRIBUTES}
            )
            select *, {derived} from canon
        """)
        # Block sizes by aggregate + join: several times faster than window counts.
        select_sizes, joins = ["b.*"], []
        for index, key in enumerate(keys):
            cols = ", ".join(key.columns)
            not_null = " and ".join(f"{c} is not null" for c in key.columns)
            joins.append(
                f"left join (select {cols}, count(*) as n from {table}__base where {not_null} "
                f"group by {cols}) as g{index} using ({cols})"
            )
            select_sizes.append(f"g{index}.n as {key.size_column}")
        con.execute(
            f"create or replace table {table} as select {', '.join(select_sizes)} "
            f"from {table}__base as b {' '.join(joins)}"
        )
        con.execute(f"drop table {table}__base")
        total = len(arrow) if sample is None else min(len(arrow), int(sample))
    finally:
        con.unregister("cdp_model_raw")
    kept = con.execute(f"select count(*) from {table}").fetchall()[0][0]
    return total, kept


def _splink_settings(keys: Sequence[BlockingKey], max_block_size: int) -> dict[str, Any]:
    creator = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_uid",
        comparisons=person_comparisons(),
        blocking_rules_to_generate_predictions=[k.sql(max_block_size) for k in keys],
        # Splink keeps the gamma (level) columns only with the matching columns.
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=[],
    )
    return creator.get_settings("duckdb").as_dict()


def _with_blocking(
    splink: Mapping[str, Any], keys: Sequence[BlockingKey], max_block_size: int
) -> dict[str, Any]:
    settings = json.loads(json.dumps(splink))
    settings["blocking_rules_to_generate_predictions"] = [
        {"blocking_rule": k.sql(max_block_size), "sql_dialect": "duckdb"} for k in keys
    ]
    settings["retain_matching_columns"] = True
    settings["retain_intermediate_calculation_columns"] = True
    return settings


# --------------------------------------------------------------------------------------------
# Edge frame SQL for batch predictions (the real-time scorer writes the same JSON in Python)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ComparisonInfo:
    name: str
    labels: dict[int, str]  # comparison vector value -> level label
    has_tf: bool


def _comparison_infos(splink: Mapping[str, Any]) -> list[_ComparisonInfo]:
    settings = SettingsCreator.from_path_or_dict(dict(splink)).get_settings("duckdb")
    infos = []
    for comparison in settings.core_model_settings.comparisons:
        labels = {
            level.comparison_vector_value: level.label_for_charts
            for level in comparison.comparison_levels
        }
        infos.append(
            _ComparisonInfo(comparison.output_column_name, labels, comparison._has_tf_adjustments)
        )
    return infos


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _edge_select_sql(infos: Sequence[_ComparisonInfo], source: str) -> str:
    """Select the contract's edge columns from a Splink prediction table."""
    parts = []
    for info in infos:
        cases = " ".join(
            f"when {gamma} then {_sql_string(label)}" for gamma, label in info.labels.items()
        )
        weight = f"mw_{info.name}"
        if info.has_tf:
            weight = f"(mw_{info.name} + mw_tf_adj_{info.name})"
        parts.append(
            f"{_sql_string(info.name)}, json_object('level', case gamma_{info.name} {cases} end, "
            f"'match_weight', round({weight}, 4))"
        )
    details = f"json_object({', '.join(parts)})::varchar"
    return f"""
        select
            least(record_uid_l, record_uid_r) as record_uid_l,
            greatest(record_uid_l, record_uid_r) as record_uid_r,
            'model' as evidence_type,
            'splink' as rule,
            cast(null as varchar) as identifier_type,
            match_probability::double as match_probability,
            match_weight::double as match_weight,
            {details} as details
        from {source}
    """


def empty_edge_frame() -> pd.DataFrame:
    """An edge frame with no rows and the contract's columns."""
    return empty_frame(EDGE_SCHEMA, EDGE_COLUMNS)


def _edge_frame(table: pa.Table) -> pd.DataFrame:
    if table.num_rows == 0:
        return empty_edge_frame()
    frame = table.to_pandas()[list(EDGE_COLUMNS)]
    frame["identifier_type"] = None  # model edges carry no identifier
    return frame


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


class _Stages:
    """Seconds spent per training stage (reported with the model, for sizing runs)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._since, 3)
        self._since = now


def train_model(records: pd.DataFrame, settings: ModelSettings | None = None) -> TrainedModel:
    """Estimate the model's parameters on a normalized record frame.

    The prior comes from near-certain deterministic rules, u from random pairs and m from
    expectation maximisation over blocks that each leave some comparisons free to learn.
    Large frames are trained on a random sample (``training_sample_records``): parameters
    are proportions, so a few hundred thousand records estimate them as well as millions.

    Raises:
        ValueError: the frame has no ``record_uid``, duplicate or null ids, or fewer than two
            records with enough attributes to compare.
    """
    settings = settings or ModelSettings()
    keys = settings.blocking_keys()
    started = time.perf_counter()
    stages = _Stages()
    sample = (
        settings.training_sample_records
        if len(records) > settings.training_sample_records
        else None
    )
    # Splink's messages (levels it could not train, EM sampling and iterations) become the
    # training's diagnostics instead of terminal output; the raw lines go to DEBUG.
    with _connect(settings.threads) as con, capture_splink("prepare") as splink_log:
        total, kept = _prepare(
            con, records, (*keys, *EM_TRAINING_KEYS), _INPUT_TABLE, sample, settings.seed
        )
        if kept < 2:
            raise ValueError(
                f"records: only {kept} of {total} records have {MIN_COMPARED_ATTRIBUTES} or more "
                f"of {', '.join(_EVIDENCE_COLUMNS)}; the model needs at least two to train"
            )
        stages.done("prepare")
        linker = Linker(
            DuckDBAPI(con).register(_INPUT_TABLE),
            _splink_settings(keys, settings.max_block_size),
            log_level=None,
        )
        splink_log.stage = "prior"
        prior = _estimate_prior(linker, settings, kept)
        stages.done("prior")
        splink_log.stage = "u"
        linker.training.estimate_u_using_random_sampling(
            max_pairs=settings.max_pairs_for_u, seed=settings.seed
        )
        stages.done("u")
        sessions, evidence = _estimate_m(con, linker, settings)
        stages.done("m")
        splink = linker.misc.save_model_to_json()
        splink.pop("linker_uid", None)  # random per linker; the model must be reproducible
        untrained = _untrain_thin_comparisons(splink, evidence)
        not_learnt = splink_log.levels_not_learnt(splink, untrained, evidence, MIN_EM_PAIRS)
        m_bounded = _bound_unlearnt_m(splink, evidence, untrained)
        bounded = _bound_unobserved_u(splink, min(settings.max_pairs_for_u, kept * (kept - 1) // 2))
    diagnostics = splink_log.as_dict()
    diagnostics["levels_not_learnt"] = not_learnt
    training = {
        "records": len(records),
        "trained_on_records": int(kept),
        "sampled": sample is not None,
        "probability_two_random_records_match": prior,
        "em_sessions": sessions,
        "em_comparable_pairs": evidence,
        "untrained_comparisons": untrained,
        "u_bounded_levels": bounded,
        "m_bounded_levels": m_bounded,
        "seconds": round(time.perf_counter() - started, 3),
        "stage_seconds": stages.seconds,
        "diagnostics": diagnostics,
    }
    logger.info("identity model trained: %s", training)
    return TrainedModel(settings, splink, training)


def _comparable_pairs(
    con: duckdb.DuckDBPyConnection, key: BlockingKey, settings: ModelSettings
) -> tuple[int, dict[str, int]]:
    """Pairs of an EM block, and those on which each comparison has something to compare."""
    counts = ["count(*)"]
    for spec in comparison_specs():
        both = spec.comparable_sql or " or ".join(
            f"(l.{c} is not null and r.{c} is not null)" for c in spec.comparable
        )
        counts.append(f"count(*) filter (where coalesce({both}, false))")
    join = " and ".join(f"l.{c} = r.{c}" for c in key.columns)
    total, *row = con.sql(
        f"select {', '.join(counts)} from {_INPUT_TABLE} as l join {_INPUT_TABLE} as r "
        f"on {join} and l.record_uid < r.record_uid "
        f"and l.{key.size_column} <= {settings.max_block_size}"
    ).fetchall()[0]
    comparable = {spec.name: int(n) for spec, n in zip(comparison_specs(), row, strict=True)}
    return int(total), comparable


def _estimate_m(
    con: duckdb.DuckDBPyConnection, linker: Linker, settings: ModelSettings
) -> tuple[list[str], dict[str, int]]:
    """Run the EM sessions needed to train every comparison.

    A session over fewer than ``MIN_EM_PAIRS`` pairs is skipped: Splink averages the m values
    of all sessions alike, and a few dozen pairs (say, the rare records sharing a last name
    and a birth date when one source has no birth dates) give degenerate ones.

    Returns:
        The sessions run, and per comparison the number of pairs EM could learn it from.
    """
    columns = {
        c.output_column_name: {col.input_name for col in c._input_columns_used_by_case_statement}
        for c in linker._settings_obj.core_model_settings.comparisons
    }
    evidence = dict.fromkeys(columns, 0)
    sessions = []
    for index, key in enumerate(EM_TRAINING_KEYS):
        trains = {name for name, used in columns.items() if not used & set(key.columns)}
        lacking = {name for name in trains if evidence[name] < MIN_EM_PAIRS}
        if index >= EM_ALWAYS and not lacking:
            continue
        splink_stage(key.name)
        pairs, comparable = _comparable_pairs(con, key, settings)
        if pairs < MIN_EM_PAIRS:
            logger.info("EM session %s skipped: only %d pairs", key.name, pairs)
            continue
        # A failed session leaves Splink's settings without the comparisons it blocked on
        # and with its own prior: keep a copy to put back.
        saved = linker._settings_obj.core_model_settings.copy()
        # The pairs are counted exactly above: Splink's own estimate (a probe on 1% of the
        # records, i.e. 1 pair in 10,000) finds none in a block of a few thousand pairs and
        # warns about it, so sampling is asked for only when the block is over the cap.
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                key.sql(settings.max_block_size),
                max_pairs=settings.em_max_pairs if pairs > settings.em_max_pairs else None,
            )
        except SplinkException as exc:
            linker._settings_obj.core_model_settings = saved
            logger.info("EM session %s skipped: %s", key.name, str(exc).splitlines()[0])
            continue
        sessions.append(key.name)
        for name in trains:
            evidence[name] += comparable[name]
    return sessions, evidence


def _bound_unobserved_u(splink: dict[str, Any], sampled_pairs: int) -> list[str]:
    """Give levels never seen among random pairs a u of 3 / pairs sampled (rule of three).

    Splink otherwise falls back to a generic default u, which made a rare but telling level
    (first and last name swapped) weigh almost nothing. Only levels with a trained m are
    bounded: a level with neither m nor u keeps Splink's defaults.
    """
    bound = 3.0 / max(sampled_pairs, 3)
    bounded = []
    for comparison in splink["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level") or level.get("fix_u_probability"):
                continue
            if "u_probability" not in level and "m_probability" in level:
                level["u_probability"] = bound
                bounded.append(f"{comparison['output_column_name']}: {level['label_for_charts']}")
    return bounded


def _bound_unlearnt_m(
    splink: dict[str, Any], evidence: Mapping[str, int], untrained: Sequence[str]
) -> list[str]:
    """Give levels EM never saw an m of at most 3 / the pairs it learnt from (rule of three).

    Splink otherwise uses a generic default (5% spread over the levels), which next to a u
    measured on a million random pairs made a level no pair of one person ever reached weigh
    up to 12 bits (the same street in another town, on the sample world). Comparisons left to
    Splink's defaults as a whole (``untrained``) keep them.
    """
    bounded = []
    for comparison in splink["comparisons"]:
        name = comparison["output_column_name"]
        if name in untrained:
            continue
        levels = [lvl for lvl in comparison["comparison_levels"] if not lvl.get("is_null_level")]
        defaults = _default_m_values(len(levels))  # indexed by comparison vector value
        bound = 3.0 / max(evidence.get(name, 0), 3)
        for index, level in enumerate(levels):
            if "m_probability" in level or level.get("fix_m_probability"):
                continue
            level["m_probability"] = min(defaults[len(levels) - 1 - index], bound)
            bounded.append(f"{name}: {level['label_for_charts']}")
    return bounded


def _untrain_thin_comparisons(splink: dict[str, Any], evidence: Mapping[str, int]) -> list[str]:
    """Forget m values learnt from too few pairs (Splink's defaults are used instead).

    EM on a handful of comparable pairs gives degenerate m values (one level 1.0, the others
    ~0, i.e. a -20 bit veto), e.g. birth dates when only one source has them.
    """
    thin = sorted(name for name, count in evidence.items() if count < MIN_EM_PAIRS)
    for comparison in splink["comparisons"]:
        if comparison["output_column_name"] in thin:
            for level in comparison["comparison_levels"]:
                level.pop("m_probability", None)
    if thin:  # reported in the training diagnostics: nothing for whoever watches the logs to do
        logger.info(
            "identity model: fewer than %d pairs to learn %s from; Splink's default m values "
            "are used for them",
            MIN_EM_PAIRS,
            ", ".join(thin),
        )
    return thin


def _estimate_prior(linker: Linker, settings: ModelSettings, records: int) -> float:
    """Prior match probability from deterministic rules, or one duplicate per record."""
    fallback = min(0.5, 1.0 / max(records - 1, 1))
    try:
        linker.training.estimate_probability_two_random_records_match(
            list(DETERMINISTIC_RULES), recall=settings.deterministic_rules_recall
        )
    except ValueError as exc:
        logger.warning("prior from deterministic rules failed (%s); using %.3g", exc, fallback)
        linker._settings_obj._probability_two_random_records_match = fallback
        return fallback
    prior = float(linker._settings_obj._probability_two_random_records_match)
    if not 0.0 < prior < 1.0:
        logger.warning("deterministic rules found no matches; prior set to %.3g", fallback)
        linker._settings_obj._probability_two_random_records_match = fallback
        return fallback
    return prior


# --------------------------------------------------------------------------------------------
# The trained model
# --------------------------------------------------------------------------------------------


class TrainedModel:
    """A trained Splink model plus the blocking it is applied with; JSON round-trips."""

    def __init__(
        self,
        settings: ModelSettings,
        splink_settings: Mapping[str, Any],
        training: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self._keys = settings.blocking_keys()
        self._splink = _with_blocking(splink_settings, self._keys, settings.max_block_size)
        self._infos = _comparison_infos(self._splink)
        # Fails now, not at the first real-time call, for a model of other comparisons.
        self._plan = _scoring_plan(self._splink)
        self.training: dict[str, Any] = dict(training or {})
        #: What Splink warned about during the last ``predict`` (its raw lines go to DEBUG).
        self.prediction_diagnostics: dict[str, Any] = {}

    @property
    def splink_settings(self) -> dict[str, Any]:
        """Splink's own settings dictionary with the trained m and u probabilities."""
        return json.loads(json.dumps(self._splink))

    @property
    def probability_two_random_records_match(self) -> float:
        """The prior: how likely two records drawn at random are the same person."""
        return float(self._splink["probability_two_random_records_match"])

    @property
    def blocking_keys(self) -> tuple[BlockingKey, ...]:
        """Column tuples that make two records a candidate pair."""
        return self._keys

    def to_json(self) -> dict[str, Any]:
        """The model as a JSON-ready dict (Splink's settings under ``splink``)."""
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "model_settings": self.settings.model_dump(mode="json"),
            "blocking_keys": [{"name": k.name, "columns": list(k.columns)} for k in self._keys],
            "training": self.training,
            "splink": self.splink_settings,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainedModel:
        """Rebuild a model from ``to_json`` output.

        Raises:
            ValueError: not a model document of a format version this code reads.
        """
        if not isinstance(data, Mapping) or data.get("format") != MODEL_FORMAT:
            raise ValueError(f"not an identity model document (expected format {MODEL_FORMAT})")
        if data.get("format_version") != MODEL_FORMAT_VERSION:
            raise ValueError(
                f"identity model format_version {data.get('format_version')} is not supported "
                f"(this code reads {MODEL_FORMAT_VERSION}); retrain the model"
            )
        settings = ModelSettings.model_validate(data.get("model_settings", {}))
        splink = data.get("splink")
        if not isinstance(splink, Mapping) or "comparisons" not in splink:
            raise ValueError("identity model document has no Splink settings under 'splink'")
        return cls(settings, splink, data.get("training"))

    def save(self, path: Path) -> None:
        """Write the model as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TrainedModel:
        """Read a model written by ``save``.

        Raises:
            ValueError: the file is missing, not JSON or not a model; the message names it.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ValueError(f"{path}: identity model file not found") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON identity model ({exc})") from exc
        try:
            return cls.from_json(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def _linker(self, con: duckdb.DuckDBPyConnection) -> Linker:
        return Linker(
            DuckDBAPI(con).register(_INPUT_TABLE),
            self.splink_settings,
            log_level=None,
            validate_settings=False,
        )

    def predict(self, records: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
        """Score all blocked pairs; the edge frame of pairs at or above the threshold.

        Raises:
            ValueError: bad threshold, or the frame's ``record_uid`` is missing, null or not
                unique.
        """
        threshold = self.settings.match_threshold if threshold is None else float(threshold)
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        started = time.perf_counter()
        with _connect(self.settings.threads) as con, capture_splink("predict") as splink_log:
            total, kept = _prepare(con, records, self._keys, _INPUT_TABLE)
            if kept < 2:
                return empty_edge_frame()
            linker = self._linker(con)
            predictions = linker.inference.predict(
                threshold_match_probability=threshold, warning_mode="never"
            )
            sql = _edge_select_sql(self._infos, predictions.physical_name)
            table = con.sql(
                f"select * from ({sql}) where match_probability >= {threshold!r} "
                "order by record_uid_l, record_uid_r"
            ).to_arrow_table()
        captured = splink_log.as_dict()
        self.prediction_diagnostics = {
            k: captured[k] for k in ("splink_warnings", "splink_log_records")
        }
        logger.info(
            "identity model scored %d of %d records: %d edges >= %s in %.1f s",
            kept,
            total,
            table.num_rows,
            threshold,
            time.perf_counter() - started,
        )
        return _edge_frame(table)

    def count_comparisons(self, records: pd.DataFrame) -> dict[str, int]:
        """Pairs each blocking key adds (after the keys before it), for sizing a run."""
        from splink.blocking_analysis import count_comparisons_from_blocking_rules

        with _connect(self.settings.threads) as con, capture_splink("count_comparisons"):
            _prepare(con, records, self._keys, _INPUT_TABLE)
            counts = count_comparisons_from_blocking_rules(
                DuckDBAPI(con).register(_INPUT_TABLE),
                blocking_rules=[k.sql(self.settings.max_block_size) for k in self._keys],
                link_type="dedupe_only",
                unique_id_column_name="record_uid",
                record_sample_proportion=1.0,
            )
        return {
            key.name: int(count["marginal_comparison_count"])
            for key, count in zip(self._keys, counts, strict=True)
        }

    def scorer(self, records: pd.DataFrame) -> CandidateScorer:
        """An in-memory index of ``records`` for scoring single new records."""
        return CandidateScorer(self, records)


# --------------------------------------------------------------------------------------------
# Real-time scoring
# --------------------------------------------------------------------------------------------

_KEY_SEPARATOR: Final[str] = "\x1f"


def _hash(value: str) -> int:
    """64-bit hash of a string; Python twin of DuckDB's ``md5_number_upper`` (_HASH_SQL)."""
    return int.from_bytes(hashlib.md5(value.encode("utf-8")).digest()[:8], "little")


def _hash_sql(expression: str) -> str:
    return f"md5_number_upper({expression})"


def _key_sql(key: BlockingKey) -> str:
    """The key's hash, null when a part is missing (Python: ``_key_hash``)."""
    not_null = " and ".join(f"{c} is not null" for c in key.columns)
    joined = f"concat_ws(chr(31), {', '.join(key.columns)})"
    return f"case when {not_null} then {_hash_sql(joined)} end"


def _sorted_index(hashes: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(sorted hashes, row positions) of the non-null hashes."""
    array = hashes.combine_chunks() if isinstance(hashes, pa.ChunkedArray) else hashes
    valid = np.flatnonzero(array.is_valid().to_numpy(zero_copy_only=False))
    values = array.fill_null(0).to_numpy()[valid].astype(np.uint64)
    order = np.argsort(values, kind="stable")
    return values[order], valid[order].astype(np.int64)


@dataclass(frozen=True)
class _Level:
    """One trained level, with the numbers Splink's SQL uses for it."""

    label: str
    match_weight: float
    tf_column: str | None  # None: no term-frequency adjustment on this level
    tf_weight: float
    tf_log2_u: float
    tf_minimum_u: float


@dataclass(frozen=True)
class _Comparison:
    name: str
    tests: tuple[LevelTest, ...]
    levels: tuple[_Level, ...]


def _scoring_plan(splink: Mapping[str, Any]) -> tuple[float, list[_Comparison]]:
    """Prior weight and per-level weights of a trained model, paired with the Python tests.

    Raises:
        ValueError: the model's comparisons are not the ones this code defines (a model saved
            by another version): its levels could not be reproduced in real time.
    """
    settings = SettingsCreator.from_path_or_dict(dict(splink)).get_settings("duckdb")
    expected = SettingsCreator(
        link_type="dedupe_only", comparisons=person_comparisons()
    ).get_settings("duckdb")
    specs = {spec.name: spec for spec in comparison_specs()}
    trained = settings.core_model_settings.comparisons
    reference = {c.output_column_name: c for c in expected.core_model_settings.comparisons}
    plan = []
    for comparison in trained:
        name = comparison.output_column_name
        spec, ref = specs.get(name), reference.get(name)
        conditions = [level.sql_condition for level in comparison.comparison_levels]
        if (
            spec is None
            or ref is None
            or conditions != [level.sql_condition for level in ref.comparison_levels]
        ):
            raise ValueError(
                f"identity model comparison '{name}' differs from this version's comparisons; "
                "retrain the model"
            )
        levels = []
        for level in comparison.comparison_levels:
            has_tf = (
                level._has_tf_adjustments
                and level._tf_adjustment_weight != 0
                and not level._is_else_level
                and not level.is_null_level
            )
            levels.append(
                _Level(
                    label=level.label_for_charts,
                    match_weight=float(level._match_weight),
                    tf_column=level._tf_adjustment_input_column.unquote().name if has_tf else None,
                    tf_weight=float(level._tf_adjustment_weight) if has_tf else 0.0,
                    tf_log2_u=math.log2(
                        level._u_probability_corresponding_to_exact_match(
                            comparison.comparison_levels
                        )
                    )
                    if has_tf
                    else 0.0,
                    tf_minimum_u=float(level._tf_minimum_u_value),
                )
            )
        plan.append(_Comparison(name, spec.tests(), tuple(levels)))
    prior = prob_to_match_weight(settings.core_model_settings.probability_two_random_records_match)
    return float(prior), plan


@dataclass
class _KeyIndex:
    key: BlockingKey
    hashes: np.ndarray  # sorted key hashes
    positions: np.ndarray  # row positions, in hash order
    added: dict[int, list[int]] = field(default_factory=dict)


class CandidateScorer:
    """Scores one record against an indexed record frame exactly as batch ``predict`` would.

    Candidates come from in-memory indexes over the model's blocking keys (sorted arrays of
    64-bit key hashes -> row positions: small at millions of records), with the batch
    block-size cap. Each candidate pair is scored in-process: every comparison level has a
    Python test next to its Splink SQL (``identity.comparisons``), and the weights are the
    trained model's own, combined with the same formulas (term-frequency adjustment, prior,
    probability) as Splink's prediction SQL. Term frequencies are those of the indexed frame;
    values first seen in ``add``-ed records have none (Splink then uses the other side's).
    Thread-safe.
    """

    def __init__(self, model: TrainedModel, records: pd.DataFrame) -> None:
        self._keys = model.blocking_keys
        self._cap = model.settings.max_block_size
        self._prior, self._plan = model._plan
        self._lock = threading.RLock()
        self._input_columns = [
            "record_uid",
            *[c for c in _input_columns(self._keys) if c != "first_name_canonical"],
            "first_name_canonical",
        ]
        self._value_columns = [*self._input_columns, *_DERIVED_SQL]
        self._tf_columns = sorted(
            {lvl.tf_column for c in self._plan for lvl in c.levels if lvl.tf_column}
        )
        self._tf_lookup: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        con = _connect(model.settings.threads)
        try:
            _prepare(con, records, self._keys, _INPUT_TABLE)
            select = [f"t.{c}" for c in self._value_columns]
            joins = []
            for column in self._tf_columns:
                # Splink's term frequency: share of the non-null values of the column.
                tf = (
                    f"select {column}, cast(count(*) as float8) / "
                    f"(select count({column}) from {_INPUT_TABLE}) as tf_{column} "
                    f"from {_INPUT_TABLE} where {column} is not null group by {column}"
                )
                values = con.sql(
                    f"select {_hash_sql(column)} as h, tf_{column} as tf from ({tf})"
                ).to_arrow_table()
                hashes, positions = _sorted_index(values.column("h"))
                frequencies = values.column("tf").to_numpy()[positions]
                self._tf_lookup[column] = (hashes, frequencies)
                joins.append(f"left join ({tf}) as tf_{column} using ({column})")
                select.append(f"tf_{column}.tf_{column}")
            hashed = [f"{_hash_sql('t.record_uid')} as h__record_uid"]
            hashed += [f"{_key_sql(k)} as h__{k.name}" for k in self._keys]
            table = con.sql(
                f"select {', '.join(select + hashed)} from {_INPUT_TABLE} as t {' '.join(joins)}"
            ).to_arrow_table()
        finally:
            con.close()
        self._uid_index = _sorted_index(table.column("h__record_uid"))
        self._indexes = [
            _KeyIndex(key, *_sorted_index(table.column(f"h__{key.name}"))) for key in self._keys
        ]
        self._table = table.select(
            [c for c in table.column_names if not c.startswith("h__")]
        ).combine_chunks()
        self._schema = self._table.schema
        self._size = self._table.num_rows
        self._added: list[dict[str, Any]] = []
        self._added_uids: dict[str, int] = {}
        self._removed: set[int] = set()

    def __len__(self) -> int:
        """Records that can currently be candidates."""
        return self._size + len(self._added) - len(self._removed)

    # -- records ---------------------------------------------------------------------------

    def _clean(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record as the batch model sees it (text or None, derived columns, tf)."""
        row: dict[str, Any] = {}
        for column in self._input_columns:
            value = record.get(column)
            if column == PERSON_IDENTIFIERS_COLUMN:
                row[column] = person_identifiers_text(value)
            elif value is None or (not isinstance(value, str) and pd.isna(value)):
                row[column] = None
            else:
                row[column] = (value if isinstance(value, str) else str(value)) or None
        if row["first_name_canonical"] is None:
            row["first_name_canonical"] = row["first_name"]
        first, last = row["first_name"], row["last_name"]
        row[NAME_PAIR_COLUMN] = f"{min(first, last)} {max(first, last)}" if first and last else None
        row[EMAIL_USER_COLUMN] = email_user(row["email"])
        row[BIRTH_DAY_COLUMN] = birth_day(row["birth_date"])
        for column in self._tf_columns:
            row[f"tf_{column}"] = self._term_frequency(column, row[column])
        return row

    def _term_frequency(self, column: str, value: str | None) -> float | None:
        if value is None:
            return None
        hashes, frequencies = self._tf_lookup[column]
        h = np.uint64(_hash(value))
        i = int(np.searchsorted(hashes, h))
        return float(frequencies[i]) if i < len(hashes) and hashes[i] == h else None

    @staticmethod
    def _scorable(row: Mapping[str, Any]) -> bool:
        return sum(row[c] is not None for c in _EVIDENCE_COLUMNS) >= MIN_COMPARED_ATTRIBUTES

    @staticmethod
    def _key_hash(key: BlockingKey, row: Mapping[str, Any]) -> int | None:
        values = [row[c] for c in key.columns]
        if any(v is None for v in values):
            return None
        return _hash(_KEY_SEPARATOR.join(values))

    def _uid_at(self, position: int) -> str:
        if position < self._size:
            return str(self._table.column("record_uid")[position].as_py())
        return str(self._added[position - self._size]["record_uid"])

    def _position_of(self, uid: str) -> int | None:
        if uid in self._added_uids:
            return self._added_uids[uid]
        hashes, positions = self._uid_index
        h = np.uint64(_hash(uid))
        lo, hi = np.searchsorted(hashes, h, "left"), np.searchsorted(hashes, h, "right")
        for position in positions[lo:hi]:
            if int(position) not in self._removed and self._uid_at(int(position)) == uid:
                return int(position)
        return None

    def _rows(self, positions: Sequence[int]) -> dict[int, dict[str, Any]]:
        base = [p for p in positions if p < self._size]
        rows: dict[int, dict[str, Any]] = {}
        if base:
            taken = self._table.take(pa.array(base, type=pa.int64())).to_pylist()
            rows.update(zip(base, taken, strict=True))
        for p in positions:
            if p >= self._size:
                rows[p] = self._added[p - self._size]
        return rows

    def _candidates(self, row: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Candidate rows: a shared key value whose block is within the cap, never itself."""
        uid = row["record_uid"]
        blocks: list[tuple[BlockingKey, list[int]]] = []
        with self._lock:
            for index in self._indexes:
                h = self._key_hash(index.key, row)
                if h is None:
                    continue
                lo = np.searchsorted(index.hashes, np.uint64(h), "left")
                hi = np.searchsorted(index.hashes, np.uint64(h), "right")
                block = [int(p) for p in index.positions[lo:hi]]
                block.extend(index.added.get(h, ()))
                if self._removed:
                    block = [p for p in block if p not in self._removed]
                # The block also holds the query record (batch counts both ends of a pair).
                if len(block) + 1 > self._cap and (
                    len(block) > self._cap or uid not in {self._uid_at(p) for p in block}
                ):
                    continue
                blocks.append((index.key, block))
            rows = self._rows(sorted({p for _, block in blocks for p in block}))
        found: dict[int, dict[str, Any]] = {}
        for key, block in blocks:
            for position in block:
                candidate = rows[position]
                # A 64-bit hash collision must not make a candidate: compare the values.
                if position not in found and all(candidate[c] == row[c] for c in key.columns):
                    found[position] = candidate
        return [c for _, c in sorted(found.items()) if c["record_uid"] != uid]

    def candidates(self, record: Mapping[str, Any]) -> list[str]:
        """Record uids that share a blocking key with ``record`` (never itself)."""
        row = self._clean(record)
        if not self._scorable(row):
            return []
        return [c["record_uid"] for c in self._candidates(row)]

    def _score_pair(self, left: Mapping[str, Any], right: Mapping[str, Any]) -> tuple[float, str]:
        weight = self._prior
        details: dict[str, dict[str, Any]] = {}
        for comparison in self._plan:
            level = next(
                lvl
                for test, lvl in zip(comparison.tests, comparison.levels, strict=True)
                if test(left, right)
            )
            part = level.match_weight
            weight += part
            if level.tf_column is not None:
                tf_l, tf_r = left[f"tf_{level.tf_column}"], right[f"tf_{level.tf_column}"]
                adjustment = 0.0
                if tf_l is not None or tf_r is not None:
                    tf = max(
                        tf_l if tf_l is not None else tf_r,
                        tf_r if tf_r is not None else tf_l,
                        level.tf_minimum_u,
                    )
                    adjustment = level.tf_weight * (level.tf_log2_u - math.log2(tf))
                weight += adjustment
                part = part + adjustment
            details[comparison.name] = {"level": level.label, "match_weight": round(part, 4)}
        return weight, json.dumps(details, separators=(",", ":"))

    def score(self, record: Mapping[str, Any]) -> pd.DataFrame:
        """Edge-frame rows for ``record`` against every candidate, most probable first.

        All candidates are returned, whatever their probability; compare
        ``match_probability`` with the model's threshold to decide. A record without
        ``record_uid`` is scored as ``"new:record"``.
        """
        row = self._clean(record)
        if row["record_uid"] is None:
            row["record_uid"] = "new:record"
        if not self._scorable(row):
            return empty_edge_frame()
        candidates = self._candidates(row)
        if not candidates:
            return empty_edge_frame()
        uid = row["record_uid"]
        edges = []
        for candidate in candidates:
            weight, detail = self._score_pair(row, candidate)
            other = candidate["record_uid"]
            probability = (
                1.0 / (1.0 + 2.0 ** (-weight)) if weight >= 0 else 2.0**weight / (1.0 + 2.0**weight)
            )
            edges.append(
                (
                    min(uid, other),
                    max(uid, other),
                    "model",
                    "splink",
                    None,
                    probability,
                    weight,
                    detail,
                )
            )
        edges.sort(key=lambda edge: -edge[5])
        return pd.DataFrame.from_records(edges, columns=list(EDGE_COLUMNS))

    def add(self, record: Mapping[str, Any]) -> None:
        """Make ``record`` a candidate for later calls (replacing one with the same uid).

        Raises:
            ValueError: the record has no ``record_uid``.
        """
        row = self._clean(record)
        uid = row["record_uid"]
        if uid is None:
            raise ValueError("add: the record needs a record_uid")
        with self._lock:
            previous = self._position_of(uid)
            if previous is not None:
                self._removed.add(previous)
                self._added_uids.pop(uid, None)
            if not self._scorable(row):
                logger.debug("record %s has too few attributes for the model", uid)
                return
            position = self._size + len(self._added)
            self._added.append(row)
            self._added_uids[uid] = position
            for index in self._indexes:
                h = self._key_hash(index.key, row)
                if h is not None:
                    index.added.setdefault(h, []).append(position)


__all__ = [
    "CandidateScorer",
    "TrainedModel",
    "empty_edge_frame",
    "train_model",
]
