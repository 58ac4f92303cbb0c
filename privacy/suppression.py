"""Erasure requests and the suppression list: who was erased, kept only as keyed hashes.

One SQLite file, ``CDP_HOME/privacy/privacy.sqlite``, holds

- ``suppression``: one keyed hash (``privacy.keys``) per identifier of every erased person
  (email, phone, account and cookie ids, loyalty numbers, order ids and the person's customer
  ids, each hashed with its type), with the request that added it. Ingest (batch and real
  time) drops a record when one of its identifiers hashes into this list, so a re-delivered
  file or a replayed event does not bring an erased person back;
- ``erasure_requests`` and ``erasure_steps``: each request (the keyed hash of the identifier it
  named, when, by whom, its status) and its status per store.

Nothing here holds an identifier in plain text. :class:`Suppression` is the matcher every store
uses, for erasing, for dropping at ingest and for the erasure check alike: it normalizes a
value as identity does, hashes it under each key chain the list holds, and asks the set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from events.outbox import transaction
from identity import IdentitySettings, Normalizer
from privacy.keys import Keyring, RehashReport, parse_hash
from snapshots import (
    NORMALIZATION_SETTINGS,
    SnapshotError,
    read_current,
    read_manifest,
    snapshot_folder,
)

logger = logging.getLogger(__name__)

#: The privacy store under CDP_HOME.
PRIVACY_DB: Final[str] = "privacy/privacy.sqlite"
#: The identifier type under which a person's customer ids (survivor, aliases, provisional
#: ids) enter the list: stores keyed by customer id match through it.
CUSTOMER_ID_TYPE: Final[str] = "customer_id"
#: Order ids of an erased person's orders: order lines and events point at them.
ORDER_ID_TYPE: Final[str] = "order_id"
#: Prefix of the pseudonym an erased person's customer id is replaced by where a count must
#: survive (decision log, outbox): ``erased:<16 hex>``.
PSEUDONYM_PREFIX: Final[str] = "erased:"
PSEUDONYM_HEX: Final[int] = 16
#: Reason counted when ingest drops a record of an erased person.
SUPPRESSED_REASON: Final[str] = "erased_person"

#: Request statuses.
PENDING: Final[str] = "pending"
COMPLETED: Final[str] = "completed"
INCOMPLETE: Final[str] = "incomplete"
NOTHING_HELD: Final[str] = "nothing_held"
#: Step statuses.
STEP_ERASED: Final[str] = "erased"
STEP_VERIFIED: Final[str] = "verified"
STEP_REMAINING: Final[str] = "remaining"
STEP_FAILED: Final[str] = "failed"
STEP_ABSENT: Final[str] = "absent"

_SCHEMA: Final[str] = """
create table if not exists suppression (
    hash text primary key,
    identifier_type text not null,
    request_id text not null,
    added_at integer not null
);
create table if not exists erasure_requests (
    request_id text primary key,
    subject_hash text not null,
    subject_type text not null,
    requested_at integer not null,
    requested_by text not null,
    status text not null,
    completed_at integer,
    customer_ids integer not null default 0,
    identifiers integer not null default 0,
    duration_seconds real
);
create index if not exists erasure_requests_subject on erasure_requests (subject_hash);
create table if not exists erasure_steps (
    request_id text not null,
    store text not null,
    status text not null,
    removed integer not null default 0,
    remaining integer not null default 0,
    detail text not null default '',
    seconds real not null default 0,
    updated_at integer not null,
    primary key (request_id, store)
);
"""


def _micros(moment: datetime | None = None) -> int:
    moment = moment or datetime.now(UTC)
    return int(moment.timestamp() * 1_000_000)


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1e6, UTC)


def privacy_db_path(home: Path) -> Path:
    """``CDP_HOME/privacy/privacy.sqlite``."""
    return Path(home) / PRIVACY_DB


# --- matching -------------------------------------------------------------------------------

Normalize = Callable[[str, Any], "tuple[Any, Any]"]


@dataclass(frozen=True)
class Suppression:
    """A set of keyed hashes and the keyring to compute them: the matcher of every store.

    ``normalize(identifier_type, raw)`` is identity's ``Normalizer.identifier`` (returns the
    normalized value, or None for a missing, invalid or junk value); values are memoized, as a
    store repeats the same values many times.
    """

    keyring: Keyring
    hashes: frozenset[str]
    #: key chains of the hashes held (a rotation leaves wrapped hashes under several keys)
    chains: frozenset[tuple[str, ...]]
    #: identifier types present: a column of another type cannot match
    types: frozenset[str]
    #: ``{hash: identifier type}``: what the list holds, to list it again or extend it
    entries: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    _memo: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, keyring: Keyring, hashes: Mapping[str, str]) -> Suppression:
        """From ``{hash: identifier_type}``."""
        chains = frozenset(parse_hash(h).chain for h in hashes) or frozenset(
            {(keyring.current.key_id,)}
        )
        return cls(keyring, frozenset(hashes), chains, frozenset(hashes.values()), dict(hashes))

    @classmethod
    def of_identifiers(
        cls, keyring: Keyring, identifiers: Iterable[tuple[str, str]]
    ) -> Suppression:
        """The hashes of (type, normalized value) pairs under the current key."""
        return cls.of(keyring, {keyring.hash(kind, value): kind for kind, value in identifiers})

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def __len__(self) -> int:
        return len(self.hashes)

    def matches(self, identifier_type: str, normalized_value: str) -> bool:
        """Whether (type, normalized value) is in the list (under any key chain it holds)."""
        if identifier_type not in self.types or not normalized_value:
            return False
        key = (identifier_type, normalized_value)
        found = self._memo.get(key)
        if found is None:
            found = any(
                self.keyring.hash_under(chain, identifier_type, normalized_value) in self.hashes
                for chain in self.chains
            )
            if len(self._memo) < 1_000_000:
                self._memo[key] = found
        return found

    def matching_values(
        self, identifier_type: str, values: Iterable[Any], normalize: Normalize | None = None
    ) -> set[Any]:
        """The raw values (as given) that normalize to a listed identifier of that type."""
        if identifier_type not in self.types:
            return set()
        found: set[Any] = set()
        for raw in set(values):
            if raw is None:
                continue
            if normalize is None:
                normalized: Any = str(raw).strip()
            else:
                normalized = normalize(identifier_type, raw)[0]
            if normalized is not None and self.matches(identifier_type, str(normalized)):
                found.add(raw)
        return found

    def row_mask(
        self,
        table: pa.Table,
        columns: Mapping[str, str],
        normalize: Normalize | None = None,
    ) -> pa.BooleanArray:
        """True for rows where a column of ``columns`` (column -> identifier type) matches.

        Columns missing from the table are skipped; list or non-text columns are compared by
        their text. The result has no nulls.
        """
        mask = pa.array([False] * table.num_rows, pa.bool_())
        if not self.hashes or table.num_rows == 0:
            return mask
        for column, kind in columns.items():
            if kind not in self.types or column not in table.column_names:
                continue
            values = table.column(column)
            if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
                values = pc.cast(values, pa.string())
            distinct = pc.unique(values).to_pylist()
            hits = self.matching_values(kind, (v for v in distinct if v), normalize)
            if hits:
                hit = pc.fill_null(pc.is_in(values, value_set=pa.array(sorted(hits))), False)
                mask = pc.or_(mask, hit)
        return mask

    def matched_hash(self, identifier_type: str, normalized_value: str) -> str | None:
        """The list entry (keyed hash) that (type, normalized value) matches, if any."""
        if not self.matches(identifier_type, normalized_value):
            return None
        for chain in sorted(self.chains):
            candidate = self.keyring.hash_under(chain, identifier_type, normalized_value)
            if candidate in self.hashes:
                return candidate
        return None

    def pseudonym(self, customer_id: str) -> str | None:
        """``erased:<16 hex>`` for a listed customer id (None: not listed).

        The hex is the start of the digest of the id's list entry: the same id always gets the
        same pseudonym, so counts by person survive, and two ids never share one (the decision
        log's unique key per customer, placement and period cannot collide).
        """
        found = self.matched_hash(CUSTOMER_ID_TYPE, customer_id.strip())
        if found is None:
            return None
        return PSEUDONYM_PREFIX + parse_hash(found).digest.hex()[:PSEUDONYM_HEX]

    def text_names(self, text: str, normalize: Normalize | None = None) -> bool:
        """Whether free text holds a listed identifier: each distinct token tried once.

        The fast form of :meth:`text_matches` for large files (dbt logs, run storage): tokens
        are de-duplicated before any normalizing or hashing, so a clean file costs one pass
        of the token patterns.
        """
        if not self.hashes or not text:
            return False
        for kind, raw in set(text_identifiers(text, self.types)):
            normalized = raw.strip() if normalize is None else normalize(kind, raw)[0]
            if normalized is not None and self.matches(kind, str(normalized)):
                return True
        return False

    def text_matches(self, text: str, normalize: Normalize | None = None) -> int:
        """How many identifier-like tokens of free text are listed (0: the text is clean)."""
        if not self.hashes or not text:
            return 0
        count = 0
        for kind, raw in text_identifiers(text, self.types):
            normalized = raw.strip() if normalize is None else normalize(kind, raw)[0]
            if normalized is not None and self.matches(kind, str(normalized)):
                count += 1
        return count


#: Free text is cut at characters no identifier holds (``:`` included, so ``cookie:ck_1`` and
#: ``mailto:a@b.co`` give their values); emails are then the pieces of email shape, other ids
#: every word-like piece. Splitting first keeps this linear: an email pattern run over the
#: whole text backtracks on long runs of word characters (seconds on a 7 MB log).
_TEXT_SPLIT: Final[re.Pattern[str]] = re.compile(r"[^\w.+@'-]+")
_EMAIL_SHAPE: Final[re.Pattern[str]] = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE_TOKEN: Final[re.Pattern[str]] = re.compile(r"\+?\d[\d ().-]{5,}\d")
_WORD_TOKEN: Final[re.Pattern[str]] = re.compile(r"[\w.-]{3,}")


def text_identifiers(text: str, types: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Candidate (type, raw value) pairs in free text (a log line, a JSON body, a CSV line).

    Emails are found by shape, phones as runs of digits and separators, other types (account
    and cookie ids, customer and order ids) as every word-like token, tried under each type.
    Cheap and over-inclusive: the keyed hash decides.
    """
    wanted = set(types)
    if "email" in wanted and "@" in text:
        for piece in _TEXT_SPLIT.split(text):
            if "@" in piece:
                for match in _EMAIL_SHAPE.finditer(piece):
                    yield "email", match.group(0).strip(".'-")
    if "phone" in wanted:
        for match in _PHONE_TOKEN.finditer(text):
            yield "phone", match.group(0)
    others = sorted(wanted - {"email", "phone"})
    if others:
        for match in _WORD_TOKEN.finditer(text):
            token = match.group(0).strip(".-")
            for kind in others:
                yield kind, token


def identifier_columns(names: Iterable[str], types: Iterable[str]) -> dict[str, str]:
    """Columns of a table (warehouse, snapshot, lake) that hold an identifier, with its type.

    A column named as a type (``email``, ``account_id``, ``customer_id``) or ending in
    ``_<type>`` (``related_customer_id``, ``normalized_email``) holds that type.
    """
    kinds = sorted(set(types), key=len, reverse=True)
    found: dict[str, str] = {}
    for name in names:
        lowered = name.lower()
        for kind in kinds:
            if lowered == kind or lowered.endswith("_" + kind):
                found[name] = kind
                break
    return found


def store_normalizer(home: Path) -> Normalize:
    """Identity's ``Normalizer.identifier`` with the settings of the serving snapshot (as
    identity normalized the data it was built from), or the defaults without a snapshot: the
    same values must hash the same way at ingest, in every eraser and in the check."""
    serving = Path(home) / "serving"
    settings = IdentitySettings()
    try:
        current = read_current(serving)
        if current is not None:
            manifest = read_manifest(snapshot_folder(serving, current))
            settings = IdentitySettings.model_validate(
                {k: v for k, v in manifest.identity_settings.items() if k in NORMALIZATION_SETTINGS}
            )
    except (OSError, SnapshotError, ValueError) as exc:
        logger.warning("serving snapshot unreadable (%s); default normalization", exc)
    return Normalizer(settings).identifier


def memoized(normalize: Normalize, size: int = 500_000) -> Normalize:
    """``normalize`` with a memo: a store repeats values, and free text repeats tokens (phone
    parsing and blocklist checks cost microseconds a value, more than the hash)."""
    memo: dict[tuple[str, Any], tuple[Any, Any]] = {}

    def cached(identifier_type: str, raw: Any) -> tuple[Any, Any]:
        key = (identifier_type, raw)
        found = memo.get(key)
        if found is None:
            found = normalize(identifier_type, raw)
            if len(memo) >= size:
                memo.clear()
            memo[key] = found
        return found

    return cached


# --- the store ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureRequest:
    """One request as stored (no identifier in plain text)."""

    request_id: str
    subject_hash: str
    subject_type: str
    requested_at: datetime
    requested_by: str
    status: str
    completed_at: datetime | None
    customer_ids: int
    identifiers: int
    duration_seconds: float | None


@dataclass(frozen=True)
class ErasureStep:
    """One store's status within a request."""

    store: str
    status: str
    removed: int
    remaining: int
    detail: str
    seconds: float
    updated_at: datetime


class PrivacyStore:
    """``privacy.sqlite``: the suppression list and erasure requests (a ``HashedStore``).

    Connections are per thread; every write is one transaction. Readers (the API's intake, the
    stream processor, ingest) call :meth:`version` to know whether to reload their matcher.
    """

    name = "privacy"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    @classmethod
    def at(cls, home: Path) -> PrivacyStore:
        """The store of one CDP_HOME."""
        return cls(privacy_db_path(home))

    def exists(self) -> bool:
        """Whether the file exists (readers never create it)."""
        return self.path.exists()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            if new:
                with contextlib.suppress(OSError):
                    os.chmod(self.path, 0o600)
            conn.execute("pragma journal_mode = wal")
            conn.execute("pragma synchronous = full")
            conn.executescript(_SCHEMA)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn())

    # suppression -----------------------------------------------------------------------------

    def version(self) -> tuple[int, int]:
        """(row count, newest added_at) of the list: changes whenever an entry is added."""
        if not self.exists():
            return (0, 0)
        row = self._conn().execute("select count(*), max(added_at) from suppression").fetchone()
        return (int(row[0]), int(row[1] or 0))

    def hashes(self, request_id: str | None = None) -> dict[str, str]:
        """``{hash: identifier_type}`` of the whole list, or of one request."""
        if not self.exists():
            return {}
        sql = "select hash, identifier_type from suppression"
        params: tuple[Any, ...] = ()
        if request_id is not None:
            sql += " where request_id = ?"
            params = (request_id,)
        return {str(h): str(t) for h, t in self._conn().execute(sql, params).fetchall()}

    def suppression(self, keyring: Keyring, request_id: str | None = None) -> Suppression:
        """The matcher of the whole list (or of one request's hashes)."""
        return Suppression.of(keyring, self.hashes(request_id))

    def add(self, request_id: str, hashes: Mapping[str, str]) -> int:
        """Add ``{hash: type}`` entries for a request; returns how many were new."""
        now = _micros()
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                "insert or ignore into suppression (hash, identifier_type, request_id, added_at) "
                "values (?, ?, ?, ?)",
                [(h, t, request_id, now) for h, t in sorted(hashes.items())],
            )
            return conn.total_changes - before

    def holder(self, keyring: Keyring, identifier_type: str, value: str) -> str | None:
        """The request whose list entry matches (type, normalized value), if any."""
        if not self.exists():
            return None
        chains = {parse_hash(h).chain for h in self.hashes()} or {(keyring.current.key_id,)}
        for chain in chains:
            row = (
                self._conn()
                .execute(
                    "select request_id from suppression where hash = ?",
                    (keyring.hash_under(chain, identifier_type, value),),
                )
                .fetchone()
            )
            if row is not None:
                return str(row[0])
        return None

    # requests --------------------------------------------------------------------------------

    def create_request(self, subject_hash: str, subject_type: str, requested_by: str) -> str:
        """A new pending request; returns its id."""
        request_id = "er_" + uuid.uuid4().hex[:20]
        with self._write() as conn:
            conn.execute(
                "insert into erasure_requests (request_id, subject_hash, subject_type, "
                "requested_at, requested_by, status) values (?, ?, ?, ?, ?, ?)",
                (request_id, subject_hash, subject_type, _micros(), requested_by, PENDING),
            )
        return request_id

    def finish_request(
        self,
        request_id: str,
        status: str,
        *,
        customer_ids: int,
        identifiers: int,
        duration_seconds: float,
    ) -> None:
        """Record the outcome of a request."""
        with self._write() as conn:
            conn.execute(
                "update erasure_requests set status = ?, completed_at = ?, customer_ids = ?, "
                "identifiers = ?, duration_seconds = ? where request_id = ?",
                (status, _micros(), customer_ids, identifiers, duration_seconds, request_id),
            )

    def set_step(
        self,
        request_id: str,
        store: str,
        status: str,
        *,
        removed: int = 0,
        remaining: int = 0,
        detail: str = "",
        seconds: float = 0.0,
    ) -> None:
        """Record (or update) one store's status within a request."""
        with self._write() as conn:
            conn.execute(
                "insert into erasure_steps (request_id, store, status, removed, remaining, "
                "detail, seconds, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?) "
                "on conflict (request_id, store) do update set status = excluded.status, "
                "removed = excluded.removed, remaining = excluded.remaining, "
                "detail = excluded.detail, seconds = excluded.seconds, "
                "updated_at = excluded.updated_at",
                (request_id, store, status, removed, remaining, detail, seconds, _micros()),
            )

    def reopen(self, statuses: tuple[str, ...] = (COMPLETED,)) -> list[str]:
        """Mark requests in ``statuses`` incomplete (to be carried out again); returns them.

        The erasure check calls it when a store holds an erased person again (a run that read
        a store before an erasure and wrote after it): the pipeline carries them out again.
        """
        if not self.exists():
            return []
        marks = ", ".join("?" * len(statuses))
        with self._write() as conn:
            ids = [
                str(r[0])
                for r in conn.execute(
                    f"select request_id from erasure_requests where status in ({marks})",
                    statuses,
                ).fetchall()
            ]
            conn.execute(
                f"update erasure_requests set status = ? where status in ({marks})",
                (INCOMPLETE, *statuses),
            )
        return ids

    def requests(self, limit: int = 1_000) -> list[ErasureRequest]:
        """Requests, newest first."""
        if not self.exists():
            return []
        rows = (
            self._conn()
            .execute(
                "select request_id, subject_hash, subject_type, requested_at, requested_by, "
                "status, completed_at, customer_ids, identifiers, duration_seconds "
                "from erasure_requests order by requested_at desc, request_id limit ?",
                (limit,),
            )
            .fetchall()
        )
        return [_request(row) for row in rows]

    def request(self, request_id: str) -> ErasureRequest | None:
        """One request by id."""
        if not self.exists():
            return None
        row = (
            self._conn()
            .execute(
                "select request_id, subject_hash, subject_type, requested_at, requested_by, "
                "status, completed_at, customer_ids, identifiers, duration_seconds "
                "from erasure_requests where request_id = ?",
                (request_id,),
            )
            .fetchone()
        )
        return None if row is None else _request(row)

    def steps(self, request_id: str) -> list[ErasureStep]:
        """A request's status per store, in the order they ran."""
        if not self.exists():
            return []
        rows = (
            self._conn()
            .execute(
                "select store, status, removed, remaining, detail, seconds, updated_at "
                "from erasure_steps where request_id = ? order by updated_at, store",
                (request_id,),
            )
            .fetchall()
        )
        return [
            ErasureStep(str(s), str(st), int(r), int(rem), str(d), float(sec), _time(u) or _epoch())
            for s, st, r, rem, d, sec, u in rows
        ]

    # HashedStore -----------------------------------------------------------------------------

    def chains(self) -> set[tuple[str, ...]]:
        """The key chains of every hash held (list entries and request subjects)."""
        if not self.exists():
            return set()
        conn = self._conn()
        held = [str(r[0]) for r in conn.execute("select hash from suppression").fetchall()]
        held += [str(r[0]) for r in conn.execute("select subject_hash from erasure_requests")]
        return {parse_hash(h).chain for h in held}

    def rehash(self, keyring: Keyring) -> RehashReport:
        """Wrap every held hash under the keyring's current key, in one transaction."""
        if not self.exists():
            return RehashReport(self.name, 0, 0)
        current = keyring.current.key_id
        rehashed = unchanged = 0
        with self._write() as conn:
            rows = conn.execute("select hash from suppression").fetchall()
            for (old,) in rows:
                if parse_hash(str(old)).chain[0] == current:
                    unchanged += 1
                    continue
                conn.execute(
                    "update suppression set hash = ? where hash = ?", (keyring.rehash(old), old)
                )
                rehashed += 1
            subjects = conn.execute(
                "select request_id, subject_hash from erasure_requests"
            ).fetchall()
            for request_id, old in subjects:
                if parse_hash(str(old)).chain[0] == current:
                    unchanged += 1
                    continue
                conn.execute(
                    "update erasure_requests set subject_hash = ? where request_id = ?",
                    (keyring.rehash(old), request_id),
                )
                rehashed += 1
        return RehashReport(self.name, rehashed, unchanged)


