"""Every dbt model as a Dagster asset (dagster-dbt), dbt tests as asset checks.

The project is built in two stages around the behavioural clustering (a Python asset):

    ingest + identity -> dbt_models (staging, intermediate, marts, segment models)
                      -> segments/behavioural_clusters (reads customer_traits)
                      -> dbt_segment_models (everything downstream of source clusters.*:
                         int_segment_members_unioned, segment_membership_history,
                         customer_segments, segments)

so clusters join customer_segments like any other segment and the graph has no cycle.
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

#: dbt selection of the models that read the behavioural clusters (the second stage).
AFTER_CLUSTERS_SELECTION = "source:clusters+"

MODELS_OP = "dbt_models"
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
    """The two dbt stages as multi-assets; parses the project first if its manifest is stale."""
    project = project or dbt_project()
    manifest = prepare_manifest(project)
    translator = CdpTranslator(config)

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=translator,
        exclude=AFTER_CLUSTERS_SELECTION,
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
        select=AFTER_CLUSTERS_SELECTION,
        name=SEGMENT_MODELS_OP,
    )
    def dbt_segment_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, cdp: CdpResource
    ) -> Iterator[Any]:
        yield from _build(context, dbt, cdp, project)

    return [dbt_models, dbt_segment_models]
