"""Every dbt model as a Dagster asset (dagster-dbt), dbt tests as asset checks.

The project is built in three stages around two Python assets, the customer models and the
behavioural clustering:

    ingest + identity -> dbt_models (staging, intermediate, marts; the features and training
                         examples of the customer models)
                      -> models/customer_scores (trains on int_training_examples_labelled)
                      -> dbt_scored_models (everything downstream of source models.*:
                         customer_traits with its scores, the segment models)
                      -> segments/behavioural_clusters (reads customer_traits)
                      -> dbt_segment_models (everything downstream of source clusters.*:
                         int_segment_members_unioned, segment_membership_history,
                         customer_segments, segments)

so scores land in customer_traits, clusters join customer_segments like any other segment,
and the graph has no cycle.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from dagster_project.defs.dbt.project import dbt_project, prepare_manifest
from dagster_project.defs.dbt.translator import CdpTranslator
from dagster_project.defs.resources import CdpResource
from dagster_project.lib.config import CdpConfig
from dagster_project.lib.dbt_project import (
    dbt_environment,
    dbt_executable,
    dbt_vars,
    environment,
    reuse_partial_parse,
)

#: dbt selection of the models that read the behavioural clusters (the last stage).
#: The recommendations (a Python asset after the first stage) are read in the same stage.
AFTER_CLUSTERS_SELECTION = "source:clusters+ source:recommendations+"
#: dbt selection of the models that read the customer models' scores (the middle stage, less
#: what reads the clusters).
AFTER_SCORES_SELECTION = "source:models+"

MODELS_OP = "dbt_models"
SCORED_MODELS_OP = "dbt_scored_models"
SEGMENT_MODELS_OP = "dbt_segment_models"


def dbt_cli_resource(project: DbtProject | None = None) -> DbtCliResource:
    """The ``dbt`` resource the dbt assets take."""
    return DbtCliResource(project_dir=project or dbt_project(), dbt_executable=dbt_executable())


def _build(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    cdp: CdpResource,
    project: DbtProject,
) -> Iterator[Any]:
    """``dbt build`` of the selected models with the run's vars, paths and as-of date."""
    workspace = cdp.workspace()
    config = cdp.loaded_config().config
    as_of = cdp.as_of_date() or cdp.now().date()
    variables = dbt_vars(config, workspace, as_of, project.project_dir)
    run_dir = workspace.runs / context.run_id
    target = run_dir / context.op_execution_context.op.name
    reuse_partial_parse(run_dir, target)
    context.log.info(f"dbt build as of {as_of.isoformat()}; artefacts in {target}")
    with environment(dbt_environment(workspace)):
        invocation = dbt.cli(
            ["build", "--vars", json.dumps(variables)], context=context, target_path=target
        )
        yield from invocation.stream()


def build_dbt_assets(
    config: CdpConfig, project: DbtProject | None = None
) -> list[dg.AssetsDefinition]:
    """The three dbt stages as multi-assets; parses the project first if its manifest is stale."""
    project = project or dbt_project()
    manifest = prepare_manifest(project)
    translator = CdpTranslator(config)

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=translator,
        exclude=f"{AFTER_SCORES_SELECTION} {AFTER_CLUSTERS_SELECTION}",
        name=MODELS_OP,
    )
    def dbt_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, cdp: CdpResource
    ) -> Iterator[Any]:
        yield from _build(context, dbt, cdp, project)

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=translator,
        select=AFTER_SCORES_SELECTION,
        exclude=AFTER_CLUSTERS_SELECTION,
        name=SCORED_MODELS_OP,
    )
    def dbt_scored_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, cdp: CdpResource
    ) -> Iterator[Any]:
        yield from _build(context, dbt, cdp, project)

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=translator,
        select=AFTER_CLUSTERS_SELECTION,
        name=SEGMENT_MODELS_OP,
    )
    def dbt_segment_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, cdp: CdpResource
    ) -> Iterator[Any]:
        yield from _build(context, dbt, cdp, project)

    return [dbt_models, dbt_scored_models, dbt_segment_models]
