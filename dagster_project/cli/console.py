"""What every ``cdp`` command writes to the terminal with: stderr, and one progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: stderr: stdout stays for what a command outputs (a key, a JSON document).
console = Console(stderr=True)


def progress_bar(*, transient: bool = False) -> Progress:
    """The bar long commands show (run, generate, export, erase)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )
