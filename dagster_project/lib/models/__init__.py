"""Customer models: purchase propensity, churn risk and lifetime value (scikit-learn).

Semantics in brief:

- Features are defined once, in dbt (``macros/customer_features.sql``, a macro of a cutoff
  date); this package never computes one. It reads ``int_training_examples_labelled`` (features
  at past cutoffs with the outcome of the following horizon) and
  ``int_customer_features_computed`` (features at the as-of date) from the warehouse.
- Every model is trained only on labels whose horizon ended by the as-of date, judged by a
  time-split backtest (train on cutoffs whose horizon ended by the held-out cutoff, score the
  held-out horizon) against baselines (recency only and BG/NBD for the probabilities, BG/NBD +
  Gamma-Gamma for CLV), saved with a version and its training metadata, and applied to the
  features at the as-of date.
- Too little history: a documented recency/frequency fallback, ``status: fallback`` and the
  reason; nothing raises. A customer without history gets no score (null), not a zero.
- No Dagster here: the asset (``dagster_project/defs/models``) calls these functions and
  reports what they return.
"""

from dagster_project.lib.models.data import (
    FEATURE_COLUMNS,
    ModelInputError,
    ModelInputs,
    read_model_inputs,
)
from dagster_project.lib.models.store import (
    SCORES_SCHEMA,
    models_dir,
    save_model,
    write_scores,
)
from dagster_project.lib.models.train import (
    CHURN,
    CLV,
    FALLBACK,
    MODEL_NAMES,
    PURCHASE,
    TRAINED,
    ModelReport,
    ModelsResult,
    train_and_score,
)

__all__ = [
    "CHURN",
    "CLV",
    "FALLBACK",
    "FEATURE_COLUMNS",
    "MODEL_NAMES",
    "PURCHASE",
    "SCORES_SCHEMA",
    "TRAINED",
    "ModelInputError",
    "ModelInputs",
    "ModelReport",
    "ModelsResult",
    "models_dir",
    "read_model_inputs",
    "save_model",
    "train_and_score",
    "write_scores",
]
