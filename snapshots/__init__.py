"""The serving snapshot format (filled in by the architecture work)."""
