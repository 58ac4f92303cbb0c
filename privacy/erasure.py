"""Erasure on request: find a person, list them, remove them from every store, prove it.

:func:`erase` carries out one request, in this order:

1. **Who.** The person is resolved as access resolves them (:func:`privacy.access.export_person`:
   the serving snapshot's survivor and every merged id, live aliases and provisional ids, every
   identifier any of them holds). Their identifiers and customer ids become keyed hashes
   (:class:`privacy.suppression.Suppression`); each store then adds what it links to them (their
   order ids, so order lines go too).
2. **Listed first.** The request (the keyed hash of what it named) and the hashes enter the
   suppression list *before* anything is removed: from that moment ingest, batch and real
   time, drops the person's records, so nothing erased can be re-ingested behind the erasure.
3. **Every store**, in dependency order (sources before what is derived from them): each
   :class:`privacy.stores.Eraser` removes what matches, or pseudonymizes where a count must
   survive. A store that fails is recorded as failed with its error; the others still run.
4. **Verified.** Each store is scanned for the list entries of this request; the request is
   ``completed`` only when every store is clean, ``incomplete`` otherwise (run it again: every
   step is idempotent).

An unknown person is not an error: when no store holds anything matching, the request is
recorded as ``nothing_held`` and nothing is listed. Erasing someone already erased re-runs the
stores with the earlier request's hashes (nothing is left to remove) and says so.

Erasure and pipeline runs exclude each other through :func:`home_lock` (``cdp run`` holds it
for a whole run): an erasure asked during a run waits for it, and a run started during an
erasure waits, so no store is ever left half-erased behind a run that reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from events.config import IdentifierTypes
from privacy.access import PersonRef, _open_snapshot, export_person
from privacy.keys import Keyring
from privacy.stores import EraseOutcome, Eraser, ScanOutcome
from privacy.suppression import (
    COMPLETED,
    CUSTOMER_ID_TYPE,
    INCOMPLETE,
    NOTHING_HELD,
    PENDING,
    STEP_ABSENT,
    STEP_ERASED,
    STEP_FAILED,
    STEP_REMAINING,
    STEP_VERIFIED,
    PrivacyStore,
    Suppression,
)

logger = logging.getLogger(__name__)

#: The lock file that erasure and pipeline runs share (under CDP_HOME).
LOCK_FILE: Final[str] = "privacy/run.lock"
#: Seconds an erasure waits for a run in progress by default (runs of the 100k world take
#: minutes; longer than this and the operator is told to try again).
DEFAULT_LOCK_TIMEOUT: Final[float] = 3_600.0

Progress = Callable[[str, int, int], None]


class ErasureBusy(TimeoutError):
    """A pipeline run (or another erasure) held the lock longer than the timeout."""


#: Lock files this process holds, with how many holders: the lock is re-entrant within a
#: process (``cdp run`` holds it, and the run's own erasure asset asks again).
_HELD: dict[str, int] = {}
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def home_lock(
    home: Path, *, timeout: float | None = None, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Exclusive lock shared by erasure and pipeline runs of one CDP_HOME (see the module doc).

    Re-entrant within a process. ``timeout`` None waits forever; ``on_wait`` is called once if
    the lock is busy (to say why the command pauses). ErasureBusy when the timeout passes.
    """
    path = str((Path(home) / LOCK_FILE).resolve())
    with _HELD_GUARD:
        if _HELD.get(path):
            _HELD[path] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD[path] -= 1
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, path, timeout, on_wait)
        with _HELD_GUARD:
            _HELD[path] = 1
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD.pop(path, None)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(fd: int, path: str, timeout: float | None, on_wait: Callable[[], None] | None) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if on_wait is not None:
        on_wait()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                raise ErasureBusy(
                    f"a pipeline run or another erasure has held {path} for more than "
                    f"{timeout:.0f} s; try again when it has finished"
                ) from None
            time.sleep(0.2)


def _wait_until_idle(
    busy: Callable[[], str | None] | None,
    timeout: float | None,
    on_wait: Callable[[], None] | None,
) -> None:
    if busy is None:
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    told = False
    while (what := busy()) is not None:
        if not told and on_wait is not None:
            on_wait()
            told = True
        if deadline is not None and time.monotonic() >= deadline:
            raise ErasureBusy(f"{what} is still in progress after {timeout:.0f} s; try again")
        time.sleep(1.0)


