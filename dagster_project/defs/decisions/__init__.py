"""Decisions in the pipeline: the log exported to the lake, the daily batch, the measurement."""
