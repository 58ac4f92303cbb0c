"""Identity resolution as one Dagster step: ingested people, events and emails -> customers.

The asset holds orchestration only: read the lake, call the ``identity`` library, write its
Parquet outputs and show the figures an operator needs (cluster sizes, guard rejections,
merges and splits, timings) as metadata. The real-time path's provisional customers (exported
by the event log's fold) are handed to the run as claims, so their ids survive the batch.
"""

# No `from __future__ import annotations`: Dagster inspects the real annotation objects of
# asset and check functions (a string `context` annotation is rejected).

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import dagster as dg

from dagster_project.defs import RUN_NOTE_KEY
from dagster_project.defs.ingest.assets import lake_asset_key
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import CdpConfig, LoadedConfig, SourceConfig, SourceKind
from dagster_project.lib.markdown import markdown_table
from dagster_project.lib.workspace import Workspace
from events.fold import realtime_dir
from identity import (
    MODEL_OFF,
    MODEL_SKIPPED,
    MODEL_TRAINED,
    PROVISIONAL_CUSTOMERS_FILE,
    Collected,
    IdentitySettings,
    IdentitySettingsError,
    Resolution,
    TrainedModel,
    collect_records,
    comparison_training,
    describe_model,
    load_identity_settings,
    read_previous_state,
    read_provisional_claims,
    read_saved_model,
    resolve,
    write_resolution,
)

IDENTITY_GROUP: Final[str] = "identity"
_LOGGED_SPLITS: Final[int] = 20
IDENTITY_SOURCE_KINDS: Final[frozenset[SourceKind]] = frozenset(
    {SourceKind.PEOPLE, SourceKind.EVENTS, SourceKind.EMAIL_EVENTS}
)
IDENTITY_OUTPUTS: Final[dict[str, str]] = {
    "identity_map": "One row per source record: its customer_id and cluster size.",
    "identity_identifiers": "Every usable identifier (email, phone, account_id, cookie_id, ...) "
    "with its customer; dbt joins orders and events through it.",
    "identity_edges": "Every link considered, with evidence; rejected ones say which guard.",
    "customer_id_history": "created / merged / split / retired events with run, time and cause.",
    "customer_aliases": "Ids retired by merges and the customer each now points to.",
    "identity_attributes": "Each people record's attributes as identity reads them: E.164 "
    "phone, validated email, ISO birth date and country, names and address as written; junk "
    "and invalid values null, with a status per attribute. dbt's golden record survives these.",
}


def identity_asset_key(name: str) -> dg.AssetKey:
    """Key of one identity output (``["identity", name]``)."""
    return dg.AssetKey(["identity", name])


def identity_sources(config: CdpConfig) -> list[SourceConfig]:
    """Sources whose records describe people (the identity run's inputs)."""
    return [s for s in config.sources if s.kind in IDENTITY_SOURCE_KINDS]


def identity_settings(loaded: LoadedConfig) -> IdentitySettings:
    """The ``identity:`` section of cdp.yml, validated (errors name the file and key)."""
    return load_identity_settings(
        loaded.config.identity,
        default_phone_region=loaded.config.defaults.phone_region,
        where=str(loaded.path),
    )


def load_identity_inputs(
    loaded: LoadedConfig,
    workspace: Workspace,
    settings: IdentitySettings,
    as_of: datetime | None = None,
) -> Collected:
    """Raw identity records of every people/events/email_events source in the lake.

    Raises:
        FileNotFoundError: a source has not been ingested yet.
    """
    tables = {}
    identifiers: dict[str, list[str]] = {}
    for source in identity_sources(loaded.config):
        folder = workspace.source_lake(source.name)
        if not any(folder.glob("*.parquet")):
            raise FileNotFoundError(f"source '{source.name}' has no ingested Parquet in {folder}")
        tables[source.name] = (str(source.kind), folder)
        identifiers[source.name] = sorted(source.identifiers)
    return collect_records(
        tables, identifiers, as_of, anonymous_types=settings.anonymous_identifier_types
    )


def provisional_claims_path(workspace: Workspace) -> Path:
    """Where the fold exports the stream processor's provisional customers."""
    return realtime_dir(workspace.lake) / PROVISIONAL_CUSTOMERS_FILE


def reusable_model(workspace: Workspace, settings: IdentitySettings) -> TrainedModel | None:
    """The last run's model when reuse is on and it was trained with today's settings."""
    if not settings.reuse_model:
        return None
    try:
        saved = read_saved_model(workspace.identity)
    except ValueError:
        return None
    if saved is None or saved.settings != settings.model:
        return None
    return saved


