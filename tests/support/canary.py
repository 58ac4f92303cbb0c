"""Canary PII for leak tests: plant it in landing files, find it in responses, crawl the API.

Three pieces, used by ``tests/api/test_pii_leak.py``:

- **Planting.** :func:`plant_canaries` adds a few people with distinctive personal data to a
  CDP_HOME's landing folder, written through the sources of its ``cdp.yml`` (column names from
  each mapping, file names that match each glob), so the real pipeline carries them everywhere
  it carries anybody: golden records, identity records and evidence, event free text.
- **Finding.** Each canary value is a :class:`Needle` that matches it in any shape (a phone with
  or without separators or country code, a birth date as ISO, US, European or compact digits),
  case-insensitively. :class:`CanaryPlan` knows which planted record carries which value, so
  once identity has run, every value has owners (the customers holding those records).
- **Crawling.** :class:`Crawler` introspects the schema and selects every field of every object
  type reachable from ``Query``, with argument values discovered from earlier responses, every
  connection paged to its end, queries split to fit the depth limit and any cost budget. It
  records what it covered, so a new field is crawled (or the coverage assertion fails) without
  anyone editing the test.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Final, Literal

import duckdb
import httpx
from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLSchema,
    build_client_schema,
    get_introspection_query,
    get_named_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
)

from dagster_project.lib.config import LoadedConfig, SourceConfig, load_config

# --------------------------------------------------------------------------------------------
# Canary values and how to find them
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Needle:
    """One canary value and a case-insensitive pattern that finds it in any shape."""

    value: str
    kind: str
    pattern: re.Pattern[str]

    def found_in(self, text: str) -> bool:
        """Whether ``text`` holds this value."""
        return self.pattern.search(text) is not None


def literal_needle(value: str, kind: str) -> Needle:
    """A value found as written, ignoring case."""
    return Needle(value, kind, re.compile(re.escape(value), re.IGNORECASE))


def phone_needle(national_digits: str) -> Needle:
    """A phone in any shape: E.164, bare digits, or digits split by spaces, dots, dashes, ()."""
    pattern = r"[\s().\-]*".join(national_digits)
    return Needle(national_digits, "phone", re.compile(pattern))


def date_needle(iso: str) -> Needle:
    """A date as ISO 8601, MM/DD/YYYY, DD/MM/YYYY or YYYYMMDD."""
    year, month, day = iso.split("-")
    shapes = (iso, f"{month}/{day}/{year}", f"{day}/{month}/{year}", f"{year}{month}{day}")
    return Needle(iso, "birth_date", re.compile("|".join(map(re.escape, shapes))))


@dataclass(frozen=True)
class CanaryPerson:
    """A person whose every personal value is unique to them (or deliberately shared)."""

    key: str
    first_name: str
    last_name: str
    email: str
    phone: str  # ten national digits (US)
    street_address: str
    street_name: str  # the distinctive word of the street, found even if normalized
    city: str
    region: str
    postal_code: str
    birth_date: str | None = None

    @property
    def full_name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}"

    def needles(self, *, with_birth_date: bool = True) -> tuple[Needle, ...]:
        """Every canary value of this person (the email's local part included)."""
        found = [
            literal_needle(self.email, "email"),
            literal_needle(self.email.split("@")[0], "email_local_part"),
            phone_needle(self.phone),
            literal_needle(self.first_name, "first_name"),
            literal_needle(self.last_name, "last_name"),
            literal_needle(self.full_name, "full_name"),
            literal_needle(self.street_address, "street_address"),
            literal_needle(self.street_name, "street_address"),
            literal_needle(self.city, "city"),
        ]
        if with_birth_date and self.birth_date is not None:
            found.append(date_needle(self.birth_date))
        return tuple(found)


def _email_needles(email: str) -> tuple[Needle, ...]:
    return (literal_needle(email, "email"), literal_needle(email.split("@")[0], "email_local_part"))


DOMAIN: Final[str] = "canarymail.example"
SHARED_PHONE: Final[str] = "7028147391"
FAMILY_EMAIL: Final[str] = f"zq7canary.family@{DOMAIN}"

#: A: CRM + shop account + a web cookie that logs in, searches and browses + email engagement.
ALPHA: Final = CanaryPerson(
    "alpha", "Zqxalpha", "Canarywick", f"zq7canary.alpha@{DOMAIN}", SHARED_PHONE,
    "4417 Canaryquill Lane", "Canaryquill", "Zqwickton", "NV", "89124", "1983-02-17",
)  # fmt: skip
#: B: CRM + email engagement; shares A's phone under another name and birth date, so identity
#: refuses the same_phone link (a household phone) and keeps it as cross-customer evidence.
BRAVO: Final = CanaryPerson(
    "bravo", "Zqxbravo", "Canarydale", f"zq7canary.bravo@{DOMAIN}", SHARED_PHONE,
    "88 Canaryfen Court", "Canaryfen", "Zqdaleburg", "NV", "89117", "1979-11-05",
)  # fmt: skip
#: C and D: one household (same last name and street) sharing a family mailbox under two first
#: names, so the mailbox is a weak value: the links through it are refused, and the mailbox's
#: own email-events record (``email:<family address>``) becomes a customer of its own (E) that
#: shows up in C's evidence.
CHARLIE: Final = CanaryPerson(
    "charlie", "Zqxcharlie", "Canaryholt", FAMILY_EMAIL, "5128673092",
    "9 Canarymoss Road", "Canarymoss", "Zqholtville", "TX", "78701", "1991-06-23",
)  # fmt: skip
DELTA: Final = CanaryPerson(
    "delta", "Zqxdelta", "Canaryholt", FAMILY_EMAIL, "4159382716",
    "9 Canarymoss Road", "Canarymoss", "Zqholtville", "TX", "78701",
)  # fmt: skip
PERSONS: Final[tuple[CanaryPerson, ...]] = (ALPHA, BRAVO, CHARLIE, DELTA)

ALPHA_COOKIE: Final[str] = "c4a7c0de-0000-4000-8000-00000000a1fa"
#: What A's cookie types into search boxes and carries in page URLs.
SEARCHED_KINDS: Final[frozenset[str]] = frozenset(
    {"email", "email_local_part", "first_name", "last_name", "full_name"}
)


@dataclass(frozen=True)
class PlantedRecord:
    """An identity record the planting creates, and the canary values it carries."""

    source: str
    record_id: str
    values: frozenset[str]
    label: str


@dataclass
class CanaryPlan:
    """What was planted: the needles, the records carrying them, the files written."""

    needles: tuple[Needle, ...]
    records: tuple[PlantedRecord, ...]
    files: tuple[Path, ...]
    record_owner: dict[tuple[str, str], str] = field(default_factory=dict)
    record_tokens: dict[str, str] = field(default_factory=dict)

    def find(self, text: str) -> list[Needle]:
        """The needles present in ``text``."""
        return [n for n in self.needles if n.found_in(text)]

    def resolve(self, identity_map: Path) -> None:
        """Read which customer holds each planted record from identity's ``identity_map``."""
        with duckdb.connect() as con:
            rows = con.execute(
                "select source, record_id, customer_id from read_parquet(?)", [str(identity_map)]
            ).fetchall()
        everything = {(s, r): c for s, r, c in rows}
        planted = [(r.source, r.record_id) for r in self.records]
        missing = [key for key in planted if key not in everything]
        assert not missing, f"planted records identity did not resolve: {missing}"
        self.record_owner = {key: everything[key] for key in planted}
        # every record whose id embeds a canary value (email:<address>) is a token of its own
        self.record_tokens = {
            record_id: customer
            for (source, record_id), customer in everything.items()
            if self.find(record_id)
        }

    def owners(self, value: str) -> set[str]:
        """Customers holding a planted record that carries ``value``."""
        return {
            self.record_owner[(r.source, r.record_id)] for r in self.records if value in r.values
        }

    @property
    def customers(self) -> set[str]:
        """Every customer holding a planted record."""
        return set(self.record_owner.values())

    def label(self, customer_id: str) -> str:
        """A customer id with the canary people whose records it holds, for messages."""
        names = sorted(
            {
                r.label
                for r in self.records
                if self.record_owner.get((r.source, r.record_id)) == customer_id
            }
        )
        return f"{customer_id} ({'+'.join(names)})" if names else customer_id

    def customer_of(self, source: str, record_id: str) -> str:
        """The customer holding one planted record."""
        return self.record_owner[(source, record_id)]


def _values(needles: Iterable[Needle]) -> frozenset[str]:
    return frozenset(n.value for n in needles)


def _stamp(day: date, hour: int, minute: int = 0) -> str:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _columns(source: SourceConfig, fields: Mapping[str, str | None]) -> dict[str, str]:
    """Canonical fields (and named identifiers) -> this source's column names."""
    row: dict[str, str] = {}
    for name, value in fields.items():
        if value is None:
            continue
        column = source.mapping.get(name) or source.identifiers.get(name)
        if column is None:
            key = source.record_key
            if name == "record_key" and isinstance(key, str):
                column = key
            else:
                raise KeyError(f"cdp.yml: source '{source.name}' maps no column to '{name}'")
        if isinstance(column, str):
            row[column] = value
        else:  # several columns joined with spaces: split the value back
            parts = value.split(" ", len(column) - 1)
            row.update(zip(column, parts + [""] * (len(column) - len(parts)), strict=True))
    return row


def _write(
    loaded: LoadedConfig, home: Path, source: SourceConfig, rows: list[dict[str, str]]
) -> Path:
    """Write ``rows`` as a new landing file of ``source`` (a name only its own glob matches)."""
    name = source.path.replace("*", "canary", 1)
    assert fnmatch(name, source.path), (name, source.path)
    others = [s.name for s in loaded.config.sources if s is not source and fnmatch(name, s.path)]
    assert not others, f"{name} would also be read by {others}"
    target = loaded.landing_dir(home) / name
    assert not target.exists(), target
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.format == "jsonl":
        target.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif source.format == "csv":
        existing = loaded.source_files(source, home)
        if existing:
            with existing[0].open(encoding=source.options.encoding, newline="") as handle:
                header = next(csv.reader(handle, delimiter=source.options.delimiter))
        else:
            header = list(dict.fromkeys(k for row in rows for k in row))
        with target.open("w", encoding=source.options.encoding, newline="") as handle:
            writer = csv.DictWriter(handle, header, delimiter=source.options.delimiter)
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise ValueError(f"cannot plant into {source.format} source '{source.name}'")
    return target


def plant_canaries(home: Path, world_end: date, campaign_id: str | None = None) -> CanaryPlan:
    """Add the canary people to ``home``'s landing files through the sources of its cdp.yml.

    Writes one more file for each of the sources ``crm``, ``shop_accounts``, ``web_events``,
    ``email_events``, ``orders`` and ``order_lines`` (people, a cookie's browsing with canary
    text in search queries and page URLs, email sends and clicks whose link URLs carry the
    address, one order). Activity falls in the three weeks before ``world_end``.
    """
    loaded = load_config(home / "cdp.yml")
    config = loaded.config
    source = config.source
    day = world_end - timedelta(days=20)
    campaign = campaign_id or f"cmp-{day:%Y%m%d}-canary"
    files: list[Path] = []
    records: list[PlantedRecord] = []

    def person_fields(p: CanaryPerson, phone: str, **extra: str | None) -> dict[str, str | None]:
        return {
            "first_name": p.first_name,
            "last_name": p.last_name,
            "email": p.email,
            "phone": phone,
            "street_address": p.street_address,
            "city": p.city,
            "region": p.region,
            "postal_code": p.postal_code,
            **extra,
        }

    def us(digits: str) -> str:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"

    crm = source("crm")
    crm_people = [(ALPHA, "C9900001"), (BRAVO, "C9900002"), (CHARLIE, "C9900003")]
    crm_rows = [
        _columns(
            crm,
            person_fields(
                p,
                us(p.phone),
                country="US",
                birth_date=p.birth_date,
                signed_up_at=(day - timedelta(days=30)).isoformat(),
                has_email_consent="true",
                has_sms_consent="false",
                has_push_consent="false",
                loyalty_id=number,
            ),
        )
        for p, number in crm_people
    ]
    files.append(_write(loaded, home, crm, crm_rows))
    records += [PlantedRecord("crm", n, _values(p.needles()), p.key) for p, n in crm_people]

    shop = source("shop_accounts")
    shop_people = [(ALPHA, "A990000001", "702.814.7391"), (DELTA, "A990000004", "+14159382716")]
    shop_rows = [
        _columns(
            shop,
            person_fields(
                p,
                phone,
                country="United States",
                signed_up_at=_stamp(day - timedelta(days=25), 10),
                has_email_consent="true",
                account_id=account,
            ),
        )
        for p, account, phone in shop_people
    ]
    files.append(_write(loaded, home, shop, shop_rows))
    records += [
        PlantedRecord("shop_accounts", a, _values(p.needles(with_birth_date=False)), p.key)
        for p, a, _ in shop_people
    ]

    web = source("web_events")
    alpha_email_url = ALPHA.email.replace("@", "%40")
    browsing: list[dict[str, str | None]] = [
        {"event_type": "page_view", "page_url": f"https://shop.example.com/newsletter/confirm"
         f"?email={ALPHA.email}"},
        {"event_type": "login", "account_id": "A990000001",
         "page_url": "https://shop.example.com/account/login"},
        {"event_type": "search", "search_query": ALPHA.email,
         "page_url": f"https://shop.example.com/search?q={alpha_email_url}"},
        {"event_type": "search", "search_query": ALPHA.full_name.lower(),
         "page_url": "https://shop.example.com/search?q=" + ALPHA.full_name.replace(" ", "+")},
        {"event_type": "page_view", "page_url": "https://shop.example.com/account/settings"
         f"?email={alpha_email_url}&name={ALPHA.first_name}"},
        {"event_type": "product_view", "product_id": "P00001",
         "page_url": "https://shop.example.com/p/P00001"},
        {"event_type": "add_to_cart", "product_id": "P00001",
         "page_url": "https://shop.example.com/cart"},
        {"event_type": "purchase", "account_id": "A990000001", "order_id": "O990000001",
         "page_url": "https://shop.example.com/checkout/confirmation"},
    ]  # fmt: skip
    web_rows = [
        _columns(
            web,
            {
                "record_key": f"wev-canary-{i:04d}",
                "cookie_id": ALPHA_COOKIE,
                "occurred_at": _stamp(day, 9, i),
                **event,
            },
        )
        for i, event in enumerate(browsing, start=1)
    ]
    files.append(_write(loaded, home, web, web_rows))
    records.append(
        PlantedRecord(
            "web_events",
            f"cookie:{ALPHA_COOKIE}",
            _values(n for n in ALPHA.needles() if n.kind in SEARCHED_KINDS),
            ALPHA.key,
        )
    )

    email = source("email_events")
    email_rows: list[dict[str, str]] = []
    mailboxes = ((ALPHA.email, ALPHA.key), (BRAVO.email, BRAVO.key), (FAMILY_EMAIL, "mailbox"))
    for n, (address, label) in enumerate(mailboxes):
        link = (
            "https://shop.example.com/c/apparel?utm_source=email&utm_medium=email"
            f"&utm_campaign={campaign}&email={address}"
        )
        for i, (kind, link_url) in enumerate((("send", None), ("open", None), ("click", link))):
            email_rows.append(
                _columns(
                    email,
                    {
                        "record_key": f"eev-canary-{n}{i}",
                        "event_type": kind,
                        "campaign_id": campaign,
                        "email": address,
                        "occurred_at": _stamp(day + timedelta(days=1), 8 + i, n),
                        "link_url": link_url,
                    },
                )
            )
        records.append(
            PlantedRecord(
                "email_events", f"email:{address}", _values(_email_needles(address)), label
            )
        )
    files.append(_write(loaded, home, email, email_rows))

    orders = source("orders")
    order_row = {
        "order_id": "O990000001",
        "account_id": "A990000001",
        "ordered_at": _stamp(day, 9, 8),
        "status": "completed",
        "currency": "USD",
        "total_amount": "23.98",
    }
    files.append(_write(loaded, home, orders, [_columns(orders, order_row)]))
    lines = source("order_lines")
    line = {"order_id": "O990000001", "line_number": "1", "product_id": "P00001",
            "quantity": "2", "unit_price": "11.99"}  # fmt: skip
    files.append(_write(loaded, home, lines, [_columns(lines, line)]))

    needles = {n.value: n for p in PERSONS for n in p.needles()}
    return CanaryPlan(needles=tuple(needles.values()), records=tuple(records), files=tuple(files))


# --------------------------------------------------------------------------------------------
# The schema and the queries that select all of it
# --------------------------------------------------------------------------------------------

INTROSPECTION_QUERY: Final[str] = get_introspection_query(descriptions=False)
PAGINATION_ARGS: Final[frozenset[str]] = frozenset({"first", "after"})
#: Refusals for size (besides an error code naming a budget): split the query and try again.
LIMIT_ERRORS: Final[re.Pattern[str]] = re.compile(
    r"budget|maximum operation depth|more than \d+ tokens|time limit|split it", re.IGNORECASE
)


def is_connection(schema: GraphQLSchema, fieldref: GraphQLField) -> bool:
    """A relay-style page: ``first``/``after`` arguments and a ``pageInfo`` with a cursor."""
    named = get_named_type(fieldref.type)
    if not set(fieldref.args) >= PAGINATION_ARGS or not isinstance(named, GraphQLObjectType):
        return False
    page_info = named.fields.get("pageInfo")
    if page_info is None:
        return False
    info_type = get_named_type(page_info.type)
    return isinstance(info_type, GraphQLObjectType) and {"hasNextPage", "endCursor"} <= set(
        info_type.fields
    )


def reachable_fields(schema: GraphQLSchema) -> set[tuple[str, str]]:
    """Every (type, field) of every object type reachable from Query."""
    assert schema.query_type is not None
    seen: set[str] = set()
    todo = [schema.query_type.name]
    fields: set[tuple[str, str]] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        named = schema.type_map[name]
        if not isinstance(named, GraphQLObjectType):
            # unions and interfaces: the crawler does not select them yet; coverage says so
            fields.add((name, "<abstract type: crawler support needed>"))
            continue
        for field_name, fieldref in named.fields.items():
            fields.add((name, field_name))
            target = get_named_type(fieldref.type)
            if not is_leaf_type(target):
                todo.append(target.name)
    return fields


@dataclass(frozen=True)
class Selection:
    """A field with its arguments and sub-selections (no aliases: one name per level)."""

    parent: str
    name: str
    args: tuple[tuple[str, Any], ...] = ()
    children: tuple[Selection, ...] = ()
    pageable: bool = False  # a connection on a list-free path: its pages can be followed
    sticky: bool = False  # kept in every piece when the parent is split (a page's pageInfo)

    def height(self) -> int:
        """Levels below this field (0 for a leaf)."""
        return 1 + max(c.height() for c in self.children) if self.children else 0

    def arg(self, name: str) -> Any:
        """An argument's value, or None."""
        return dict(self.args).get(name)

    def with_args(self, **values: Any) -> Selection:
        """The same field with some arguments set (None removes one)."""
        merged = dict(self.args)
        merged.update(values)
        return replace(self, args=tuple((k, v) for k, v in merged.items() if v is not None))


def render(schema: GraphQLSchema, root: Selection) -> tuple[str, dict[str, Any]]:
    """Query text and variables for one root selection."""
    variables: dict[str, Any] = {}
    declarations: list[str] = []

    def text(selection: Selection) -> str:
        owner = schema.type_map[selection.parent]
        assert isinstance(owner, GraphQLObjectType)
        fieldref = owner.fields[selection.name]
        out = selection.name
        if selection.args:
            passed = []
            for name, value in selection.args:
                var = f"v{len(variables)}"
                variables[var] = value
                declarations.append(f"${var}: {fieldref.args[name].type}")
                passed.append(f"{name}: ${var}")
            out += "(" + ", ".join(passed) + ")"
        if selection.children:
            out += " { " + " ".join(text(c) for c in selection.children) + " }"
        return out

    body = text(root)
    head = f"query Crawl({', '.join(declarations)})" if declarations else "query Crawl"
    return f"{head} {{ {body} }}", variables


def split_for_depth(selection: Selection, max_depth: int, level: int = 0) -> list[Selection]:
    """Pieces of a selection that each fit the depth limit (the root field is level 0)."""
    if level + selection.height() <= max_depth:
        return [selection]
    if not selection.children:
        return []
    sticky = tuple(c for c in selection.children if c.sticky)
    fits = tuple(
        c for c in selection.children if not c.sticky and level + 1 + c.height() <= max_depth
    )
    pieces = [replace(selection, children=fits + sticky)] if fits else []
    for child in selection.children:
        if child.sticky or child in fits:
            continue
        pieces += [
            replace(selection, children=(part, *sticky))
            for part in split_for_depth(child, max_depth, level + 1)
        ]
    return pieces


def halve(selection: Selection) -> list[Selection] | None:
    """Two smaller pieces of a selection (splitting the topmost level that branches)."""
    sticky = tuple(c for c in selection.children if c.sticky)
    free = [c for c in selection.children if not c.sticky]
    if len(free) >= 2:
        middle = len(free) // 2
        return [
            replace(selection, children=(*free[:middle], *sticky)),
            replace(selection, children=(*free[middle:], *sticky)),
        ]
    if len(free) == 1:
        parts = halve(free[0])
        if parts:
            return [replace(selection, children=(part, *sticky)) for part in parts]
    return None


def shrink_pages(selection: Selection) -> Selection | None:
    """The selection with every page size (``first``) halved; None when all are 1 already."""
    changed = False

    def walk(s: Selection) -> Selection:
        nonlocal changed
        first = s.arg("first")
        if isinstance(first, int) and first > 1:
            s = s.with_args(first=first // 2)
            changed = True
        return replace(s, children=tuple(walk(c) for c in s.children))

    out = walk(selection)
    return out if changed else None


def leaf_chains(selection: Selection) -> list[Selection]:
    """One piece per leaf field: the path down to it (plus the pageInfo of pages on the way)."""
    if not selection.children or selection.sticky:
        return [selection]
    sticky = tuple(c for c in selection.children if c.sticky)
    chains = [replace(selection, children=sticky)] if sticky else []
    for child in selection.children:
        if child.sticky:
            continue
        chains += [replace(selection, children=(c, *sticky)) for c in leaf_chains(child)]
    return chains


def path_to_pages(selection: Selection) -> Iterator[tuple[tuple[str, ...], Selection]]:
    """(path below the root, field) of each followable connection, the root included."""

    def walk(s: Selection, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Selection]]:
        if s.pageable:
            yield path, s
        for child in s.children:
            yield from walk(child, (*path, child.name))

    yield from walk(selection, ())


def next_page(root: Selection, path: tuple[str, ...], cursor: str) -> Selection:
    """Only the path from the root to one connection, asking for the page after ``cursor``."""
    if not path:
        return root.with_args(after=cursor)
    child = next(c for c in root.children if c.name == path[0])
    return replace(root, children=(next_page(child, path[1:], cursor),))


# --------------------------------------------------------------------------------------------
# The crawler
# --------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request the crawler sent and what came back."""

    root: Selection
    query: str
    variables: dict[str, Any]
    status: int
    text: str
    request_id: str | None
    body: Any
    refused_for_size: bool = False

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The GraphQL errors of the response."""
        return list(self.body.get("errors") or []) if isinstance(self.body, dict) else []

    def describe(self) -> str:
        """The query and variables."""
        return f"{self.query} {json.dumps(self.variables)}"

    def call(self) -> str:
        """The root field and its arguments (pages aside), e.g. ``customer(id: "cus_1")``."""
        args = ", ".join(
            f"{name}: {json.dumps(value)}"
            for name, value in self.root.args
            if name not in PAGINATION_ARGS
        )
        return f"{self.root.name}({args})" if args else self.root.name


Post = Callable[[str, dict[str, Any]], httpx.Response]


def introspect(post: Post) -> GraphQLSchema:
    """The API's schema, from the standard introspection query."""
    response = post(INTROSPECTION_QUERY, {})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return build_client_schema(body["data"])


class Crawler:
    """Selects every reachable field through the API, paging everything, as one key.

    Root fields with arguments are called once per value the crawl has discovered for them: an
    argument ``x`` of a field returning ``T`` takes the values seen in ``T.x`` or ``T.<...>X``
    (``customer(id:)`` <- ``Customer.customerId``, ``segment(name:)`` <- ``Segment.name``); an
    input object with required fields takes them from objects seen with fields of those names
    (``IdentifierLookup {type value}`` <- ``Identifier``), one per distinct value of its first
    required field; an input object with none required is passed empty. Optional arguments of
    nested fields are left out, pages are ``first`` ``page_size`` (``sample_size`` under a list,
    where pages are not followed) and every ``pageInfo.endCursor`` is followed to the end.

    A type that a root field fetches on its own (``Customer``, ``Segment``) is expanded fully
    only there; elsewhere (list nodes, cycles) its leaf fields are selected. Queries deeper than
    ``max_depth`` are split into several; a query refused for its size (cost budget, depth or
    token limit) is split in two, or its pages made smaller, and sent again.
    """

    def __init__(
        self,
        post: Post,
        schema: GraphQLSchema,
        *,
        max_depth: int,
        page_size: int = 50,
        sample_size: int = 5,
        granularity: Literal["tree", "leaf"] = "tree",
        allow: Callable[[str, dict[str, Any]], bool] | None = None,
        usable: Callable[[Any], bool] | None = None,
        max_rounds: int = 6,
    ) -> None:
        assert schema.query_type is not None
        self.post = post
        self.schema = schema
        self.query_type: GraphQLObjectType = schema.query_type
        self.max_depth = max_depth
        self.page_size = page_size
        self.sample_size = sample_size
        self.granularity = granularity
        self.allow = allow or (lambda field, args: True)
        self.usable = usable or (lambda value: "*" not in str(value))
        self.max_rounds = max_rounds
        self.exchanges: list[Exchange] = []
        self.unexpected: list[Exchange] = []
        self.covered: set[tuple[str, str]] = set()
        self.too_deep: list[Selection] = []
        self._plans: dict[tuple[str, tuple[str, ...]], list[Selection]] = {}
        self.values: dict[tuple[str, str], set[Any]] = defaultdict(set)
        self.objects: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.addressable = {
            get_named_type(f.type).name
            for f in self.query_type.fields.values()
            if f.args and not is_list_type(_nullable(f.type)) and not is_connection(schema, f)
        }

    # -- what to select ----------------------------------------------------------------------

    def _nested_args(self, fieldref: GraphQLField, under_list: bool) -> dict[str, Any] | None:
        """Arguments of a nested field; None when a required one cannot be filled."""
        args: dict[str, Any] = {}
        if is_connection(self.schema, fieldref):
            args["first"] = self.sample_size if under_list else self.page_size
        for name, arg in fieldref.args.items():
            if name not in PAGINATION_ARGS and is_non_null_type(arg.type):
                return None
        return args

    def _leaves(self, type_name: str) -> tuple[Selection, ...]:
        owner = self.schema.type_map[type_name]
        assert isinstance(owner, GraphQLObjectType)
        return tuple(
            Selection(type_name, name)
            for name, f in owner.fields.items()
            if is_leaf_type(get_named_type(f.type))
            and not any(is_non_null_type(a.type) for a in f.args.values())
        )

    def expand(
        self, type_name: str, on_path: frozenset[str], under_list: bool
    ) -> tuple[Selection, ...]:
        """Every selectable field of a type, nested objects expanded (cycles cut)."""
        owner = self.schema.type_map[type_name]
        assert isinstance(owner, GraphQLObjectType)
        out: list[Selection] = []
        for name, fieldref in owner.fields.items():
            args = self._nested_args(fieldref, under_list)
            if args is None:
                continue
            target = get_named_type(fieldref.type)
            if is_leaf_type(target):
                out.append(Selection(type_name, name, tuple(args.items())))
                continue
            if not isinstance(target, GraphQLObjectType):
                continue  # abstract types: not supported, reported by coverage
            listed = under_list or is_list_type(_nullable(fieldref.type))
            if target.name in on_path or target.name in self.addressable:
                children = self._leaves(target.name)
            else:
                children = self.expand(target.name, on_path | {target.name}, listed)
            if not children:
                continue
            connection = is_connection(self.schema, fieldref)
            out.append(
                Selection(
                    type_name,
                    name,
                    tuple(args.items()),
                    tuple(replace(c, sticky=connection and c.name == "pageInfo") for c in children),
                    pageable=connection and not under_list,
                )
            )
        return tuple(out)

    def root_selection(self, name: str, args: dict[str, Any]) -> Selection:
        """The full selection of one root field called with ``args``."""
        fieldref = self.query_type.fields[name]
        target = get_named_type(fieldref.type)
        connection = is_connection(self.schema, fieldref)
        if connection:
            args = {**args, "first": self.page_size}
        children: tuple[Selection, ...] = ()
        if isinstance(target, GraphQLObjectType):
            listed = is_list_type(_nullable(fieldref.type))
            if listed and target.name in self.addressable:
                children = self._leaves(target.name)
            else:
                children = self.expand(target.name, frozenset({target.name}), listed)
            children = tuple(
                replace(c, sticky=connection and c.name == "pageInfo") for c in children
            )
        return Selection(
            self.query_type.name, name, tuple(args.items()), children, pageable=connection
        )

    # -- argument values ---------------------------------------------------------------------

    def candidates(self, returns: str, arg_name: str, arg_type: Any) -> list[Any]:
        """Values discovered so far for one argument of a root field returning ``returns``."""
        named = get_named_type(arg_type)
        if isinstance(named, GraphQLInputObjectType):
            required = [n for n, f in named.fields.items() if is_non_null_type(f.type)]
            if not required:
                return [{}]
            chosen: dict[Any, dict[str, Any]] = {}
            for objects in self.objects.values():
                for obj in objects:
                    value = {n: obj[n] for n in named.fields if obj.get(n) is not None}
                    if not set(required) <= set(value):
                        continue
                    if not all(self.usable(v) for v in value.values()):
                        continue
                    chosen.setdefault(value[required[0]], value)
            return list(chosen.values())
        target = self.schema.type_map.get(returns)
        if not is_leaf_type(named) or not isinstance(target, GraphQLObjectType):
            return []
        suffix = arg_name[:1].upper() + arg_name[1:]
        sources = [f for f in target.fields if f == arg_name or f.endswith(suffix)]
        found = {v for f in sources for v in self.values.get((returns, f), ()) if self.usable(v)}
        return sorted(found, key=str)

    def root_calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (root field, arguments) the discovered values allow."""
        calls = []
        for name, fieldref in self.query_type.fields.items():
            returns = get_named_type(fieldref.type).name
            plain = {a: arg for a, arg in fieldref.args.items() if a not in PAGINATION_ARGS}
            required = [a for a, arg in plain.items() if is_non_null_type(arg.type)]
            if not plain:
                variants: list[dict[str, Any]] = [{}]
            elif required:
                options = [self.candidates(returns, a, plain[a].type) for a in required]
                variants = [
                    dict(zip(required, combo, strict=True)) for combo in itertools.product(*options)
                ]
            else:  # all optional (e.g. one of id / lookup): one argument at a time
                variants = [
                    {a: value}
                    for a, arg in plain.items()
                    for value in self.candidates(returns, a, arg.type)
                ]
            calls += [(name, v) for v in variants if self.allow(name, v)]
        return calls

    # -- running -----------------------------------------------------------------------------

    def crawl(self) -> Crawler:
        """Crawl until no root call is left that has not been made."""
        made: set[str] = set()
        for _ in range(self.max_rounds):
            calls = [
                (name, args)
                for name, args in self.root_calls()
                if json.dumps([name, args], sort_keys=True, default=str) not in made
            ]
            if not calls:
                return self
            for name, args in calls:
                made.add(json.dumps([name, args], sort_keys=True, default=str))
                self.run_root(self.root_selection(name, args))
        return self

    def run_root(self, root: Selection) -> None:
        """Send one root selection (in pieces as needed) and follow its pages.

        The pieces a root field's first call ended up in (split for depth, or after refusals
        for size) are reused for its later calls, so each refusal is met once per root field.
        """
        plan_key = (root.name, tuple(sorted(k for k, _ in root.args if k not in PAGINATION_ARGS)))
        learned = self._plans.get(plan_key)
        if learned is not None:
            own = {k: v for k, v in root.args if k not in PAGINATION_ARGS}
            pieces = [piece.with_args(**own) for piece in learned]
        else:
            pieces = []
            for piece in leaf_chains(root) if self.granularity == "leaf" else [root]:
                fitting = split_for_depth(piece, self.max_depth)
                if not fitting:
                    self.too_deep.append(piece)
                pieces += fitting
        sent: list[Selection] = []
        queue: deque[tuple[Selection, bool]] = deque((piece, True) for piece in pieces)
        while queue:
            selection, is_piece = queue.popleft()
            smaller, pages = self.send(selection)
            queue.extend((s, is_piece) for s in smaller)
            queue.extend((s, False) for s in pages)
            if is_piece and not smaller:
                sent.append(selection)
        self._plans.setdefault(plan_key, sent)

    def send(self, root: Selection) -> tuple[list[Selection], list[Selection]]:
        """Send one query; returns smaller pieces to send instead if it was refused for size,
        and the queries for the next pages of its connections."""
        query, variables = render(self.schema, root)
        response = self.post(query, variables)
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        exchange = Exchange(
            root, query, variables, response.status_code, response.text,
            response.headers.get("x-request-id"), body,
        )  # fmt: skip
        self.exchanges.append(exchange)
        if response.status_code != 200 or not isinstance(body, dict):
            self.unexpected.append(exchange)
            return [], []
        if exchange.errors:
            if all(_is_size_refusal(e) for e in exchange.errors):
                exchange.refused_for_size = True
                smaller = halve(root)
                if smaller is None:
                    shrunk = shrink_pages(root)
                    smaller = [shrunk] if shrunk is not None else None
                if smaller is not None:
                    return smaller, []
            self.unexpected.append(exchange)
            return [], []
        data = body.get("data") or {}
        self._walk(root, data.get(root.name))
        pages = []
        for path, _ in path_to_pages(root):
            value: Any = data.get(root.name)
            for step in path:
                value = value.get(step) if isinstance(value, dict) else None
            info = value.get("pageInfo") if isinstance(value, dict) else None
            if info and info.get("hasNextPage") and info.get("endCursor"):
                pages.append(next_page(root, path, info["endCursor"]))
        return [], pages

    def _walk(self, selection: Selection, value: Any) -> None:
        """Record coverage and discovered values from one response."""
        self.covered.add((selection.parent, selection.name))
        if value is None:
            return
        if not selection.children:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str | int) and not isinstance(item, bool):
                    self.values[(selection.parent, selection.name)].add(item)
            return
        owner = self.schema.type_map[selection.parent]
        assert isinstance(owner, GraphQLObjectType)
        type_name = get_named_type(owner.fields[selection.name].type).name
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                continue
            self.objects[type_name].append(
                {c.name: item.get(c.name) for c in selection.children if not c.children}
            )
            for child in selection.children:
                self._walk(child, item.get(child.name))

    def uncovered(self, exempt: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """Reachable (type, field) pairs never selected in a successful response."""
        return sorted(reachable_fields(self.schema) - self.covered - set(exempt))


def _is_size_refusal(error: Mapping[str, Any]) -> bool:
    """A refusal for the query's size (cost budget, depth, tokens): smaller queries will do."""
    code = str((error.get("extensions") or {}).get("code", ""))
    return (
        "BUDGET" in code.upper() or LIMIT_ERRORS.search(str(error.get("message", ""))) is not None
    )


def _nullable(type_: Any) -> Any:
    return type_.of_type if is_non_null_type(type_) else type_


def string_paths(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path without list indexes, text) of every string in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from string_paths(item, path)
    elif isinstance(value, str):
        yield path, value


def where_found(needles: Sequence[Needle], body: Any) -> dict[str, set[str]]:
    """Field path -> canary values found in the strings at that path of a response body."""
    found: dict[str, set[str]] = defaultdict(set)
    for path, text in string_paths(body):
        for needle in needles:
            if needle.found_in(text):
                found[path].add(needle.value)
    return found
