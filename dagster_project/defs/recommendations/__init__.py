"""Recommendations computed outside dbt (top-N per customer, similar products)."""
