"""Per-request DataLoaders: each nested field batches its keys into one snapshot query."""
