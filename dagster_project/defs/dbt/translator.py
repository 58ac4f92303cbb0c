"""How dbt nodes become Dagster assets, with lineage back to the ingest and identity assets.

dbt reads the lake by source *kind* (``source('lake', 'people')`` covers every people source),
while Dagster has one asset per source; the translator expands each kind into the ingest assets
of that kind from cdp.yml, so the UI shows landing -> lake -> identity -> staging -> marts ->
segments as one graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from dagster_project.defs.ingest.assets import lake_asset_key
from dagster_project.lib.config import CdpConfig

#: Key of the Python asset that writes the behavioural clusters (dbt source clusters.*).
BEHAVIOURAL_CLUSTERS_KEY = dg.AssetKey(["segments", "behavioural_clusters"])

#: Top-level folders of models/ and the Dagster group each becomes.
LAYER_GROUPS = {
    "staging": "staging",
    "intermediate": "intermediate",
    "marts": "marts",
    "segments": "segments",
}

_LAKE_KIND_PREFIX = "lake_kind"


def dbt_asset_key(model_name: str) -> dg.AssetKey:
    """Asset key of a dbt model (model names are unique in a dbt project)."""
    return dg.AssetKey(["dbt", model_name])


class CdpTranslator(DagsterDbtTranslator):
    """Keys ``["dbt", <model>]``, groups by layer, sources mapped onto platform assets."""

    def __init__(self, config: CdpConfig) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self._sources_by_kind: dict[str, list[str]] = {}
        for source in config.sources:
            self._sources_by_kind.setdefault(source.kind.value, []).append(source.name)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        """Lake kinds get a placeholder key (expanded in get_asset_spec); identity and
        clusters sources are the assets that write them; models are ``["dbt", name]``."""
        if dbt_resource_props["resource_type"] == "source":
            source_name = dbt_resource_props["source_name"]
            table = dbt_resource_props["name"]
            if source_name == "lake":
                return dg.AssetKey([_LAKE_KIND_PREFIX, table])
            if source_name == "identity":
                return dg.AssetKey(["identity", table])
            if source_name == "clusters":
                return BEHAVIOURAL_CLUSTERS_KEY
            return dg.AssetKey([source_name, table])
        return dbt_asset_key(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """The model's layer (top folder under models/)."""
        fqn = dbt_resource_props.get("fqn") or []
        layer = fqn[1] if len(fqn) > 2 else ""
        return LAYER_GROUPS.get(layer, "dbt")

    def get_asset_spec(
        self,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetSpec:
        """The default spec, with each lake-kind dependency replaced by that kind's sources."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        deps: list[dg.AssetDep] = []
        seen: set[dg.AssetKey] = set()
        for dep in spec.deps:
            path = dep.asset_key.path
            if len(path) == 2 and path[0] == _LAKE_KIND_PREFIX:
                keys = [lake_asset_key(name) for name in self._sources_by_kind.get(path[1], [])]
                expanded = [dg.AssetDep(key) for key in keys]
            else:
                expanded = [dep]
            for item in expanded:
                if item.asset_key not in seen:
                    seen.add(item.asset_key)
                    deps.append(item)
        return spec.replace_attributes(deps=deps)
