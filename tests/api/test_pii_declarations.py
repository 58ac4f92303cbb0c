"""Personal data is declared on the field, once; the declaration is what masks and audits."""

from __future__ import annotations

import re

import pytest
import strawberry
from graphql import GraphQLObjectType

from api.graphql.pii import Pii, SchemaDeclarationError, personal, protect_personal_fields
from api.graphql.schema import build_schema
from api.settings import ApiSettings

#: Field names that suggest personal data; each such field must be declared, or listed below.
SUSPECT = re.compile(
    r"(email|phone|name|address|birth|postal|city|detail|record_?id|record_?uid|event_?id"
    r"|^value$|^details$)",
    re.IGNORECASE,
)
#: Suspect-looking fields that hold no personal data, and why.
NOT_PERSONAL = {
    "Segment.name": "a segment's name (a dbt model)",
    "CustomerSegment.name": "a segment's name",
    "SnapshotTable.name": "a table of the snapshot",
    "AttributeProvenance.attribute": "a canonical attribute name",
    "Identifier.type": "an identifier type (email, phone, ...)",
    "Evidence.identifierType": "an identifier type",
    "CustomerTraits.emailSends30d": "a count",
    "CustomerTraits.emailSends90d": "a count",
    "Product.name": "a product's catalogue name",
    "ErasureRequest.namedBy": "the identifier type a request named (email, phone, ...)",
    "ErasureStoreStatus.detail": "counts by table and file names (erasers record no value)",
}


def declared() -> dict[str, Pii]:
    return protect_personal_fields(build_schema(ApiSettings()))


def test_every_suspect_field_is_declared_personal_or_explained() -> None:
    schema = build_schema(ApiSettings())
    personal_fields = set(declared())
    suspects = {
        f"{type_name}.{field_name}"
        for type_name, graphql_type in schema._schema.type_map.items()
        if not type_name.startswith("__") and isinstance(graphql_type, GraphQLObjectType)
        for field_name in graphql_type.fields
        if SUSPECT.search(field_name)
    }
    undeclared = suspects - personal_fields - set(NOT_PERSONAL)
    assert not undeclared, f"declare these personal (api.graphql.pii) or explain: {undeclared}"


def test_the_declarations() -> None:
    assert declared() == {
        "Customer.email": Pii.VALUE,
        "Customer.phone": Pii.VALUE,
        "Customer.firstName": Pii.VALUE,
        "Customer.lastName": Pii.VALUE,
        "Customer.fullName": Pii.VALUE,
        "Customer.birthDate": Pii.VALUE,
        "Customer.streetAddress": Pii.VALUE,
        "Customer.postalCode": Pii.VALUE,
        "Customer.city": Pii.VALUE,
        "Identifier.value": Pii.IDENTIFIER,
        "IdentityRecord.recordUid": Pii.IDENTIFIER,
        "IdentityRecord.recordId": Pii.IDENTIFIER,
        "LinkedRecord.recordUid": Pii.IDENTIFIER,
        "LinkedRecord.recordId": Pii.IDENTIFIER,
        "Evidence.details": Pii.DETAILS,
        "Event.eventId": Pii.IDENTIFIER,
        "Event.detail": Pii.TEXT,
        "Decision.subject": Pii.RENDERED,
        "Decision.blocks": Pii.RENDERED,
    }


@strawberry.type
class Orphan:
    email: str = strawberry.field(metadata=personal(Pii.VALUE))


@strawberry.type
class OrphanQuery:
    @strawberry.field
    def orphan(self) -> Orphan:
        return Orphan(email="x@example.com")


def test_a_personal_field_on_a_type_that_cannot_name_its_owner_fails_the_build() -> None:
    with pytest.raises(SchemaDeclarationError, match=r"Orphan.email .* no pii_owner"):
        protect_personal_fields(strawberry.Schema(query=OrphanQuery))


@strawberry.type
class Message:
    subject: str | None = strawberry.field(metadata=personal(Pii.RENDERED))

    def pii_owner(self) -> str:
        return "c1"


@strawberry.type
class MessageQuery:
    @strawberry.field
    def message(self) -> Message:
        return Message(subject="Hi Ada")


def test_a_rendered_field_without_its_masked_rendering_fails_the_build() -> None:
    with pytest.raises(SchemaDeclarationError, match=r"Message.subject .* no 'subject_masked'"):
        protect_personal_fields(strawberry.Schema(query=MessageQuery))
