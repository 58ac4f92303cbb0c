"""The customer models (purchase propensity, churn risk, lifetime value) as a Dagster asset."""
