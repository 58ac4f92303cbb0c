"""Segment families computed outside dbt (behavioural clusters)."""
