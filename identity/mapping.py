"""Which column is what: one mapping model for cdp.yml sources and ``cdp identity resolve``.

A canonical field maps to a column, or to a list of columns whose non-empty values are joined
with spaces; a named identifier maps to one column. cdp.yml sources (``mapping:`` and
``identifiers:``, validated against their kind's fields) and the mapping file of
``cdp identity resolve --mapping`` (``attributes:``, validated against the identity attributes)
are both a :class:`ColumnMapping`, so they accept the same things and word their errors alike::

    record_id: rec_id                 # a column, or a list joined with '|'
    attributes:                       # canonical attribute: a column, or a list joined with spaces
      first_name: given_name
      street_address: [street_number, address_1]
    identifiers:                      # named identifiers: name: column
      national_id: soc_sec_id

Every mistake a user can make fails before any work starts, with a message naming the key:
an unknown attribute, a column missing from an input file, a missing ``record_id``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from identity.vocabulary import (
    IDENTIFIER_COLUMNS,
    IDENTITY_ATTRIBUTES,
    RECORD_COLUMNS,
    is_valid_identifier_name,
)

if TYPE_CHECKING:
    import pandas as pd

    from identity.collect import Collected

#: A column, or several columns whose values are joined (with spaces for a field).
ColumnRef = str | list[str]


class MappingError(ValueError):
    """A problem in a mapping file or its inputs; the message names the file and key."""


def columns_of(ref: ColumnRef) -> list[str]:
    """The columns a reference names, in order."""
    return [ref] if isinstance(ref, str) else list(ref)


class ColumnMapping(BaseModel):
    """Canonical field -> column(s) joined with spaces, plus named identifier -> column.

    Subclasses add what says which fields exist (a source kind, the identity attributes) and
    call :meth:`check_fields` and :meth:`check_identifiers` from their own validator, so the
    problems read the same wherever a mapping is written.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mapping: dict[str, ColumnRef] = Field(
        default_factory=dict,
        description="canonical field: a column, or a list of columns joined with spaces",
    )
    identifiers: dict[str, str] = Field(
        default_factory=dict, description="named identifier (account_id, ...): a column"
    )

    @classmethod
    def mapping_key(cls) -> str:
        """The YAML key of the field mapping (``mapping`` in cdp.yml)."""
        return cls.model_fields["mapping"].alias or "mapping"

    @model_validator(mode="after")
    def _columns_named(self) -> Self:
        key = self.mapping_key()
        for name, ref in self.mapping.items():
            if not columns_of(ref) or any(not column.strip() for column in columns_of(ref)):
                raise ValueError(f"{key}.{name}: must name at least one column")
        for name, column in self.identifiers.items():
            if not column.strip():
                raise ValueError(f"identifiers.{name}: must name a column")
        return self

    def check_fields(self, known: Sequence[str], what: str) -> None:
        """Every mapped field is one of ``known`` (described as ``what``).

        Raises:
            ValueError: naming the first unknown field and the known ones.
        """
        for name in self.mapping:
            if name not in known:
                raise ValueError(
                    f"{self.mapping_key()}.{name}: '{name}' is not {what} "
                    f"(known: {', '.join(known)}); put named identifiers under 'identifiers'"
                )

    def check_identifiers(self, reserved: Collection[str], what: str) -> None:
        """Every identifier name is snake_case and none of ``reserved`` (described as ``what``).

        Raises:
            ValueError: naming the first bad identifier.
        """
        for name in self.identifiers:
            if not is_valid_identifier_name(name) or name in reserved:
                raise ValueError(
                    f"identifiers.{name}: '{name}' must be a snake_case name that is not {what}"
                )

    def columns_for(self, name: str) -> list[str]:
        """The columns a mapped field reads (empty when the field is not mapped)."""
        ref = self.mapping.get(name)
        return [] if ref is None else columns_of(ref)

    def mapped_columns(self) -> set[str]:
        """Every input column the mapping names (fields and identifiers)."""
        columns = {column for ref in self.mapping.values() for column in columns_of(ref)}
        return columns | set(self.identifiers.values())

    def required_columns(self) -> dict[str, list[str]]:
        """Mapping key (``attributes.first_name``, ``identifiers.loyalty_id``) -> its columns."""
        key = self.mapping_key()
        needed = {f"{key}.{name}": columns_of(ref) for name, ref in self.mapping.items()}
        return needed | {f"identifiers.{name}": [c] for name, c in self.identifiers.items()}


class RecordMapping(ColumnMapping):
    """A ``cdp identity resolve`` mapping file: the record id column(s), attributes, identifiers."""

    record_id: ColumnRef = Field(description="column(s) whose values identify a record")
    mapping: dict[str, ColumnRef] = Field(
        default_factory=dict,
        alias="attributes",
        description="identity attribute: a column, or a list of columns joined with spaces",
    )

    @field_validator("record_id")
    @classmethod
    def _record_id_not_empty(cls, value: ColumnRef) -> ColumnRef:
        if not columns_of(value) or any(not c.strip() for c in columns_of(value)):
            raise ValueError("must name at least one column")
        return value

    @model_validator(mode="after")
    def _known_attributes(self) -> Self:
        self.check_fields(IDENTITY_ATTRIBUTES, "an identity attribute")
        self.check_identifiers(IDENTITY_ATTRIBUTES, "an attribute")
        return self

    def required_columns(self) -> dict[str, list[str]]:
        """Mapping key -> the input columns it needs (``record_id`` first)."""
        return {"record_id": columns_of(self.record_id), **super().required_columns()}


