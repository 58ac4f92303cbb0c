"""The ``cdp`` command line (typer + rich)."""
