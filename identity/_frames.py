"""Frames shaped by the vocabulary's schemas: empty ones, conformed ones, Arrow -> pandas.

Every table identity writes is built or cast here from its schema in ``identity.vocabulary``,
so a column's name, order and type are written down once.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa

from identity.vocabulary import Schema, pandas_dtypes


def empty_frame(schema: Schema, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A frame with no rows and the schema's columns (or ``columns`` of it) and dtypes."""
    dtypes = pandas_dtypes(schema, columns)
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})


def conform(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """``frame`` with exactly the schema's columns, in order, cast to its dtypes.

    Raises:
        KeyError: a schema column is missing from ``frame``.
    """
    missing = [name for name in schema if name not in frame]
    if missing:
        raise KeyError(f"frame lacks columns {missing} of its schema")
    if frame.empty:
        return empty_frame(schema)
    return frame[list(schema)].astype(pandas_dtypes(schema)).reset_index(drop=True)


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas with the platform's ``str`` columns, without per-value conversion."""
    data = {}
    for name in table.column_names:
        column = table[name]
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            data[name] = pd.Series(column, dtype="str")
        else:
            data[name] = column.to_pandas()
    return pd.DataFrame(data)
