"""``cdp identity``: match records in any CSV/Parquet files, and score a clustering.

Heavy imports (Splink via identity.pipeline) happen inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Resolve identities across CSV/Parquet files and evaluate the result.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)
out_console = Console()


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
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
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log each step")] = False,
) -> None:
    """Find the records that are the same person, within and across the input files."""
    from identity.mapping import MappingError, collect_files, load_mapping
    from identity.pipeline import resolve as resolve_records
    from identity.settings import IdentitySettingsError, load_identity_settings

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR)
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
        "not used: " + model["skipped"]
        if "skipped" in model
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
    console.print(f"wrote {out}")


@app.command()
def evaluate(
    clusters: Annotated[Path, typer.Option(help="the Parquet written by `cdp identity resolve`")],
    truth: Annotated[
        Path, typer.Option(help="CSV/Parquet with record_id, entity_id (and optionally source)")
    ],
) -> None:
    """Pairwise precision, recall and F1 of a clustering against known entities."""
    import pandas as pd

    from identity.evaluate import evaluate_clusters
    from identity.mapping import MappingError, read_table_as_text

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
