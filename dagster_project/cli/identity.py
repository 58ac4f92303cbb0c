"""``cdp identity``: match records in any CSV/Parquet files, score a clustering, explain a run.

Heavy imports (Splink via identity.pipeline) happen inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

app = typer.Typer(
    help="Resolve identities across CSV/Parquet files and evaluate the result.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)
out_console = Console()
#: Where identity passes Splink's own log lines on, verbatim, at DEBUG.
SPLINK_LOGGER = "identity.splink"


def _fail(message: str) -> typer.Exit:
    # Text, not markup: a message may quote a value such as `web:cookie:c1` or `[x]`
    console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def resolve(
    inputs: Annotated[
        list[Path], typer.Argument(help="CSV or Parquet files; all are resolved together")
    ],
    mapping: Annotated[Path, typer.Option(help="YAML mapping of columns to attributes")],
    out: Annotated[Path, typer.Option(help="Parquet file: record_id, source, customer_id, ...")],
    phone_region: Annotated[
        str, typer.Option(help="region of phone numbers written without +country code")
    ] = "US",
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=0.999999, help="model match probability (default 0.99)"),
    ] = None,
    max_cluster_size: Annotated[
        int | None, typer.Option(min=2, help="largest allowed cluster (default 20)")
    ] = None,
    edges: Annotated[
        Path | None, typer.Option(help="also write the evidence edges to this Parquet file")
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="log each step, and Splink's own lines (DEBUG)"),
    ] = False,
) -> None:
    """Find the records that are the same person, within and across the input files.

    After the figures, says how the model was used and, comparison by comparison, what its
    training could not learn and what to do about it.
    """
    from identity import (
        IdentitySettingsError,
        MappingError,
        collect_files,
        load_identity_settings,
        load_mapping,
    )
    from identity import resolve as resolve_records

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR)
    if verbose:  # Splink's raw lines are kept at DEBUG on identity.splink while it trains
        logging.getLogger(SPLINK_LOGGER).setLevel(logging.DEBUG)
    overrides: dict[str, object] = {"phone_default_region": phone_region}
    if max_cluster_size is not None:
        overrides["max_cluster_size"] = max_cluster_size
    if threshold is not None:
        overrides["model"] = {"match_threshold": threshold}
    try:
        settings = load_identity_settings(overrides, where="command line")
        record_mapping = load_mapping(mapping)
        with console.status("reading inputs"):
            collected = collect_files(inputs, record_mapping)
    except (MappingError, IdentitySettingsError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"{len(collected.records):,} records from {len(inputs)} file(s); resolving ...")
    with console.status("resolving") as status:
        resolution = resolve_records(
            collected.records,
            collected.identifiers,
            settings,
            run_id=f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}",
            now=datetime.now(UTC),
            progress=lambda step: status.update(f"resolving: {step}"),
        )
    result = resolution.identity_map[["record_id", "source", "customer_id", "cluster_size"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_parquet(out, index=False)
    if edges is not None:
        edges.parent.mkdir(parents=True, exist_ok=True)
        resolution.edges.to_parquet(edges, index=False)
    stats = resolution.stats
    table = Table(title=f"Resolved {stats['records']:,} records")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("customers", f"{stats['customers']:,}")
    table.add_row("largest cluster", str(stats["largest_cluster"]))
    table.add_row("singleton share", f"{stats['singleton_share']:.1%}")
    table.add_row("links accepted", f"{stats['edges_accepted']:,}")
    table.add_row("links rejected by guards", f"{stats['links_rejected_by_guards']:,}")
    model = stats["model"]
    table.add_row(
        "model",
        "not used: deterministic links only"
        if not model.get("used")
        else f"{model.get('edges', 0):,} edges",
    )
    table.add_row("seconds", f"{sum(stats['seconds'].values()):.1f}")
    console.print(table)
    sizes = Table(title="Cluster sizes")
    sizes.add_column("records per customer")
    sizes.add_column("customers", justify="right")
    for size, count in stats["cluster_size_histogram"].items():
        sizes.add_row(size, f"{count:,}")
    console.print(sizes)
    _print_model(model, verbose)
    console.print(f"wrote {out}")


_STATUS_STYLE = {"learnt": "green", "partly learnt": "yellow", "not learnt": "red"}


def _print_model(model: dict[str, Any], verbose: bool) -> None:
    """How the model was used, then per comparison what training learnt and what to do."""
    from identity import MODEL_SKIPPED, comparison_training, describe_model

    style = "yellow" if model.get("status") == MODEL_SKIPPED else "bold"
    console.print(Text(describe_model(model), style), soft_wrap=True)
    training = model.get("training") or {}
    rows = comparison_training(training, model.get("attribute_records"))
    if rows:
        table = Table(title="Model training", title_justify="left")
        table.add_column("comparison", no_wrap=True)
        table.add_column("m values", no_wrap=True)
        table.add_column("pairs in EM", justify="right")
        table.add_column("what to do", overflow="fold")
        for row in rows:
            table.add_row(
                row.comparison,
                Text(row.status, _STATUS_STYLE.get(row.status, "")),
                "" if row.pairs is None else f"{row.pairs:,}",
                Text(row.advice),
            )
        console.print(table)
    warned = (training.get("diagnostics") or {}).get("splink_warnings") or []
    if verbose and warned:  # Splink's own words: for whoever asked for the detail
        said = Table(title="Splink said", title_justify="left")
        said.add_column("message", overflow="fold")
        said.add_column("times", justify="right")
        for warning in warned:
            said.add_row(Text(warning["message"]), str(warning["count"]))
        console.print(said)


@app.command()
def evaluate(
    clusters: Annotated[Path, typer.Option(help="the Parquet written by `cdp identity resolve`")],
    truth: Annotated[
        Path, typer.Option(help="CSV/Parquet with record_id, entity_id (and optionally source)")
    ],
) -> None:
    """Pairwise precision, recall and F1 of a clustering against known entities."""
    import pandas as pd

    from identity import MappingError, evaluate_clusters, read_table_as_text

    try:
        predicted = pd.read_parquet(clusters)
    except (OSError, ValueError) as exc:
        raise _fail(f"{clusters}: cannot read clusters ({exc})") from None
    try:
        known = read_table_as_text(truth)
    except MappingError as exc:
        raise _fail(str(exc)) from None
    for column, frame, where in (
        ("record_id", predicted, clusters),
        ("customer_id", predicted, clusters),
        ("record_id", known, truth),
        ("entity_id", known, truth),
    ):
        if column not in frame.columns:
            raise _fail(f"{where}: column '{column}' not found (columns: {list(frame.columns)})")
    keys: tuple[str, ...] = ("source", "record_id") if "source" in known else ("record_id",)
    if keys == ("record_id",) and predicted["record_id"].duplicated().any():
        raise _fail(
            f"{truth}: record ids repeat across sources in {clusters}; add a 'source' column "
            "(the input file name) to the truth"
        )
    scores = evaluate_clusters(predicted, known, keys=keys)
    table = Table(title="Pairwise evaluation")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("precision", f"{scores.precision:.4f}")
    table.add_row("recall", f"{scores.recall:.4f}")
    table.add_row("F1", f"{scores.f1:.4f}")
    table.add_row("true pairs", f"{scores.true_pairs:,}")
    table.add_row("predicted pairs", f"{scores.predicted_pairs:,}")
    table.add_row("correct pairs", f"{scores.true_positive_pairs:,}")
    table.add_row("true clusters", f"{scores.true_clusters:,}")
    table.add_row("predicted clusters", f"{scores.predicted_clusters:,}")
    if scores.records_without_truth:
        table.add_row("records without truth (ignored)", f"{scores.records_without_truth:,}")
    out_console.print(table)


def _identity_inputs(folder: Path) -> dict[str, Any]:
    """The identity outputs ``explain`` reads from ``folder`` (map required, the rest optional)."""
    import pandas as pd

    from identity import (
        ALIASES_FILE,
        AUDITED_EDGE_COLUMNS,
        EDGES_FILE,
        IDENTITY_MAP_FILE,
        RECORDS_FILE,
        read_saved_model,
    )

    if not (folder / IDENTITY_MAP_FILE).is_file():
        raise _fail(
            f"no identity outputs in {folder} ({IDENTITY_MAP_FILE} is missing): run the "
            "pipeline (`cdp run`) first, or point --home at the CDP_HOME that ran it"
        )

    def optional(name: str) -> pd.DataFrame | None:
        path = folder / name
        return pd.read_parquet(path) if path.is_file() else None

    try:
        inputs: dict[str, Any] = {
            "identity_map": pd.read_parquet(folder / IDENTITY_MAP_FILE),
            "edges": optional(EDGES_FILE),
            "aliases": optional(ALIASES_FILE),
            "records": optional(RECORDS_FILE),
            "model": read_saved_model(folder),
        }
    except (OSError, ValueError) as exc:
        raise _fail(f"{folder}: cannot read the identity outputs ({exc})") from None
    if inputs["edges"] is None:
        console.print(Text(f"{folder}: no {EDGES_FILE}; no evidence to show", "yellow"))
        inputs["edges"] = pd.DataFrame(columns=list(AUDITED_EDGE_COLUMNS))
    return inputs


def _unique_types(home: Path, config: Path | None) -> tuple[str, ...]:
    """``identity.unique_identifier_types`` from cdp.yml (identity's default without one)."""
    from dagster_project.lib.config import ConfigError, load_config
    from identity import IdentitySettings, IdentitySettingsError, load_identity_settings

    path = config if config is not None else home / "cdp.yml"
    if not path.is_file():
        return IdentitySettings().unique_identifier_types
    try:
        loaded = load_config(path)
        settings = load_identity_settings(
            loaded.config.identity,
            default_phone_region=loaded.config.defaults.phone_region,
            where=str(loaded.path),
        )
    except (ConfigError, IdentitySettingsError) as exc:
        raise _fail(str(exc)) from None
    return settings.unique_identifier_types


def _evidence_table(title: str, evidence: list[Any]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("record", "linked record", "evidence"):
        table.add_column(column, overflow="fold")
    for item in evidence:
        table.add_row(Text(item.record_uid_l), Text(item.record_uid_r), Text(item.describe()))
    return table


@app.command()
def explain(
    record: Annotated[
        list[str] | None,
        typer.Option(
            help="SOURCE:RECORD_ID (as in the identity map); twice to ask whether two records "
            "are one customer, once for the customer holding it"
        ),
    ] = None,
    customer_id: Annotated[
        str | None, typer.Option(help="a customer id (an id retired by a merge also works)")
    ] = None,
    home: Annotated[
        Path | None, typer.Option(help="CDP_HOME whose lake/identity to read (default $CDP_HOME)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="cdp.yml for the identity settings (default HOME/cdp.yml)")
    ] = None,
    score: Annotated[
        bool,
        typer.Option(help="score two unlinked records with the saved model (reads all records)"),
    ] = True,
) -> None:
    """Why records are one customer: the path of evidence between two records, the guard that
    refused a link or the model's score below its threshold, or a customer's records and links.

    Reads the identity outputs of the last run (identity map, edges, saved model) under
    CDP_HOME/lake/identity. Exits 2 for an unknown record or customer, or without outputs.
    """
    from dagster_project.lib.settings import PlatformSettings
    from dagster_project.lib.workspace import Workspace

    records = record or []
    if (customer_id is None) == (not records) or len(records) > 2:
        raise _fail("give --customer-id ID, or --record SOURCE:RECORD_ID once or twice")
    for uid in records:
        source, _, record_id = uid.partition(":")
        if not source or not record_id:
            raise _fail(f"--record '{uid}': write it as SOURCE:RECORD_ID (e.g. crm:1042)")
    settings = PlatformSettings(home=home) if home is not None else PlatformSettings()
    folder = Workspace(settings.home).identity
    with console.status("reading identity outputs"):
        inputs = _identity_inputs(folder)
    if len(records) == 2:
        _explain_pair(records[0], records[1], inputs, _unique_types(settings.home, config), score)
        return
    if records:
        owner = inputs["identity_map"].loc[
            inputs["identity_map"]["record_uid"] == records[0], "customer_id"
        ]
        if owner.empty:
            raise _fail(f"no record '{records[0]}' in the identity map ({folder})")
        customer_id = str(owner.iloc[0])
    assert customer_id is not None
    _explain_customer(customer_id, inputs, folder)


def _explain_pair(
    uid_a: str, uid_b: str, inputs: dict[str, Any], unique_types: tuple[str, ...], score: bool
) -> None:
    from identity import explain_pair

    model = inputs["model"] if score else None
    try:
        with console.status("explaining" + (" (scoring with the saved model)" if model else "")):
            answer = explain_pair(
                uid_a,
                uid_b,
                identity_map=inputs["identity_map"],
                edges=inputs["edges"],
                model=model,
                records=inputs["records"] if model is not None else None,
                unique_types=unique_types,
            )
    except KeyError as exc:
        raise _fail(f"{exc.args[0]}; records are written SOURCE:RECORD_ID") from None
    except ValueError as exc:  # identity_edges not as identity wrote it
        raise _fail(str(exc)) from None
    if answer.same_customer:
        out_console.print(
            Text.assemble(
                (f"{uid_a} and {uid_b} are one customer", "bold green"),
                f" ({answer.customer_id_a}), linked in {len(answer.path)} step(s):",
            )
        )
        # each step hangs from the record before it, so the tree reads as the path
        tree = Tree(Text(uid_a))
        node, previous = tree, uid_a
        for evidence in answer.path:
            ends = (evidence.record_uid_l, evidence.record_uid_r)
            step = ends[1] if ends[0] == previous else ends[0]
            node = node.add(Text.assemble(step, (f"  <- {evidence.describe()}", "dim")))
            previous = step
        out_console.print(tree)
        return
    out_console.print(
        Text.assemble(
            (f"{uid_a} and {uid_b} are different customers", "bold red"),
            f" ({answer.customer_id_a}, {answer.customer_id_b}):",
        )
    )
    for reason in answer.reasons:
        out_console.print(Text(f"  - {reason}"), soft_wrap=True)
    if model is None and inputs["model"] is not None:
        out_console.print(Text("  (not scored with the saved model: --no-score)"))
    elif inputs["model"] is None:
        out_console.print(Text("  (no saved model: the run used rules only)"))


def _explain_customer(customer_id: str, inputs: dict[str, Any], folder: Path) -> None:
    from identity import explain_customer

    try:
        answer = explain_customer(
            customer_id,
            identity_map=inputs["identity_map"],
            edges=inputs["edges"],
            aliases=inputs["aliases"],
        )
    except KeyError:
        raise _fail(f"no customer '{customer_id}' in the identity map ({folder})") from None
    except ValueError as exc:  # identity_edges not as identity wrote it
        raise _fail(f"{folder}: {exc}") from None
    alias = f" (asked for {answer.requested_id}, merged into it)" if answer.is_alias else ""
    out_console.print(
        Text.assemble(
            (f"customer {answer.customer_id}", "bold"),
            f"{alias}: {len(answer.records)} record(s), {len(answer.edges)} accepted link(s), "
            f"{len(answer.rejected)} refused",
        )
    )
    table = Table(title="records", title_justify="left")
    for column in ("record", "source", "record id"):
        table.add_column(column, overflow="fold")
    for row in answer.records.itertuples(index=False):
        table.add_row(*(Text(str(v)) for v in (row.record_uid, row.source, row.record_id)))
    out_console.print(table)
    if answer.edges:
        out_console.print(_evidence_table("links that join them", answer.edges))
    if answer.rejected:
        out_console.print(_evidence_table("links refused (by a guard or a split)", answer.rejected))
