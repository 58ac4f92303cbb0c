"""Terminal logging of the ``cdp`` commands: the records a user chose to see, and nothing else.

The level applies to the platform's own loggers; other libraries (alembic, Dagster's storage,
...) stay at WARNING unless DEBUG asks for everything. Records print through rich on the
command's console, so they appear above a live progress bar instead of through it. Python
warnings (deprecations and the like, written for developers) are logged too, shown from INFO.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler

#: Loggers of this repository's packages: the ones a chosen level applies to.
OWN_LOGGERS = ("dagster_project", "identity", "api", "snapshots")


@contextmanager
def terminal_logging(
    level: int, console: Console, summarized: Sequence[str] = ()
) -> Iterator[None]:
    """Show log records at ``level`` and above on ``console`` while the block runs.

    ``summarized`` names loggers whose records the command sums up itself afterwards (a run's
    own warnings, say): they are shown as they come only from INFO, when a user asked for more.
    """
    handler = RichHandler(
        console=console,
        level=level,
        show_time=False,
        show_path=False,
        markup=False,
        rich_tracebacks=False,
        keywords=[],
    )
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    levels = {name: level for name in OWN_LOGGERS}
    quiet = level if level <= logging.INFO else logging.CRITICAL + 1
    levels.update({name: quiet for name in ("py.warnings", *summarized)})
    loggers = {name: logging.getLogger(name) for name in levels}
    saved = root.level, {name: logger.level for name, logger in loggers.items()}
    root.addHandler(handler)
    # Records below these levels are not even created.
    root.setLevel(logging.DEBUG if level <= logging.DEBUG else max(level, logging.WARNING))
    for name, logger in loggers.items():
        logger.setLevel(levels[name])
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, logger in loggers.items():
            logger.setLevel(saved[1][name])