def _epoch() -> datetime:
    return datetime.fromtimestamp(0, UTC)


def _request(row: tuple[Any, ...]) -> ErasureRequest:
    return ErasureRequest(
        request_id=str(row[0]),
        subject_hash=str(row[1]),
        subject_type=str(row[2]),
        requested_at=_time(int(row[3])) or _epoch(),
        requested_by=str(row[4]),
        status=str(row[5]),
        completed_at=_time(row[6]),
        customer_ids=int(row[7]),
        identifiers=int(row[8]),
        duration_seconds=None if row[9] is None else float(row[9]),
    )


class SuppressionCache:
    """A process's current matcher, reloaded only when ``privacy.sqlite`` changed.

    For the intake and the stream processor, which ask per request or per event:
    ``PRAGMA data_version`` on a read-only connection of the cache's own tells in about a
    microsecond whether another connection committed since the last call (a count over the
    list cost 0.1 ms a call at 1,000 entries, which halved the single-event intake rate). No
    file yet: an empty list, looked for again at each call (one ``stat``); nothing is created.
    """

    def __init__(self, home: Path, keyring: Keyring) -> None:
        self.store = PrivacyStore.at(home)
        self.keyring = keyring
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._current = Suppression.of(keyring, {})
        self._lock = threading.Lock()

    def get(self) -> Suppression:
        """The matcher of the list as it is now."""
        with self._lock:
            if self._conn is None:
                if not self.store.exists():
                    return self._current
                uri = f"{self.store.path.resolve().as_uri()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            version = int(self._conn.execute("pragma data_version").fetchone()[0])
            if version != self._seen:
                self._current = self.store.suppression(self.keyring)
                self._seen = version
            return self._current

    def close(self) -> None:
        """Close the watching connection (and this thread's store connection)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self.store.close()
