"""Subject lines and content blocks rendered per customer, safely.

Templates are policy (``decisions.templates`` in cdp.yml), their *values* are customer data, and
customer data is hostile: a first name of ``<script>`` or ``{{ 7*7 }}`` must reach the inbox as
inert text. So templates run in jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment`, every value
is neutralised before it is rendered (HTML-escaped with braces as entities in blocks; in plain-text
subjects markup and brace characters replaced by look-alikes and line breaks removed, since a
subject is a mail header), and a missing, None or empty value renders its fallback (or nothing),
never the template syntax. Templates are compiled once per text and cached.

A decision renders twice: with the personal variables (:data:`PII_VARIABLES`) and masked (those
at their fallbacks), so a channel whose key may not see personal data still gets a subject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

#: Variables that identify a person: left at their fallbacks in the masked rendering.
PII_VARIABLES: frozenset[str] = frozenset({"first_name", "last_name"})

#: Every variable a template may use (a policy naming another fails at start).
TEMPLATE_VARIABLES: frozenset[str] = PII_VARIABLES | frozenset(
    {
        "favourite_category",
        "favourite_brand",
        "last_viewed_category",
        "theme",
        "item_count",
        "top_item_name",
        "top_item_brand",
        "top_item_category",
        "discount",
        "sale_title",
        # real-time triggers (``kind: trigger`` placements): the product that fired it
        "trigger",
        "product_name",
        "product_brand",
        "product_category",
        "price",
        "previous_price",
        "price_drop_percent",
    }
)

#: Longest subject kept (mail clients show ~60 characters; the rest is noise or an attack).
MAX_SUBJECT_CHARS = 200

_SUBJECT_LOOKALIKES = str.maketrans({"<": "‹", ">": "›", "{": "(", "}": ")"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SPACES = re.compile(r"\s{2,}")


class TemplateError(ValueError):
    """A template that does not compile or names an unknown variable."""


def _environment(html: bool) -> SandboxedEnvironment:
    # Values are neutralised before rendering (``_value``); autoescape additionally escapes
    # anything a block computes from them.
    return SandboxedEnvironment(autoescape=html, keep_trailing_newline=False)


_HTML_ENV = _environment(html=True)
_TEXT_ENV = _environment(html=False)


def template_variables(text: str) -> frozenset[str]:
    """The variables a template text uses; TemplateError on a syntax error."""
    try:
        return frozenset(meta.find_undeclared_variables(_TEXT_ENV.parse(text)))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message} (line {exc.lineno})") from exc


@lru_cache(maxsize=512)
def _compiled(text: str, html: bool) -> Any:
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        return env.from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message} (line {exc.lineno})") from exc


@lru_cache(maxsize=512)
def _plain_parts(text: str) -> tuple[tuple[bool, str], ...] | None:
    """A template of only text and ``{{ variable }}``: its parts, rendered without jinja's
    per-call context (ten times faster in the batch); None for anything else (jinja renders)."""
    parts: list[tuple[bool, str]] = []
    for node in _TEXT_ENV.parse(text).body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((False, child.data))
            elif isinstance(child, nodes.Name):
                parts.append((True, child.name))
            else:
                return None
    return tuple(parts)


@lru_cache(maxsize=512)
def _used(text: str) -> tuple[str, ...]:
    return tuple(sorted(template_variables(text) & TEMPLATE_VARIABLES))


@lru_cache(maxsize=512)
def uses_pii(text: str) -> bool:
    """Whether a template's masked rendering can differ from its personal one."""
    return bool(template_variables(text) & PII_VARIABLES)


def _neutral_text(value: str) -> str:
    text = _CONTROL.sub(" ", value).translate(_SUBJECT_LOOKALIKES)
    return _SPACES.sub(" ", text).strip()


def _value(value: Any, html: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        value = str(value)
    if isinstance(value, (int, float)):
        return value
    if html:
        escaped = str(escape(value)).replace("{", "&#123;").replace("}", "&#125;")
        return Markup(escaped.replace("%", "&#37;"))
    return _neutral_text(value)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def render(
    text: str,
    variables: Mapping[str, Any],
    fallbacks: Mapping[str, str] | None = None,
    *,
    html: bool,
    masked: bool = False,
) -> str:
    """Render one template for one customer.

    Args:
        text: the template (jinja2 syntax, from the policy).
        variables: the customer's values; missing, None or blank ones use their fallback.
        fallbacks: variable -> text used when the value is missing (or masked).
        html: a content block (HTML, autoescaped) rather than a plain-text subject.
        masked: render personal variables at their fallbacks.
    """
    fallbacks = fallbacks or {}
    context: dict[str, Any] = {}
    for name in _used(text):
        value = variables.get(name)
        if _is_missing(value) or (masked and name in PII_VARIABLES):
            value = fallbacks.get(name, "")
        context[name] = _value(value, html)
    parts = _plain_parts(text)
    if parts is not None:
        out = "".join(str(context.get(value, "")) if is_name else value for is_name, value in parts)
    else:
        out = _compiled(text, html).render(context)
    # A template author can still write a literal "{{" (e.g. {{ '{{' }}); never let it out.
    out = out.replace("{{", "{ {").replace("{%", "{ %").replace("{#", "{ #")
    if not html:
        out = _neutral_spaces(out)[:MAX_SUBJECT_CHARS]
    return out


def _neutral_spaces(text: str) -> str:
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
