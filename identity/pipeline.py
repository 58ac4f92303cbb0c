"""One identity run: normalize -> rules -> model -> guarded graph -> stable ids -> outputs.

``resolve`` is pure (frames in, frames out; the clock and run id are passed in) so the Dagster
asset, the CLI and tests run exactly the same code. ``write_resolution`` and
``read_previous_state`` are the only functions that touch files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from identity._frames import arrow_frame, conform, empty_frame
from identity.comparisons import MIN_COMPARED_ATTRIBUTES
from identity.diagnostics import MODEL_OFF, MODEL_REUSED, MODEL_SKIPPED, MODEL_TRAINED
from identity.graph import ClusterResult, SplitEvent, resolve_clusters
from identity.ids import (
    CLAIM_COLUMNS,
    RECORD_IDENTIFIER_COLUMNS,
    IdAssignment,
    PreviousState,
    assign_customer_ids,
    empty_aliases,
    empty_history,
)
from identity.model import _EVIDENCE_COLUMNS, MIN_EM_PAIRS, TrainedModel, train_model
from identity.normalize import NormalizationReport, Normalizer
from identity.rules import (
    RuleResult,
    RuleStats,
    deterministic_edges,
    empty_edge_frame,
    guard_model_edges,
    normalize_identifiers,
    with_person_identifiers,
)
from identity.settings import IdentitySettings, ModelSettings
from identity.vocabulary import (
    ALIASES_FILE,
    ATTRIBUTE_SCHEMA,
    ATTRIBUTES_FILE,
    AUDITED_EDGE_COLUMNS,
    EDGE_SCHEMA,
    EDGES_FILE,
    HISTORY_FILE,
    IDENTIFIERS_FILE,
    IDENTIFIERS_SCHEMA,
    IDENTITY_ATTRIBUTES,
    IDENTITY_MAP_FILE,
    MODEL_FILE,
    RECORDS_FILE,
    STATS_FILE,
    TABLE_SCHEMAS,
    WEAK_VALUES_FILE,
    pandas_dtypes,
)

logger = logging.getLogger(__name__)

#: Fewer records with enough attributes to compare (``MIN_COMPARED_ATTRIBUTES`` of the
#: compared ones) cannot train a Fellegi-Sunter model worth trusting: customers are resolved
#: with deterministic links alone. Records without attributes (a bare account id, a cookie) do
#: not count: they are never compared, however many there are.
MIN_RECORDS_FOR_MODEL: Final[int] = 50

Progress = Callable[[str], None]


@dataclass
class Resolution:
    """Everything one run produced: the output tables, the model and the figures."""

    run_id: str
    resolved_at: datetime
    records: pd.DataFrame
    identity_map: pd.DataFrame
    identifiers: pd.DataFrame
    edges: pd.DataFrame
    history: pd.DataFrame
    events: pd.DataFrame
    aliases: pd.DataFrame
    weak_values: pd.DataFrame
    model: TrainedModel | None
    stats: dict[str, Any] = field(default_factory=dict)
    splits: list[SplitEvent] = field(default_factory=list)
    #: identity_attributes: golden-ready attributes of each people record, with statuses.
    attributes: pd.DataFrame = field(default_factory=lambda: empty_frame(ATTRIBUTE_SCHEMA))


def _timed(
    seconds: dict[str, float], step: str, progress: Progress | None, cpu: dict[str, float]
) -> Callable[[], None]:
    if progress is not None:
        progress(step)
    started, started_cpu = time.perf_counter(), time.process_time()

    def done() -> None:
        seconds[step] = round(time.perf_counter() - started, 3)
        cpu[step] = round(time.process_time() - started_cpu, 3)

    return done


def resolve(
    records: pd.DataFrame,
    identifiers: pd.DataFrame | None,
    settings: IdentitySettings,
    *,
    previous: PreviousState | None = None,
    model: TrainedModel | None = None,
    train: bool = True,
    run_id: str,
    now: datetime,
    progress: Progress | None = None,
    claims: pd.DataFrame | None = None,
) -> Resolution:
    """Resolve raw records (see ``collect_records``) into customers.

    ``model`` is reused when given; otherwise one is trained when ``train`` is true and enough
    records carry attributes to compare. ``previous`` makes customer ids stable across runs.
    ``claims`` (see ``read_provisional_claims``) are the real-time path's provisional ids: a
    new customer holding a claimed identifier keeps the provisional id, an existing one takes
    it as an alias (``identity.ids``).

    When too few records carry attributes to compare, the model is skipped and customers
    come from deterministic links alone; ``stats["model"]`` says so (``status``, ``skipped``).

    Raises:
        ValueError: records without ``record_uid``, or with null or duplicate record uids.
    """
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    if "record_uid" not in records:
        raise ValueError("records need a 'record_uid' column ('<source>:<record_id>')")
    if records["record_uid"].isna().any():
        raise ValueError("records: record_uid must not be null")
    duplicated = records["record_uid"][records["record_uid"].duplicated()]
    if not duplicated.empty:
        raise ValueError(
            f"records: record_uid must be unique; duplicated: {sorted(set(duplicated))[:5]}"
        )

    done = _timed(seconds, "normalize", progress, cpu_seconds)
    normalizer = Normalizer(settings, today=now.date())
    normalized, attributes, report = normalizer.normalize(records)
    rule_stats = RuleStats()
    named = normalize_identifiers(identifiers, normalizer, rule_stats)
    done()

    done = _timed(seconds, "rules", progress, cpu_seconds)
    rules = deterministic_edges(normalized, named, settings)
    rules.stats.identifier_junk = rule_stats.identifier_junk
    rules.stats.identifier_invalid = rule_stats.identifier_invalid
    # the model also compares person-level identifiers (a transposed national id)
    normalized = with_person_identifiers(normalized, rules)
    done()

    model_stats: dict[str, Any] = {
        "status": MODEL_REUSED if model is not None else MODEL_OFF,
        "used": False,
    }
    model_edges = empty_edge_frame()
    if model is None and train:
        model, model_stats = _train_or_skip(
            normalized, settings.model, seconds, cpu_seconds, progress
        )
    # which comparisons could be learnt at all (read by identity.diagnostics)
    model_stats["attribute_records"] = attribute_records(normalized)
    if model is not None:
        done = _timed(seconds, "predict", progress, cpu_seconds)
        predicted = model.predict(normalized)
        done()
        model_edges = guard_model_edges(
            predicted.assign(
                is_accepted=True,
                rejected_reason=pd.Series(pd.NA, index=predicted.index, dtype="str"),
            ),
            normalized,
        )
        model_stats.update(
            used=True,
            edges=len(model_edges),
            match_threshold=model.settings.match_threshold,
            training=model.training,  # with Splink's diagnostics (training["diagnostics"])
            prediction=model.prediction_diagnostics,
        )

    done = _timed(seconds, "graph", progress, cpu_seconds)
    edges = _concat_edges(rules.edges, model_edges)
    unique_values = _unique_values(rules, settings)
    clustered = resolve_clusters(
        normalized["record_uid"],
        edges,
        unique_values=unique_values,
        unique_types=settings.unique_identifier_types,
        max_cluster_size=settings.max_cluster_size,
    )
    done()

    done = _timed(seconds, "ids", progress, cpu_seconds)
    merge_causes, split_causes = _causes(clustered, previous)
    claims = _normalized_claims(claims, normalizer)
    assignment = assign_customer_ids(
        clustered.clusters,
        previous,
        salt=settings.id_salt,
        run_id=run_id,
        now=now,
        merge_causes=merge_causes,
        split_causes=split_causes,
        claims=claims,
        record_identifiers=_claimed_identifiers(rules, claims),
    )
    done()

    done = _timed(seconds, "outputs", progress, cpu_seconds)
    identity_map = _identity_map(normalized, assignment, now)
    identifiers_out = _identifiers(rules, identity_map)
    edges_out = clustered.edges.assign(run_id=run_id)
    history = _concat_history(previous, assignment.events)
    done()

    stats = _stats(
        identity_map, edges_out, assignment, clustered, report, rules, model_stats, seconds
    )
    stats["cpu_seconds"] = cpu_seconds
    logger.info(
        "identity run %s: %d records -> %d customers",
        run_id,
        len(identity_map),
        stats["customers"],
    )
    return Resolution(
        run_id=run_id,
        resolved_at=now,
        records=normalized,
        identity_map=identity_map,
        identifiers=identifiers_out,
        edges=edges_out,
        history=history,
        events=assignment.events,
        aliases=assignment.aliases,
        weak_values=rules.weak_values,
        model=model,
        stats=stats,
        splits=clustered.splits,
        attributes=attributes,
    )


def _filled(
    normalized: pd.DataFrame, attributes: Sequence[str] = _EVIDENCE_COLUMNS
) -> dict[str, pd.Series]:
    """Per attribute present in the frame: which records hold a value."""
    filled = {}
    for name in attributes:
        if name in normalized.columns:
            column = normalized[name]
            held = column.notna()
            if pd.api.types.is_string_dtype(column.dtype):
                held &= column.ne("")  # the model reads an empty string as null
            filled[name] = held
    return filled


def attribute_records(normalized: pd.DataFrame) -> dict[str, int]:
    """Records holding each attribute (0 when no source maps it): what the model could learn."""
    names = list(dict.fromkeys([*_EVIDENCE_COLUMNS, *IDENTITY_ATTRIBUTES]))
    filled = _filled(normalized, names)
    return {name: int(filled[name].sum()) if name in filled else 0 for name in names}


def model_ready_records(normalized: pd.DataFrame) -> int:
    """Records the model can compare: those with enough of the compared attributes."""
    filled = _filled(normalized)
    if not filled or normalized.empty:
        return 0
    counts = sum(column.astype("int64") for column in filled.values())
    return int((counts >= MIN_COMPARED_ATTRIBUTES).sum())


def _why_not_train(normalized: pd.DataFrame, settings: ModelSettings, ready: int) -> str | None:
    """Why too few records carry the attributes a model compares, or None when enough do.

    Training reads a random sample of large frames, so the records it would see are counted.
    """
    total = len(normalized)
    needed = f"at least {MIN_RECORDS_FOR_MODEL} are needed to train the model"
    attributes = ", ".join(_EVIDENCE_COLUMNS)
    if total > settings.training_sample_records:
        sampled = settings.training_sample_records
        expected = ready * sampled // total
        if expected < MIN_RECORDS_FOR_MODEL:
            return (
                f"about {expected:,} of the {sampled:,} records sampled for training (of "
                f"{total:,}) have {MIN_COMPARED_ATTRIBUTES} or more of {attributes}; {needed}"
            )
        return None
    if ready < MIN_RECORDS_FOR_MODEL:
        return (
            f"only {ready:,} of {total:,} records have {MIN_COMPARED_ATTRIBUTES} or more of "
            f"{attributes}; {needed}"
        )
    return None


def _why_unlearnt(training: Mapping[str, Any]) -> str | None:
    """Why a trained model learnt nothing from the data, or None when it learnt something.

    A model whose every comparison fell back to Splink's default m values was not estimated
    from these records (every EM session had too few pairs): its scores would be guesses.
    """
    pairs: Mapping[str, int] = training.get("em_comparable_pairs") or {}
    untrained = set(training.get("untrained_comparisons") or ())
    if not pairs or any(name not in untrained for name in pairs):
        return None
    records = f"{int(training.get('trained_on_records', 0)):,} records with enough attributes"
    if not training.get("em_sessions"):
        return (
            f"no comparison could be learnt: among the {records}, no blocking key found "
            f"{MIN_EM_PAIRS} record pairs to learn from"
        )
    counts = ", ".join(f"{name} {count:,}" for name, count in pairs.items())
    return (
        f"no comparison could be learnt: the EM sessions had fewer than {MIN_EM_PAIRS} "
        f"comparable pairs for each ({counts}) among the {records}"
    )


def _train_or_skip(
    normalized: pd.DataFrame,
    settings: ModelSettings,
    seconds: dict[str, float],
    cpu_seconds: dict[str, float],
    progress: Progress | None,
) -> tuple[TrainedModel | None, dict[str, Any]]:
    """Train a model, or say why this run resolves with deterministic links alone.

    Skipped when too few records carry enough attributes to compare (an identifiers-only
    source: account ids and orders), when training finds too few of them in its sample, and
    when the trained model learnt no comparison from the data.
    """
    ready = model_ready_records(normalized)
    stats: dict[str, Any] = {"status": MODEL_SKIPPED, "used": False, "model_ready_records": ready}
    reason = _why_not_train(normalized, settings, ready)
    if reason is None:
        done = _timed(seconds, "train_model", progress, cpu_seconds)
        try:
            model: TrainedModel | None = train_model(normalized, settings)
        except ValueError as exc:  # record uids are checked above: too few comparable records
            model, reason = None, f"training stopped: {exc}"
        done()
        if model is not None:
            reason = _why_unlearnt(model.training)
            if reason is None:
                stats.update(status=MODEL_TRAINED, trained=True)
                return model, stats
            stats["training"] = model.training  # what it could not learn, for the diagnostics
    stats["skipped"] = reason
    logger.info("identity model skipped (deterministic links alone): %s", reason)
    return None, stats


def _concat_edges(rule_edges: pd.DataFrame, model_edges: pd.DataFrame) -> pd.DataFrame:
    frames = [f[list(AUDITED_EDGE_COLUMNS)] for f in (rule_edges, model_edges) if not f.empty]
    if not frames:
        return empty_edge_frame()
    edges = pd.concat(frames, ignore_index=True)
    return edges.astype(pandas_dtypes(EDGE_SCHEMA, AUDITED_EDGE_COLUMNS))


def _causes(
    clustered: ClusterResult, previous: PreviousState | None
) -> tuple[dict[int, str], dict[int, str]]:
    """Human-readable causes for merges (evidence between old customers) and guard splits."""
    clusters = clustered.clusters
    split_causes: dict[int, str] = {}
    if clustered.splits:
        label_of = clusters.set_index("record_uid")["cluster"]
        for event in clustered.splits:
            labels = label_of.reindex(list(event.record_uids)).to_numpy()
            for label in set(labels.tolist()):
                split_causes[int(label)] = "guard: " + ", ".join(event.causes)
    merge_causes: dict[int, str] = {}
    if previous is None or previous.identity_map.empty:
        return merge_causes, split_causes
    prev = previous.identity_map[["record_uid", "customer_id"]]
    prev = prev.assign(previous_code=pd.factorize(prev["customer_id"])[0])
    joined = clusters.merge(prev, on="record_uid", how="inner")
    counts = joined.groupby("cluster")["previous_code"].nunique()
    merged = counts[counts > 1].index
    if len(merged) == 0:
        return merge_causes, split_causes
    involved = joined[joined["cluster"].isin(merged)]
    owner = dict(zip(involved["record_uid"], involved["customer_id"], strict=True))
    members = clusters[clusters["cluster"].isin(merged)]
    label_of = dict(zip(members["record_uid"], members["cluster"], strict=True))
    edges = clustered.edges[clustered.edges["is_accepted"]]
    edges = edges[edges["record_uid_l"].isin(list(label_of))]
    for left, right, rule in edges[["record_uid_l", "record_uid_r", "rule"]].itertuples(
        index=False
    ):
        a, b = owner.get(left), owner.get(right)
        if a is not None and b is not None and a != b:
            merge_causes.setdefault(int(label_of[left]), f"evidence: {rule}")
    for label in merged:
        merge_causes.setdefault(int(label), "linked through new records")
    return merge_causes, split_causes


def _identity_map(
    normalized: pd.DataFrame, assignment: IdAssignment, now: datetime
) -> pd.DataFrame:
    frame = normalized[["record_uid", "source", "record_id"]].merge(
        assignment.identity_map, on="record_uid", how="left"
    )
    frame["cluster_size"] = (
        frame.groupby("customer_id")["record_uid"].transform("size").astype("int64")
    )
    frame["resolved_at"] = pd.Series(now, index=frame.index, dtype="datetime64[us, UTC]")
    return frame.reset_index(drop=True)


def _normalized_claims(claims: pd.DataFrame | None, normalizer: Normalizer) -> pd.DataFrame | None:
    """Claim values normalized as the records' identifiers are (idempotent on values the
    real-time path already normalized); a junk or unreadable value becomes null, so the claim
    row is counted as invalid rather than dropped unseen."""
    if claims is None or claims.empty:
        return claims
    missing = [c for c in CLAIM_COLUMNS[:3] if c not in claims]
    if missing:
        raise ValueError(f"claims need columns {list(CLAIM_COLUMNS[:3])}; missing {missing}")
    claims = claims.reset_index(drop=True)
    rows = pd.DataFrame(
        {
            "record_uid": pd.Series(range(len(claims))).astype("str"),
            "identifier_type": claims["identifier_type"].astype("str"),
            "identifier_value": claims["identifier_value"],
        }
    )
    clean = normalize_identifiers(rows, normalizer)
    value_of = dict(
        zip(clean["record_uid"].astype(int), clean["identifier_value"].astype(str), strict=True)
    )
    values = [value_of.get(i) for i in range(len(claims))]
    return claims.assign(identifier_value=pd.Series(values, dtype=object))


def _claimed_identifiers(rules: RuleResult, claims: pd.DataFrame | None) -> pd.DataFrame | None:
    """The records' identifiers a claim can be matched on: values some claim holds, neither a
    shared device's (not that person's) nor weak (a household phone is nobody's key)."""
    long = rules.identifiers
    if claims is None or claims.empty or long is None or long.num_rows == 0:
        return None
    wanted = sorted({str(v) for v in claims["identifier_value"].dropna().tolist()})
    value_type = long.schema.field("identifier_value").type
    chosen = long.filter(
        pc.and_(
            pc.is_in(long["identifier_value"], value_set=pa.array(wanted, value_type)),
            pc.invert(pc.fill_null(long["is_ambiguous"], False)),
        )
    ).select(list(RECORD_IDENTIFIER_COLUMNS))
    held = chosen.to_pandas().astype("str")
    weak = rules.weak_values
    if held.empty or weak is None or weak.empty:
        return held
    keys = ["identifier_type", "identifier_value"]
    flagged = held.merge(
        weak[keys].astype("str").drop_duplicates(), on=keys, how="left", indicator=True
    )
    return flagged[flagged["_merge"] == "left_only"][list(RECORD_IDENTIFIER_COLUMNS)]


def _unique_values(rules: RuleResult, settings: IdentitySettings) -> pd.DataFrame:
    """Values of the unique identifier types per record (not those of shared devices)."""
    long = rules.identifiers
    if long is None or long.num_rows == 0:
        return pd.DataFrame(columns=["record_uid", "identifier_type", "identifier_value"])
    wanted = pc.and_(
        pc.is_in(
            long["identifier_type"],
            pa.array(list(settings.unique_identifier_types), pa.large_string()),
        ),
        pc.invert(long["is_ambiguous"]),
    )
    chosen = long.filter(wanted).select(["record_uid", "identifier_type", "identifier_value"])
    return chosen.to_pandas().astype("str")


def _identifiers(rules: RuleResult, identity_map: pd.DataFrame) -> pd.DataFrame:
    """identity_identifiers: every usable identifier of every record, with its customer.

    Emails and phones are seen when their record was observed; named identifiers keep the
    first/last times collect found them. Values a shared device held are left out (they were
    never that customer's); ``is_shared`` flags values that belong to several customers
    (household phones), which joins must not treat as unique.
    """
    con = duckdb.connect()
    try:
        con.register("long_in", rules.identifiers)
        con.register(
            "map_in",
            pa.Table.from_pandas(
                identity_map[["record_uid", "customer_id", "source"]], preserve_index=False
            ),
        )
        frame = con.sql(
            """
            with joined as (
                select l.record_uid, m.customer_id, l.identifier_type, l.identifier_value,
                       m.source, l.first_seen_at, l.last_seen_at
                from long_in l join map_in m using (record_uid)
                where not l.is_ambiguous
            ),
            owners as (
                select identifier_type, identifier_value,
                       count(distinct customer_id) > 1 as is_shared
                from joined group by identifier_type, identifier_value
            )
            select j.*, o.is_shared
            from joined j join owners o using (identifier_type, identifier_value)
            """
        ).to_arrow_table()
        frame = arrow_frame(frame)
    finally:
        con.close()
    for column in ("first_seen_at", "last_seen_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return conform(frame, IDENTIFIERS_SCHEMA)


def _concat_history(previous: PreviousState | None, events: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in (previous.history if previous else empty_history(), events) if not f.empty]
    if not frames:
        return empty_history()
    history = pd.concat(frames, ignore_index=True)
    history["occurred_at"] = history["occurred_at"].astype("datetime64[us, UTC]")
    return history


def size_histogram(cluster_sizes: pd.Series) -> dict[str, int]:
    """Customers per cluster size, with sizes above 10 grouped in bands."""
    bands = pd.cut(
        cluster_sizes,
        bins=[0, 1, 2, 3, 4, 5, 10, 20, 50, np.inf],
        labels=["1", "2", "3", "4", "5", "6-10", "11-20", "21-50", "51+"],
    )
    counts = bands.value_counts(sort=False)
    return {str(k): int(v) for k, v in counts.items() if v}


def _stats(
    identity_map: pd.DataFrame,
    edges: pd.DataFrame,
    assignment: IdAssignment,
    clustered: ClusterResult,
    report: NormalizationReport,
    rules: RuleResult,
    model_stats: dict[str, Any],
    seconds: Mapping[str, float],
) -> dict[str, Any]:
    sizes = identity_map.groupby("customer_id").size()
    rejected = edges.loc[~edges["is_accepted"], "rejected_reason"].value_counts()
    return {
        "records": len(identity_map),
        "records_by_source": {
            str(k): int(v) for k, v in identity_map["source"].value_counts().items()
        },
        "customers": len(sizes),
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
        "singleton_share": float((sizes == 1).mean()) if len(sizes) else 0.0,
        "cluster_size_histogram": size_histogram(sizes),
        "edges_accepted": int(edges["is_accepted"].sum()),
        "edges_by_rule": {
            str(k): int(v)
            for k, v in edges.loc[edges["is_accepted"], "rule"].value_counts().items()
        },
        "links_rejected_by_guards": int(rejected.sum()),
        "links_rejected_by_reason": {str(k): int(v) for k, v in rejected.items()},
        "splits": [s.as_dict() for s in clustered.splits],
        "ids": assignment.stats,
        "normalization": report.as_dict(),
        "rules": rules.stats.as_dict(),
        "model": model_stats,
        "seconds": dict(seconds),
    }


# --- files ----------------------------------------------------------------------------------


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_resolution(
    resolution: Resolution, folder: Path, *, run_folder: Path | None = None
) -> dict[str, Path]:
    """Write the run's tables to ``folder`` (atomically per file); the model also to
    ``run_folder`` when given (a run without one removes the previous run's). Returns the
    written paths by name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    tables = {
        IDENTITY_MAP_FILE: resolution.identity_map,
        IDENTIFIERS_FILE: resolution.identifiers,
        EDGES_FILE: resolution.edges,
        HISTORY_FILE: resolution.history,
        ALIASES_FILE: resolution.aliases,
        ATTRIBUTES_FILE: resolution.attributes,
        RECORDS_FILE: resolution.records,
        WEAK_VALUES_FILE: resolution.weak_values,
    }
    for name, frame in tables.items():
        schema = TABLE_SCHEMAS.get(name)
        _write_parquet(frame if schema is None else conform(frame, schema), folder / name)
        written[name] = folder / name
    if resolution.model is not None:
        resolution.model.save(folder / MODEL_FILE)
        written[MODEL_FILE] = folder / MODEL_FILE
        if run_folder is not None:
            resolution.model.save(Path(run_folder) / MODEL_FILE)
            written["run_model"] = Path(run_folder) / MODEL_FILE
    else:
        # An earlier run's model does not describe these links: explain and the real-time
        # resolver must not score with it.
        (folder / MODEL_FILE).unlink(missing_ok=True)
    stats = {
        "run_id": resolution.run_id,
        "resolved_at": resolution.resolved_at.isoformat(),
        **resolution.stats,
    }
    tmp = folder / f".{STATS_FILE}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(stats, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, folder / STATS_FILE)
    written[STATS_FILE] = folder / STATS_FILE
    return written


def read_previous_state(folder: Path) -> PreviousState | None:
    """The last run's map, aliases and history from ``folder``; None before the first run."""
    folder = Path(folder)
    path = folder / IDENTITY_MAP_FILE
    if not path.exists():
        return None
    identity_map = pd.read_parquet(path, columns=["record_uid", "customer_id"])
    aliases = (
        pd.read_parquet(folder / ALIASES_FILE)
        if (folder / ALIASES_FILE).exists()
        else empty_aliases()
    )
    history = (
        pd.read_parquet(folder / HISTORY_FILE)
        if (folder / HISTORY_FILE).exists()
        else empty_history()
    )
    return PreviousState(identity_map=identity_map, aliases=aliases, history=history)


def read_provisional_claims(path: Path, as_of: datetime | None = None) -> pd.DataFrame | None:
    """The real-time path's provisional customers (``PROVISIONAL_CUSTOMERS_FILE``) as claims
    for ``resolve``; None when the file does not exist (no event was ever processed).

    With ``as_of``, claims linked after it are left out, as every other input is.

    Raises:
        ValueError: the file is unreadable or lacks a column (the message names the file).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ValueError(
            f"{path}: unreadable provisional customers ({exc}); re-run the real-time fold "
            "that writes it, or delete the file to resolve without claims"
        ) from exc
    missing = [c for c in CLAIM_COLUMNS if c not in frame]
    if missing:
        raise ValueError(
            f"{path}: provisional customers need columns {list(CLAIM_COLUMNS)}; missing {missing}"
        )
    frame = frame[list(CLAIM_COLUMNS)].copy()
    frame["linked_at"] = pd.to_datetime(frame["linked_at"], utc=True)
    if as_of is not None:
        cutoff = pd.Timestamp(as_of)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
        frame = frame[~(frame["linked_at"] > cutoff)]
    return frame.reset_index(drop=True)


def read_saved_model(folder: Path) -> TrainedModel | None:
    """The model the last run saved in ``folder``, or None when there is none."""
    path = Path(folder) / MODEL_FILE
    return TrainedModel.load(path) if path.exists() else None


def read_stats(folder: Path) -> dict[str, Any]:
    """The figures of the last run (``identity_stats.json``)."""
    return json.loads((Path(folder) / STATS_FILE).read_text(encoding="utf-8"))