def resolution_metadata(resolution: Resolution) -> dict[str, Any]:
    """Figures of a run for the UI: sizes, guards, id changes, timings."""
    stats = resolution.stats
    ids = stats["ids"]
    histogram = stats["cluster_size_histogram"]
    model = stats["model"]
    metadata: dict[str, Any] = {
        "dagster/row_count": stats["records"],
        "records": stats["records"],
        "customers": stats["customers"],
        "largest_cluster": stats["largest_cluster"],
        "singleton_share": round(stats["singleton_share"], 4),
        "links_accepted": stats["edges_accepted"],
        "links_rejected_by_guards": stats["links_rejected_by_guards"],
        "customers_created": ids["created"],
        "customers_merged": ids["merged"],
        "customers_split": ids["split"],
        "customers_retired": ids["retired"],
        "provisional_ids_kept": ids.get("provisional", 0),
        "provisional_ids_aliased": ids.get("provisional_merged", 0),
        "provisional_claims_unmatched": ids.get("claims_unmatched", 0),
        "provisional_claims_invalid": ids.get("claims_invalid", 0),
        "guard_splits": len(stats["splits"]),
        "model_edges": int(model.get("edges", 0)),
        "seconds": round(sum(stats["seconds"].values()), 2),
        "cluster_size_histogram": dg.MetadataValue.md(
            markdown_table(["records per customer", "customers"], list(histogram.items()))
        ),
        "links_rejected_by_reason": dg.MetadataValue.md(
            markdown_table(["guard", "links"], sorted(stats["links_rejected_by_reason"].items()))
            if stats["links_rejected_by_reason"]
            else "_no links rejected_"
        ),
        "links_by_rule": dg.MetadataValue.md(
            markdown_table(["rule", "links"], sorted(stats["edges_by_rule"].items()))
            if stats["edges_by_rule"]
            else "_no links_"
        ),
        "records_by_source": dg.MetadataValue.md(
            markdown_table(["source", "records"], sorted(stats["records_by_source"].items()))
        ),
        "step_seconds": dg.MetadataValue.md(
            markdown_table(["step", "seconds"], list(stats["seconds"].items()))
        ),
    }
    if ids.get("previous_records_same_id") is not None:
        metadata["previous_records_same_id"] = round(ids["previous_records_same_id"], 6)
    metadata.update(model_metadata(model))
    return metadata


def model_metadata(model: dict[str, Any]) -> dict[str, Any]:
    """How the run used the model, one line an operator reads first, then what it learnt.

    A skipped model also leaves ``RUN_NOTE_KEY``, which ``cdp run`` prints in its summary:
    a run on identifiers alone succeeds, but its operator should know why nothing is fuzzy.
    """
    line = describe_model(model)
    status = str(model.get("status") or (MODEL_TRAINED if model.get("used") else MODEL_OFF))
    metadata: dict[str, Any] = {
        "model_status": status,
        "model": dg.MetadataValue.md(
            f"**Model skipped.** {line.removeprefix('model skipped: ')}.\n\nTo also link "
            "records that share no identifier, map names, emails, phones, addresses or birth "
            "dates of a people source in `cdp.yml`."
            if status == MODEL_SKIPPED
            else line[0].upper() + line[1:]
        ),
    }
    if status == MODEL_SKIPPED:
        metadata[RUN_NOTE_KEY] = f"identity: {line}"
    rows = comparison_training(model.get("training") or {}, model.get("attribute_records"))
    if rows:
        metadata["model_comparisons"] = dg.MetadataValue.md(
            markdown_table(
                ["comparison", "status", "pairs in EM", "what to do"],
                [
                    [r.comparison, r.status, "" if r.pairs is None else r.pairs, r.advice]
                    for r in rows
                ],
            )
        )
    metadata.update(model_training_metadata(model.get("training") or {}))
    return metadata


def model_training_metadata(training: dict[str, Any]) -> dict[str, Any]:
    """What Splink could not learn and why, so nobody has to read its log lines for it."""
    diagnostics = training.get("diagnostics")
    if diagnostics is None:  # no model, or one saved before diagnostics were kept
        return {}
    not_learnt = diagnostics["levels_not_learnt"]
    sampling = diagnostics["em_sampling"]
    iterations = diagnostics["em_iterations"]
    sessions = [
        [stage, iterations.get(stage, ""), sampling.get(stage, "")]
        for stage in dict.fromkeys([*iterations, *sampling])
    ]
    warned = [[w["message"][:200], w["count"]] for w in diagnostics["splink_warnings"]]
    return {
        "model_levels_not_learnt": len(not_learnt),
        "model_training": dg.MetadataValue.md(
            markdown_table(
                ["comparison", "level", "why Splink's default m is used"],
                [[r["comparison"], r["level"], r["why"]] for r in not_learnt],
            )
            if not_learnt
            else "_every comparison level was learnt from the data_"
        ),
        "model_em_sessions": dg.MetadataValue.md(
            markdown_table(["EM session", "iterations", "sampling"], sessions)
            if sessions
            else "_no EM session ran_"
        ),
        "model_splink_warnings": dg.MetadataValue.md(
            markdown_table(["Splink said", "times"], warned) if warned else "_none_"
        ),
    }