@dataclass(frozen=True)
class StepReport:
    """One store's part in a request: what it removed and what its scan found after."""

    store: str
    status: str
    erased: EraseOutcome
    scan: ScanOutcome
    seconds: float
    error: str = ""


@dataclass
class ErasureResult:
    """The outcome of one request (what the CLI and the GraphQL mutation report)."""

    request_id: str
    status: str
    customer_ids: int
    identifiers: int
    seconds: float
    steps: list[StepReport] = field(default_factory=list)
    message: str = ""
    #: the earlier request that had already erased this person, if any
    already_erased_by: str | None = None

    @property
    def removed(self) -> int:
        """Rows, lines and records removed or pseudonymized over all stores."""
        return sum(step.erased.total for step in self.steps)


def _subject(keyring: Keyring, ref: PersonRef, asked: dict[str, str]) -> tuple[str, str]:
    """(keyed hash, type) of what the request named, normalized as the export normalized it."""
    if ref.customer_id is not None:
        return keyring.hash(CUSTOMER_ID_TYPE, asked["customer_id"]), CUSTOMER_ID_TYPE
    kind = asked["identifier_type"]
    return keyring.hash(kind, asked["normalized_value"]), kind


def _person_identifiers(document: dict[str, object]) -> set[tuple[str, str]]:
    """Every (type, normalized value) the export found, plus the customer ids."""
    found: set[tuple[str, str]] = set()
    identifiers = document["identifiers"]
    assert isinstance(identifiers, dict)
    for text in identifiers.get("all", []):
        kind, _, value = str(text).partition(":")
        if kind and value:
            found.add((kind, value))
    for customer in document.get("customer_ids", []) or []:  # type: ignore[union-attr]
        found.add((CUSTOMER_ID_TYPE, str(customer)))
    asked = document["asked"]
    assert isinstance(asked, dict)
    if "customer_id" in asked:
        found.add((CUSTOMER_ID_TYPE, str(asked["customer_id"])))
    elif asked.get("identifier_type") != "alias_customer_id":
        found.add((str(asked["identifier_type"]), str(asked["normalized_value"])))
    else:
        found.add((CUSTOMER_ID_TYPE, str(asked["normalized_value"])))
    return found


def _shared_with_others(
    home: Path, identifiers: set[tuple[str, str]], ids: Sequence[str]
) -> set[tuple[str, str]]:
    """The person's identifiers that other customers of the snapshot hold too.

    A phone a household shares, a cookie of a shared computer: listing it would erase the
    other customers' records too and drop their future ones at ingest. The person's own
    records are still found by their other identifiers and customer ids.
    """
    wanted = {(k, v) for k, v in identifiers if k != CUSTOMER_ID_TYPE}
    snapshot = _open_snapshot(home)
    if snapshot is None or not wanted or not snapshot.has_table("customer_identifiers"):
        if snapshot is not None:
            snapshot.close()
        return set()
    try:
        values = sorted({v for _, v in wanted})
        own = list(ids) or [""]
        rows = snapshot.conn.execute(
            f"select distinct identifier_type, identifier_value from customer_identifiers "
            f"where identifier_value in ({', '.join('?' * len(values))}) "
            f"and customer_id not in ({', '.join('?' * len(own))})",
            [*values, *own],
        ).fetchall()
    finally:
        snapshot.close()
    return {(str(k), str(v)) for k, v in rows} & wanted


def _scan_all(erasers: Sequence[Eraser], person: Suppression) -> dict[str, ScanOutcome]:
    return {eraser.name: eraser.scan(person) for eraser in erasers}


@dataclass(frozen=True)
class Planned:
    """A request recorded (or found): what :func:`carry_out` will work on."""

    request_id: str
    status: str
    #: the request that had already erased this person (``request_id`` is then that one)
    already_erased: bool = False
    message: str = ""


