"""One column-mapping model for cdp.yml sources and `cdp identity resolve --mapping` files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagster_project.lib.config import ConfigError, SourceConfig, load_config
from identity import ColumnMapping, MappingError, RecordMapping, load_mapping

SOURCE: dict[str, Any] = {
    "name": "crm",
    "kind": "people",
    "format": "csv",
    "path": "crm/*.csv",
    "record_key": "customer_number",
    "mapping": {"first_name": "fname", "street_address": ["house_no", "street"]},
    "identifiers": {"loyalty_id": "customer_number"},
}
EVENTS: dict[str, Any] = {
    "name": "web",
    "kind": "events",
    "format": "jsonl",
    "path": "web/*.jsonl",
    "record_key": "event_id",
    "mapping": {"event_type": "type", "occurred_at": "ts"},
}
PEOPLE_FIELDS = (
    "birth_date, city, country, email, first_name, full_name, has_email_consent, "
    "has_push_consent, has_sms_consent, last_name, phone, postal_code, region, signed_up_at, "
    "street_address, updated_at"
)


def _config_error(tmp_path: Path, source: dict[str, Any]) -> str:
    path = tmp_path / "cdp.yml"
    path.write_text(yaml.safe_dump({"version": 1, "sources": [source, EVENTS]}), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value).removeprefix(f"{path}: invalid configuration\n")


def _mutated(**changes: Any) -> dict[str, Any]:
    source = copy.deepcopy(SOURCE)
    for key, value in changes.items():
        if isinstance(value, dict) and key in source:
            source[key].update(value)
        else:
            source[key] = value
    return source


def test_cdp_sources_and_resolve_mappings_are_one_model() -> None:
    source = SourceConfig.model_validate(SOURCE)
    mapping = RecordMapping.model_validate(
        {
            "record_id": "customer_number",
            "attributes": SOURCE["mapping"],
            "identifiers": SOURCE["identifiers"],
        }
    )
    assert isinstance(source, ColumnMapping) and isinstance(mapping, ColumnMapping)
    assert source.mapping == mapping.mapping and source.identifiers == mapping.identifiers
    assert source.columns_for("street_address") == ["house_no", "street"]
    assert source.mapped_columns() == {"customer_number", "fname", "house_no", "street"}
    assert mapping.required_columns() == {
        "record_id": ["customer_number"],
        "attributes.first_name": ["fname"],
        "attributes.street_address": ["house_no", "street"],
        "identifiers.loyalty_id": ["customer_number"],
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            _mutated(mapping={"shoe_size": "size"}),
            "  - sources.0: mapping.shoe_size: 'shoe_size' is not a field of kind 'people' "
            f"(known: {PEOPLE_FIELDS}); put named identifiers under 'identifiers'",
        ),
        (
            _mutated(identifiers={"email": "mail"}),
            "  - sources.0: identifiers.email: 'email' must be a snake_case name that is not a "
            "canonical field or lineage column",
        ),
        (
            _mutated(identifiers={"record_id": "x"}),
            "  - sources.0: identifiers.record_id: 'record_id' must be a snake_case name that is "
            "not a canonical field or lineage column",
        ),
        (
            _mutated(mapping={"first_name": 5}),
            "  - sources.0.mapping.first_name.str: Input should be a valid string\n"
            "  - sources.0.mapping.first_name.list[str]: Input should be a valid list",
        ),
        (
            _mutated(identifiers={"loyalty_id": ["a", "b"]}),
            "  - sources.0.identifiers.loyalty_id: Input should be a valid string",
        ),
        (
            _mutated(mapping=["a"]),
            "  - sources.0.mapping: Input should be a valid dictionary",
        ),
        (
            {**EVENTS, "name": "web2", "identifiers": {"cookie_id": "c"}, "kind": "products"},
            "  - sources.0: mapping.event_type: 'event_type' is not a field of kind 'products'",
        ),
        (
            {**EVENTS, "name": "web2", "mapping": {"event_type": "type"}},
            "  - sources.0: mapping: kind 'events' requires occurred_at; map a column to each",
        ),
    ],
)
def test_cdp_yml_mapping_errors_read_as_before(
    tmp_path: Path, source: dict[str, Any], message: str
) -> None:
    assert _config_error(tmp_path, source).startswith(message)


def test_an_empty_column_reference_is_refused_in_both_formats(tmp_path: Path) -> None:
    for ref in ([], "", [" "]):
        assert _config_error(tmp_path, _mutated(mapping={"first_name": ref})) == (
            "  - sources.0: mapping.first_name: must name at least one column"
        )
    path = tmp_path / "mapping.yml"
    path.write_text("record_id: id\nattributes:\n  first_name: []\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"attributes\.first_name: must name at least one"):
        load_mapping(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "record_id: id\nattributes:\n  shoe: s\n",
            "  - attributes.shoe: 'shoe' is not an identity attribute (known: email, phone, "
            "first_name, last_name, full_name, birth_date, street_address, postal_code, city, "
            "region, country); put named identifiers under 'identifiers'",
        ),
        (
            "record_id: id\nidentifiers:\n  email: e\n",
            "  - identifiers.email: 'email' must be a snake_case name that is not an attribute",
        ),
        (
            "record_id: id\nattributes:\n  first_name: 4\n",
            "  - attributes.first_name.str: Input should be a valid string",
        ),
        ("record_id: []\n", "  - record_id: must name at least one column"),
        (
            "record_id: id\nmapping:\n  first_name: f\n",
            "  - mapping: Extra inputs are not permitted",
        ),
    ],
)
def test_resolve_mapping_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mapping.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"{path}: invalid mapping\n{message}")
