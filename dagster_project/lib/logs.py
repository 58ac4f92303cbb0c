"""The log level a user chose: ``-v`` on the command line, else ``CDP_LOG_LEVEL``, else WARNING.

One reading for ``cdp`` and for the runs ``dagster dev`` launches, so both mean the same by it.
WARNING by default because what a run says below it (step starts, dbt's per-model lines,
Splink's EM iterations) is progress, which the CLI shows as a bar and the UI as the run's log.
Like all library code this does not read the environment itself: callers pass it in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

LOG_LEVEL_VARIABLE: Final[str] = "CDP_LOG_LEVEL"
DEFAULT_LOG_LEVEL: Final[int] = logging.WARNING
_LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def chosen_log_level(verbose: int = 0, environ: Mapping[str, str] | None = None) -> int:
    """``-v`` is INFO and ``-vv`` DEBUG; without it ``CDP_LOG_LEVEL``; else WARNING.

    Raises:
        ValueError: ``CDP_LOG_LEVEL`` is not a level name; the message lists the valid ones.
    """
    if verbose > 0:
        return logging.INFO if verbose == 1 else logging.DEBUG
    text = (environ or {}).get(LOG_LEVEL_VARIABLE, "").strip().lower()
    if not text:
        return DEFAULT_LOG_LEVEL
    if text not in _LEVELS:
        raise ValueError(
            f"{LOG_LEVEL_VARIABLE}={text!r} is not a log level; use one of {', '.join(_LEVELS)}"
        )
    return _LEVELS[text]