def plan(
    home: Path,
    ref: PersonRef,
    keyring: Keyring,
    *,
    requested_by: str,
    identifier_types: IdentifierTypes | None = None,
    scan_erasers: Sequence[Eraser] = (),
) -> Planned:
    """Record an erasure request and list the person (steps 1 and 2 of the module docstring).

    A person no store knows gets a ``nothing_held`` request (nothing listed); ``scan_erasers``
    are asked first, so data only in the lake (not yet published) still counts as held. A
    person already erased returns the earlier request, to be carried out again (idempotent).
    AccessError for a request that names no one (bad identifier type or value).
    """
    store = PrivacyStore.at(home)
    document = export_person(home, ref, identifier_types=identifier_types)
    asked = document["asked"]
    subject_hash, subject_type = _subject(keyring, ref, asked)
    if not document["found"]:
        kind, value = (
            (CUSTOMER_ID_TYPE, asked["customer_id"])
            if "customer_id" in asked
            else (asked["identifier_type"], asked["normalized_value"])
        )
        earlier = store.holder(keyring, kind, value)
        if earlier is not None:
            return Planned(
                earlier,
                PENDING,
                already_erased=True,
                message=f"already erased by request {earlier}: the stores are checked again",
            )
    identifiers = _person_identifiers(document)
    shared = _shared_with_others(home, identifiers, document.get("customer_ids") or [])
    person = Suppression.of_identifiers(keyring, identifiers - shared)
    if not document["found"]:
        scans = _scan_all(scan_erasers, person)
        if not any(scan.remaining for scan in scans.values()):
            request_id = store.create_request(subject_hash, subject_type, requested_by)
            for name in scans:
                store.set_step(request_id, name, STEP_VERIFIED, detail="nothing held")
            store.finish_request(
                request_id, NOTHING_HELD, customer_ids=0, identifiers=0, duration_seconds=0.0
            )
            return Planned(
                request_id,
                NOTHING_HELD,
                message="nothing held: no store has data about this person",
            )
    request_id = store.create_request(subject_hash, subject_type, requested_by)
    store.add(request_id, person.entries)
    message = (
        f"{len(shared)} identifier(s) also held by other customers (a household phone, a shared "
        "device) were left off the list: erasing this person does not remove those customers"
        if shared
        else ""
    )
    return Planned(request_id, PENDING, message=message)


def carry_out(
    home: Path,
    request_id: str,
    keyring: Keyring,
    erasers: Sequence[Eraser],
    *,
    progress: Progress | None = None,
) -> ErasureResult:
    """Erase a listed request's person from every store and verify (steps 3 and 4).

    Works from the request's keyed hashes alone, so it runs anywhere and again: a request
    made over GraphQL is carried out by the pipeline, a second run removes nothing.
    """
    report = progress or (lambda _step, _done, _total: None)
    started = time.monotonic()
    store = PrivacyStore.at(home)
    request = store.request(request_id)
    if request is None:
        raise KeyError(f"no erasure request {request_id}")
    person = store.suppression(keyring, request_id)
    if not person:
        return ErasureResult(request_id, request.status, 0, 0, 0.0, message="nothing listed")
    hashes = dict(person.entries)
    for eraser in erasers:  # what the stores link to the person (their order ids)
        hashes.update(eraser.related(person))
    if len(hashes) > len(person.entries):
        store.add(request_id, hashes)
        person = Suppression.of(keyring, hashes)

    steps: list[StepReport] = []
    for done, eraser in enumerate(erasers):
        report(f"erasing: {eraser.name}", done, len(erasers))
        steps.append(_run_step(store, request_id, eraser, person))
    report("erased", len(erasers), len(erasers))

    complete = all(step.status in (STEP_VERIFIED, STEP_ABSENT) for step in steps)
    status = COMPLETED if complete else INCOMPLETE
    seconds = time.monotonic() - started
    customers = sum(1 for t in hashes.values() if t == CUSTOMER_ID_TYPE)
    store.finish_request(
        request_id,
        status,
        customer_ids=customers,
        identifiers=len(hashes) - customers,
        duration_seconds=seconds,
    )
    result = ErasureResult(request_id, status, customers, len(hashes) - customers, seconds, steps)
    if not complete:
        failed = [s.store for s in steps if s.status not in (STEP_VERIFIED, STEP_ABSENT)]
        result.message = f"not every store is clean ({', '.join(failed)}); run the erasure again"
    logger.info(
        "erasure %s: %s, %d row(s) removed in %.1f s", request_id, status, result.removed, seconds
    )
    return result