def load_mapping(path: Path) -> RecordMapping:
    """Read and validate a mapping file; errors name the file and key."""
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"{path}: mapping file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise MappingError(f"{path}: expected a mapping with 'record_id' and 'attributes'")
    if "record_id" not in raw:
        raise MappingError(f"{path}: record_id: missing; name the column that identifies a record")
    try:
        return RecordMapping.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if not location or message.startswith(f"{location}."):
                problems.append(f"  - {message}")
            else:
                problems.append(f"  - {location}: {message}")
        raise MappingError(f"{path}: invalid mapping\n" + "\n".join(problems)) from exc


def read_table_as_text(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file with every column as text (leading zeros kept; '' is null)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise MappingError(f"{path}: input file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            table = pq.read_table(path)
            table = table.cast(pa.schema([pa.field(f.name, pa.string()) for f in table.schema]))
            frame = table.to_pandas().astype("str")
        elif suffix in (".csv", ".txt", ".tsv"):
            frame = pd.read_csv(
                path,
                dtype="str",
                keep_default_na=False,
                sep="\t" if suffix == ".tsv" else ",",
                skipinitialspace=True,
                encoding="utf-8",
            )
        else:
            raise MappingError(f"{path}: unsupported input type '{suffix}' (use .csv or .parquet)")
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, pa.ArrowException) as exc:
        raise MappingError(f"{path}: cannot read the file ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in frame.columns:
        frame[column] = frame[column].str.strip().replace("", None)
    return frame


def _join(frame: pd.DataFrame, columns: Sequence[str], separator: str) -> pd.Series:
    """Non-null parts of several columns joined with ``separator``; null when all are null."""
    result = frame[columns[0]].astype("str")
    for column in columns[1:]:
        part = frame[column].astype("str")
        joined = (result + separator + part).where(result.notna(), part)
        result = joined.where(part.notna(), result)
    return result


def apply_mapping(
    frame: pd.DataFrame, mapping: RecordMapping, source: str, *, where: str = ""
) -> Collected:
    """Raw identity records (and named identifiers) of one input under a mapping.

    Raises:
        MappingError: a mapped column is missing, or record ids are missing or duplicated.
    """
    import pandas as pd

    from identity.collect import Collected

    where = where or source
    for key, columns in mapping.required_columns().items():
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MappingError(
                f"{where}: {key}: column {', '.join(repr(c) for c in missing)} not found "
                f"(columns: {', '.join(frame.columns)})"
            )
    record_ids = _join(frame, columns_of(mapping.record_id), "|")
    if record_ids.isna().any():
        rows = [int(i) + 2 for i in record_ids.index[record_ids.isna()][:5]]
        raise MappingError(f"{where}: record_id: empty on data row(s) {rows} (line numbers)")
    duplicated = record_ids[record_ids.duplicated()]
    if not duplicated.empty:
        raise MappingError(
            f"{where}: record_id: values must be unique; duplicated: "
            f"{sorted(set(duplicated.astype(str)))[:5]}"
        )
    records: dict[str, Any] = {
        "record_uid": (source + ":" + record_ids.astype(str)).to_numpy(),
        "source": source,
        "record_id": record_ids.astype(str).to_numpy(),
        "source_kind": "people",
    }
    for attribute in IDENTITY_ATTRIBUTES:
        sources = mapping.columns_for(attribute)
        records[attribute] = _join(frame, sources, " ").to_numpy() if sources else None
    records["observed_at"] = pd.NaT
    record_frame = pd.DataFrame(records)[list(RECORD_COLUMNS)]
    id_frames = []
    for name, column in mapping.identifiers.items():
        values = frame[column]
        present = values.notna()
        id_frames.append(
            pd.DataFrame(
                {
                    "record_uid": record_frame["record_uid"][present].to_numpy(),
                    "identifier_type": name,
                    "identifier_value": values[present].astype(str).to_numpy(),
                    "first_seen_at": pd.NaT,
                    "last_seen_at": pd.NaT,
                }
            )
        )
    identifiers = (
        pd.concat(id_frames, ignore_index=True)
        if id_frames
        else pd.DataFrame(columns=list(IDENTIFIER_COLUMNS))
    )
    return Collected(records=record_frame, identifiers=identifiers)


def collect_files(paths: Sequence[Path], mapping: RecordMapping) -> Collected:
    """Records of every input file under one mapping; the source is each file's name.

    Raises:
        MappingError: unreadable input, two inputs with the same file name, or a mapping that
            does not fit an input.
    """
    import pandas as pd

    from identity.collect import Collected

    names = [Path(p).name for p in paths]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise MappingError(
            f"inputs must have distinct file names (the name is the record's source): {clashes}"
        )
    records, identifiers = [], []
    for path in paths:
        frame = read_table_as_text(Path(path))
        collected = apply_mapping(frame, mapping, Path(path).name, where=str(path))
        records.append(collected.records)
        if not collected.identifiers.empty:
            identifiers.append(collected.identifiers)
    record_frame = pd.concat(records, ignore_index=True)
    record_frame["observed_at"] = pd.to_datetime(record_frame["observed_at"], utc=True)
    identifier_frame = (
        pd.concat(identifiers, ignore_index=True)
        if identifiers
        else pd.DataFrame(columns=list(IDENTIFIER_COLUMNS))
    )
    return Collected(records=record_frame, identifiers=identifier_frame)
