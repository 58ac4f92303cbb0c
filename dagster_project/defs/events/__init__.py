"""The real-time path's batch side: the event log folded into the lake before the ingest."""
