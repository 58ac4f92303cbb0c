"""Why two identity records are, or are not, one customer: for a data steward (admin scope).

The answer reuses the types of ``customer { identity }`` (``LinkedRecord``, ``Evidence``), so a
record and a piece of evidence look the same wherever they appear and follow the same PII
declarations: record ids and uids are identifiers (tokens without ``pii:read``), evidence
details are masked details, and each value is audited against the customer whose record it is
(here usually two customers, both named in the audit log). The reasoning is
``api.explanation``'s, over the snapshot's identity tables.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import strawberry

from api.explanation import Link, PairAnswer, RecordInfo, explain_records
from api.graphql.budget import list_size
from api.graphql.context import Context
from api.graphql.errors import BadInputError, NotFoundError
from api.graphql.types.identity import Evidence, LinkedRecord
from api.repositories.identity import records_by_uid

#: Longest source name or record id accepted in a RecordRef.
MAX_REF_LENGTH: Final[int] = 512


@strawberry.input(description="One identity record: its source and its key in that source.")
class RecordRef:
    source: str = strawberry.field(description="The source (crm, shop_accounts, web_events, ...).")
    record_id: str = strawberry.field(
        description="The record's key in its source, as `recordId` shows it (`cookie:ck_1` for "
        "a cookie, `email:<address>` for an email_events record)."
    )


@strawberry.type(description="Two records and the evidence between them, strongest first.")
class IdentityLink:
    record: LinkedRecord
    other_record: LinkedRecord
    evidence: list[Evidence] = strawberry.field(
        description="Every piece of evidence on this link (a rule, a model score), strongest "
        "first; each one's `otherRecord` is this link's `otherRecord`.",
        metadata=list_size(10),
    )


@strawberry.type(description="Why two identity records are, or are not, one customer.")
class IdentityExplanation:
    is_same_customer: bool
    record_a: LinkedRecord = strawberry.field(
        description="The first record (`isSameCustomer`: always true, the reference)."
    )
    record_b: LinkedRecord = strawberry.field(
        description="The second record (`isSameCustomer`: whether it is recordA's customer)."
    )
    path: list[IdentityLink] = strawberry.field(
        description="One customer: the strongest chain of accepted links from recordA to "
        "recordB (rules before model scores, likelier scores first). Empty otherwise.",
        metadata=list_size(20),
    )
    refused_links: list[IdentityLink] = strawberry.field(
        description="Two customers: the links between their records that a guard refused or a "
        "split removed, the direct link between the two records first. Empty otherwise.",
        metadata=list_size(20),
    )
    reasons: list[str] = strawberry.field(
        description="Why they are not one customer, in words (no personal data)."
    )
    summary: str = strawberry.field(
        description="One sentence: the customers, and the sources and rules along the path or "
        "the refusals (no record ids)."
    )


def _details(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"text": text}


def _linked(info: RecordInfo, reference: str) -> LinkedRecord:
    return LinkedRecord(
        record_uid=info.record_uid,
        source=info.source,
        record_id=info.record_id,
        customer_id=info.customer_id,
        is_same_customer=info.customer_id == reference,
    )


def _link(link: Link, answer: PairAnswer, reference: str) -> IdentityLink:
    record = _linked(answer.records[link.record_uid], reference)
    other = _linked(answer.records[link.other_record_uid], reference)
    evidence = [
        Evidence(
            owner_id=str(row["customer_id"]),
            other_record=other,
            evidence_type=row["evidence_type"],
            rule=row["rule"],
            identifier_type=row.get("identifier_type"),
            match_probability=row.get("match_probability"),
            match_weight=row.get("match_weight"),
            details=_details(row.get("details")),
            is_accepted=bool(row.get("is_accepted")),
            rejected_reason=row.get("rejected_reason"),
        )
        for row in link.evidence
    ]
    return IdentityLink(record=record, other_record=other, evidence=evidence)


def _reference(ref: RecordRef, argument: str) -> str:
    source, record_id = ref.source.strip(), ref.record_id.strip()
    for name, value in (("source", source), ("recordId", record_id)):
        if not value or len(value) > MAX_REF_LENGTH:
            raise BadInputError(f"`{argument}.{name}` must be 1 to {MAX_REF_LENGTH} characters")
    return f"{source}:{record_id}"


async def explain(
    context: Context, record_a: RecordRef, record_b: RecordRef
) -> IdentityExplanation:
    """The explanation of two records on the request's snapshot (NotFoundError if unknown)."""
    uids = {"recordA": _reference(record_a, "recordA"), "recordB": _reference(record_b, "recordB")}
    found = records_by_uid(context.db, list(uids.values()))
    refs = {"recordA": record_a, "recordB": record_b}
    for argument, uid in uids.items():
        row = found.get(uid)
        ref = refs[argument]
        if row is None or (row["source"], row["record_id"]) != (
            ref.source.strip(),
            ref.record_id.strip(),
        ):
            # the source is named, the record id (possibly personal) is not echoed
            raise NotFoundError(
                f"`{argument}`: no identity record of source '{ref.source.strip()[:64]}' with "
                "this record id in the snapshot; `customer { identity { records { source "
                "recordId } } }` lists a customer's records"
            )
    row_a, row_b = found[uids["recordA"]], found[uids["recordB"]]
    customers = list(dict.fromkeys([str(row_a["customer_id"]), str(row_b["customer_id"])]))
    evidence = dict(
        zip(customers, await context.loaders.evidence.load_many(customers), strict=True)
    )
    unique_types = context.snapshot.manifest.identity_settings.get("unique_identifier_types", ())
    answer = explain_records(row_a, row_b, evidence, unique_identifier_types=unique_types or ())
    reference = str(row_a["customer_id"])
    return IdentityExplanation(
        is_same_customer=answer.is_same_customer,
        record_a=_linked(answer.record_a, reference),
        record_b=_linked(answer.record_b, reference),
        path=[_link(link, answer, reference) for link in answer.path],
        refused_links=[_link(link, answer, reference) for link in answer.refused],
        reasons=answer.reasons,
        summary=answer.summary(),
    )
