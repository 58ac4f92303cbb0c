"""Templates render per customer with fallbacks, and customer data never becomes markup or code."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from decisions.templates import render

SUBJECT = "Hi {{ first_name }}, new in {{ last_viewed_category }}"
FALLBACKS = {"first_name": "there", "last_viewed_category": "today's sales"}
BLOCK = "<p>Hi {{ first_name }}, {{ item_count }} picks from {{ theme }}</p>"


def test_values_fill_the_template() -> None:
    out = render(
        SUBJECT, {"first_name": "Ada", "last_viewed_category": "Books"}, FALLBACKS, html=False
    )
    assert out == "Hi Ada, new in Books"


def test_missing_none_and_blank_values_use_the_fallback() -> None:
    for value in (None, "", "   "):
        out = render(SUBJECT, {"first_name": value}, FALLBACKS, html=False)
        assert out == "Hi there, new in today's sales"


def test_without_a_fallback_a_missing_value_renders_nothing() -> None:
    assert render("Hi {{ first_name }}!", {}, {}, html=False) == "Hi !"


def test_masked_rendering_uses_the_fallback_for_personal_data() -> None:
    values = {"first_name": "Ada", "last_name": "Lovelace", "last_viewed_category": "Books"}
    out = render(SUBJECT, values, FALLBACKS, html=False, masked=True)
    assert out == "Hi there, new in Books"


def test_malicious_values_are_escaped_in_blocks() -> None:
    values = {"first_name": "<script>alert(1)</script>", "theme": "{{ 7*7 }}{% if 1 %}x{% endif %}"}
    out = render(BLOCK, values, {}, html=True)
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    assert "49" not in out
    assert "{{" not in out and "{%" not in out
    assert out.startswith("<p>Hi ")  # the template's own markup stays


def test_malicious_values_are_neutralised_in_subjects() -> None:
    values = {"first_name": "<b>{{ 7*7 }}</b>\r\nBcc: evil@example.com"}
    out = render(SUBJECT, values, FALLBACKS, html=False)
    assert "<" not in out and ">" not in out
    assert "{{" not in out and "49" not in out
    assert "\n" not in out and "\r" not in out


def test_a_template_author_cannot_emit_template_syntax_either() -> None:
    assert "{{" not in render("{{ '{{' }} x", {}, {}, html=False)


def test_the_sandbox_blocks_attribute_escapes() -> None:
    # The sandbox refuses dunder access rather than leaking Python internals.
    out = render("{{ first_name.__class__ }}", {"first_name": "Ada"}, {}, html=False)
    assert "class" not in out


@settings(max_examples=200, deadline=None)
@given(
    first_name=st.one_of(st.none(), st.text(max_size=40)),
    category=st.one_of(st.none(), st.text(max_size=40)),
    html=st.booleans(),
    masked=st.booleans(),
)
def test_output_never_contains_template_syntax(
    first_name: str | None, category: str | None, html: bool, masked: bool
) -> None:
    values = {"first_name": first_name, "last_viewed_category": category, "theme": category}
    text = BLOCK if html else SUBJECT
    out = render(text, values, FALLBACKS, html=html, masked=masked)
    assert "{{" not in out and "{%" not in out
    if html:
        assert out.count("<") == 2  # only the template's <p> and </p>
