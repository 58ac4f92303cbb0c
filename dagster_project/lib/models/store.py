"""Where the customer models and their scores are written.

Each trained model is saved under ``CDP_HOME/models/<name>/<version>/`` as ``model.joblib``
(the fitted scikit-learn estimators) and ``metadata.json`` (status, horizon, training rows and
cutoffs, backtest figures, feature importance, library version); a fallback writes its
metadata only. The scores go to one Parquet that dbt reads as source ``models.customer_scores``.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import joblib
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dagster_project.lib.models.train import ModelReport

SCORES_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("purchase_probability", pa.float64()),
        ("churn_risk", pa.float64()),
        ("predicted_clv", pa.float64()),
        ("purchase_model_version", pa.string()),
        ("churn_model_version", pa.string()),
        ("clv_model_version", pa.string()),
    ]
)

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"


def models_dir(home: Path) -> Path:
    """``CDP_HOME/models``: one folder per model name, one per version inside."""
    return home / "models"


def save_model(report: ModelReport, home: Path, as_of: str) -> Path:
    """Write the model (if trained) and its metadata; returns the version's folder."""
    folder = models_dir(home) / report.name / report.version
    if report.status != "trained":
        folder = models_dir(home) / report.name / f"{as_of}-{report.version}"
    folder.mkdir(parents=True, exist_ok=True)
    if report.estimators:
        temporary = folder / f".{MODEL_FILE}.{uuid.uuid4().hex}.tmp"
        joblib.dump(report.estimators, temporary)
        os.replace(temporary, folder / MODEL_FILE)
    metadata = report.metadata() | {"as_of": as_of}
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    return folder


def write_scores(scores: pd.DataFrame, path: Path) -> None:
    """Atomically replace the scores Parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(
        scores[list(SCORES_SCHEMA.names)], schema=SCORES_SCHEMA, preserve_index=False
    )
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)
