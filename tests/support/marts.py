"""The marts' contracts as data, for builders of synthetic warehouses (tests, benchmarks).

Every YAML under ``dbt/models/marts/`` (the serving marts live in a subfolder) is read, so a
builder creates every table the snapshot declares, with the contract's names and types, and a
contract change shows up without editing the builder.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MARTS_DIR = REPO / "dbt" / "models" / "marts"


def mart_columns(marts_dir: Path = MARTS_DIR) -> dict[str, list[tuple[str, str]]]:
    """Columns and data types of every contract-enforced mart, by mart name."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(marts_dir.rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            found[model["name"]] = [(c["name"], c["data_type"]) for c in model["columns"]]
    return found