def carry_out_pending(
    home: Path, keyring: Keyring, erasers: Sequence[Eraser], *, progress: Progress | None = None
) -> list[ErasureResult]:
    """Carry out every request not yet completed (made over GraphQL, or left incomplete)."""
    store = PrivacyStore.at(home)
    return [
        carry_out(home, request.request_id, keyring, erasers, progress=progress)
        for request in reversed(store.requests())
        if request.status in (PENDING, INCOMPLETE)
    ]


def erase(
    home: Path,
    ref: PersonRef,
    keyring: Keyring,
    erasers: Sequence[Eraser],
    *,
    requested_by: str,
    identifier_types: IdentifierTypes | None = None,
    progress: Progress | None = None,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    on_wait: Callable[[], None] | None = None,
    busy: Callable[[], str | None] | None = None,
) -> ErasureResult:
    """Record and carry out one request under the run lock (``cdp privacy erase``).

    ``busy()`` names work in progress the lock does not cover (a run the Dagster daemon
    launched): the erasure waits, under the lock, until it returns None.
    """
    report = progress or (lambda _step, _done, _total: None)
    started = time.monotonic()
    with home_lock(home, timeout=lock_timeout, on_wait=on_wait):
        _wait_until_idle(busy, lock_timeout, on_wait)
        report("finding the person", 0, 1)
        planned = plan(
            home,
            ref,
            keyring,
            requested_by=requested_by,
            identifier_types=identifier_types,
            scan_erasers=erasers,
        )
        report("finding the person", 1, 1)
        if planned.status == NOTHING_HELD:
            return ErasureResult(
                planned.request_id,
                NOTHING_HELD,
                0,
                0,
                time.monotonic() - started,
                message=planned.message,
            )
        result = carry_out(home, planned.request_id, keyring, erasers, progress=progress)
        result.seconds = time.monotonic() - started
        if planned.message and not planned.already_erased:
            result.message = " ".join(m for m in (planned.message, result.message) if m)
        if planned.already_erased:
            result.already_erased_by = planned.request_id
            result.message = (
                f"already erased by request {planned.request_id}; the stores were checked again "
                f"and {result.removed} more row(s) removed"
            )
        return result


def _run_step(
    store: PrivacyStore, request_id: str, eraser: Eraser, person: Suppression
) -> StepReport:
    """Erase one store, then scan it; a failure is recorded, never raised past the others."""
    began = time.monotonic()
    try:
        erased = eraser.erase(person)
        store.set_step(
            request_id,
            eraser.name,
            STEP_ERASED,
            removed=erased.total,
            detail=_detail(erased),
            seconds=time.monotonic() - began,
        )
        scan = eraser.scan(person)
    except Exception as exc:  # one store's failure must not stop the others
        logger.exception("erasure %s: store %s failed", request_id, eraser.name)
        seconds = time.monotonic() - began
        error = f"{type(exc).__name__}: {exc}"[:500]
        store.set_step(request_id, eraser.name, STEP_FAILED, detail=error, seconds=seconds)
        return StepReport(eraser.name, STEP_FAILED, EraseOutcome(), ScanOutcome(), seconds, error)
    seconds = time.monotonic() - began
    if erased.absent and not scan.remaining:
        status = STEP_ABSENT
    else:
        status = STEP_REMAINING if scan.remaining else STEP_VERIFIED
    detail = _detail(erased)
    if scan.remaining:
        detail = f"{detail}; still matching: {', '.join(scan.where[:5])}".strip("; ")
    store.set_step(
        request_id,
        eraser.name,
        status,
        removed=erased.total,
        remaining=scan.remaining,
        detail=detail,
        seconds=seconds,
    )
    return StepReport(eraser.name, status, erased, scan, seconds)


def _detail(outcome: EraseOutcome) -> str:
    parts = [f"{what}: {count}" for what, count in sorted(outcome.removed.items()) if count]
    parts += list(outcome.notes)
    if outcome.absent:
        parts.append("store absent")
    return "; ".join(parts)