def _output_metadata(resolution: Resolution, name: str) -> dict[str, Any]:
    frame = {
        "identity_map": resolution.identity_map,
        "identity_identifiers": resolution.identifiers,
        "identity_edges": resolution.edges,
        "customer_id_history": resolution.history,
        "customer_aliases": resolution.aliases,
        "identity_attributes": resolution.attributes,
    }[name]
    metadata: dict[str, Any] = {"dagster/row_count": len(frame)}
    if name == "customer_id_history":
        counts = resolution.events["event_type"].value_counts()
        metadata["events_this_run"] = dg.MetadataValue.md(
            markdown_table(["event", "count"], sorted(counts.items()))
            if not counts.empty
            else "_no changes_"
        )
    if name == "identity_edges":
        metadata["rejected"] = int((~frame["is_accepted"]).sum()) if len(frame) else 0
    if name == "identity_attributes":
        counts = resolution.stats["normalization"]
        rows = [
            (attribute, counts["invalid"].get(attribute, 0), counts["junk"].get(attribute, 0))
            for attribute in sorted({*counts["invalid"], *counts["junk"]})
        ]
        metadata["values_not_usable"] = dg.MetadataValue.md(
            markdown_table(["attribute", "invalid", "junk"], rows)
            if rows
            else "_every value readable_"
        )
    return metadata


def build_identity_assets(config: CdpConfig) -> Sequence[dg.AssetsDefinition]:
    """The identity multi-asset, depending on every people/events/email_events ingest asset."""
    deps = [lake_asset_key(s.name) for s in identity_sources(config)]
    specs = [
        dg.AssetSpec(
            identity_asset_key(name),
            deps=deps,
            group_name=IDENTITY_GROUP,
            description=description,
            kinds={"parquet", "python"},
        )
        for name, description in IDENTITY_OUTPUTS.items()
    ]

    @dg.multi_asset(
        name="identity_resolution",
        specs=specs,
        can_subset=False,
        description="Rules + Splink + guarded NetworkX graph -> stable customer ids.",
    )
    def identity_resolution(
        context: dg.AssetExecutionContext, cdp: CdpResource
    ) -> Iterator[dg.MaterializeResult]:
        loaded = cdp.loaded_config()
        workspace = cdp.workspace()
        try:
            settings = identity_settings(loaded)
        except IdentitySettingsError as exc:
            raise dg.Failure(description=str(exc)) from exc
        now = cdp.now()
        try:
            collected = load_identity_inputs(
                loaded, workspace, settings, now if cdp.as_of_date() else None
            )
        except FileNotFoundError as exc:
            raise dg.Failure(description=f"{exc}; materialize the ingest assets first") from exc
        if collected.records.empty:
            raise dg.Failure(description="no identity records in the lake: nothing to resolve")
        previous = read_previous_state(workspace.identity)
        try:
            claims = read_provisional_claims(
                provisional_claims_path(workspace), now if cdp.as_of_date() else None
            )
        except ValueError as exc:
            raise dg.Failure(description=str(exc)) from exc
        model = reusable_model(workspace, settings)
        context.log.info(
            f"resolving {len(collected.records):,} records "
            f"({'reusing' if model else 'training'} the model; "
            f"{'with' if previous else 'without'} previous ids; "
            f"{0 if claims is None else claims['customer_id'].nunique():,} provisional customers)"
        )
        resolution = resolve(
            collected.records,
            collected.identifiers,
            settings,
            previous=previous,
            model=model,
            run_id=context.run_id,
            now=now,
            progress=lambda step: context.log.info(f"identity: {step}"),
            claims=claims,
        )
        write_resolution(resolution, workspace.identity, run_folder=workspace.runs / context.run_id)
        context.log.info(f"identity: {describe_model(resolution.stats['model'])}")
        for split in resolution.splits[:_LOGGED_SPLITS]:
            context.log.warning(f"guard split: {split.as_dict()}")
        if len(resolution.splits) > _LOGGED_SPLITS:
            context.log.warning(
                f"... and {len(resolution.splits) - _LOGGED_SPLITS} more guard splits "
                "(identity_edges rows with rejected_reason 'split:*')"
            )
        summary = resolution_metadata(resolution)
        for name in IDENTITY_OUTPUTS:
            metadata = _output_metadata(resolution, name)
            if name == "identity_map":
                metadata = {**summary, **metadata}
            yield dg.MaterializeResult(asset_key=identity_asset_key(name), metadata=metadata)

    return [identity_resolution]
