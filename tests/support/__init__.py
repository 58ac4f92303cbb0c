"""Shared test builders, importable from any test (``from tests.support.canary import ...``)."""
