"""Resolve one new record against the current identity state in milliseconds.

The event intake calls :meth:`RealtimeResolver.resolve_one` with whatever it knows about a
visitor (an email, a cookie, an account, a name...). The answer follows the batch run's logic:

1. deterministic lookup of the normalized identifiers (unique identifier types first, then other
   named identifiers, then email, then phone), skipping values the batch guards made weak
   (household phones, shared values) and links whose names contradict the customer's;
2. otherwise the model scores the candidates that share a blocking key with the record
   (``CandidateScorer``: in memory, no linker per call) and the best one at or above the
   threshold wins;
3. otherwise a new customer id.

The record is then indexed so the next call sees it. The next batch run re-decides everything
with the full graph; ids stay stable because the batch inherits ids by record overlap.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from identity.ids import alias_lookup, new_customer_id, resolve_alias
from identity.model import CandidateScorer, TrainedModel
from identity.normalize import Normalizer
from identity.rules import NameKey, names_compatible, names_conflict
from identity.settings import IdentitySettings
from identity.vocabulary import (
    ALIASES_FILE,
    IDENTIFIERS_FILE,
    IDENTITY_ATTRIBUTES,
    IDENTITY_MAP_FILE,
    MODEL_FILE,
    RECORDS_FILE,
    WEAK_VALUES_FILE,
    is_valid_identifier_name,
)

logger = logging.getLogger(__name__)

_KEY_SEPARATOR = "\x1f"
_RESERVED_KEYS = frozenset({"record_uid", "source", "record_id", "observed_at", "identifiers"})


class RealtimeResult(NamedTuple):
    """The customer a record belongs to, whether it is new, and why."""

    customer_id: str
    is_new: bool
    evidence: list[dict[str, Any]]


@dataclass
class _State:
    identifier_owner: dict[str, str]
    weak: set[str]
    owner_of_record: dict[str, str]
    members: dict[str, np.ndarray]
    names: list[np.ndarray]
    added_names: dict[str, list[NameKey]]
    aliases: dict[str, str]
    issued: set[str]


def _key(identifier_type: str, value: str) -> str:
    return f"{identifier_type}{_KEY_SEPARATOR}{value}"


class RealtimeResolver:
    """In-memory indexes over the last batch run's outputs, for one-record resolution."""

    def __init__(
        self,
        *,
        identity_map: pd.DataFrame,
        identifiers: pd.DataFrame,
        records: pd.DataFrame,
        settings: IdentitySettings | None = None,
        model: TrainedModel | None = None,
        aliases: pd.DataFrame | None = None,
        weak_values: pd.DataFrame | None = None,
    ) -> None:
        self.settings = settings or IdentitySettings()
        self.model = model
        self._normalizer = Normalizer(self.settings)
        self._normalizer.warm_up()
        self._lock = threading.RLock()
        self._priority = self._type_priority()
        self._state = self._build_state(identity_map, identifiers, records, aliases, weak_values)
        self._scorer: CandidateScorer | None = model.scorer(records) if model is not None else None
        self._threshold = model.settings.match_threshold if model is not None else 1.0
        # Millions of long-lived index objects would make every full garbage collection walk
        # them (100+ ms pauses at 1M records); frozen objects are skipped by the collector.
        gc.collect()
        gc.freeze()

    @classmethod
    def load(
        cls,
        folder: Path,
        model: TrainedModel | None = None,
        settings: IdentitySettings | None = None,
        *,
        use_saved_model: bool = True,
    ) -> RealtimeResolver:
        """Build from a folder written by ``write_resolution`` (lake/identity).

        Without ``model``, the model saved in the folder is used when ``use_saved_model``.

        Raises:
            FileNotFoundError: the folder holds no identity run.
        """
        folder = Path(folder)
        if not (folder / IDENTITY_MAP_FILE).exists():
            raise FileNotFoundError(
                f"{folder}: no {IDENTITY_MAP_FILE}; run identity resolution first"
            )
        if model is None and use_saved_model and (folder / MODEL_FILE).exists():
            model = TrainedModel.load(folder / MODEL_FILE)

        def optional(name: str) -> pd.DataFrame | None:
            path = folder / name
            return pd.read_parquet(path) if path.exists() else None

        return cls(
            identity_map=pd.read_parquet(
                folder / IDENTITY_MAP_FILE, columns=["record_uid", "customer_id"]
            ),
            identifiers=pd.read_parquet(folder / IDENTIFIERS_FILE),
            records=pd.read_parquet(folder / RECORDS_FILE),
            settings=settings,
            model=model,
            aliases=optional(ALIASES_FILE),
            weak_values=optional(WEAK_VALUES_FILE),
        )

    def _type_priority(self) -> dict[str, int]:
        unique = {t: 0 for t in self.settings.unique_identifier_types}
        return {**unique, "email": 2, "phone": 3}

    def _priority_of(self, identifier_type: str) -> int:
        return self._priority.get(identifier_type, 1)

    def _build_state(
        self,
        identity_map: pd.DataFrame,
        identifiers: pd.DataFrame,
        records: pd.DataFrame,
        aliases: pd.DataFrame | None,
        weak_values: pd.DataFrame | None,
    ) -> _State:
        usable = identifiers
        if "is_shared" in identifiers:
            usable = identifiers[~identifiers["is_shared"].astype(bool)]
        keys = (
            usable["identifier_type"].astype(str)
            + _KEY_SEPARATOR
            + usable["identifier_value"].astype(str)
        )
        identifier_owner = dict(zip(keys.tolist(), usable["customer_id"].astype(str), strict=True))
        weak: set[str] = set()
        if "is_shared" in identifiers:
            shared = identifiers[identifiers["is_shared"].astype(bool)]
            weak |= set(
                (
                    shared["identifier_type"].astype(str)
                    + _KEY_SEPARATOR
                    + shared["identifier_value"].astype(str)
                ).tolist()
            )
        if weak_values is not None and not weak_values.empty:
            weak |= set(
                (
                    weak_values["identifier_type"].astype(str)
                    + _KEY_SEPARATOR
                    + weak_values["identifier_value"].astype(str)
                ).tolist()
            )
        owner_of_record = dict(
            zip(
                identity_map["record_uid"].astype(str),
                identity_map["customer_id"].astype(str),
                strict=True,
            )
        )
        name_columns = ["first_name_canonical", "first_name", "last_name", "birth_date"]
        names = records[["record_uid", *[c for c in name_columns if c in records]]].copy()
        for column in name_columns:
            if column not in names:
                names[column] = None
        names["customer_id"] = names["record_uid"].map(owner_of_record)
        names = names.reset_index(drop=True)
        members = {str(k): v for k, v in names.groupby("customer_id", sort=False).indices.items()}
        name_arrays = [
            names[c].astype("object").where(names[c].notna(), None).to_numpy()
            for c in ("first_name_canonical", "first_name", "last_name", "birth_date")
        ]
        issued = set(owner_of_record.values())
        alias_map = alias_lookup(aliases) if aliases is not None else {}
        issued |= set(alias_map)
        return _State(
            identifier_owner=identifier_owner,
            weak=weak,
            owner_of_record=owner_of_record,
            members=members,
            names=name_arrays,
            added_names={},
            aliases=alias_map,
            issued=issued,
        )

    # -- lookups ----------------------------------------------------------------------------

    def customer_of(self, customer_id: str) -> str:
        """The current id for a customer id that may be an alias."""
        return resolve_alias(customer_id, self._state.aliases)

    def _identifiers_of(
        self, raw: Mapping[str, Any], normalized: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for attribute in ("email", "phone"):
            if normalized.get(attribute):
                found.append((attribute, str(normalized[attribute])))
        named: dict[str, Any] = dict(raw.get("identifiers") or {})
        for key, value in raw.items():
            if (
                key not in _RESERVED_KEYS
                and key not in IDENTITY_ATTRIBUTES
                and is_valid_identifier_name(key)
            ):
                named.setdefault(key, value)
        for identifier_type, value in named.items():
            clean, _ = self._normalizer.identifier(identifier_type, value)
            if clean is not None:
                found.append((identifier_type, str(clean)))
        return sorted(set(found), key=lambda item: (self._priority_of(item[0]), item))

    def _name_key(self, normalized: Mapping[str, Any]) -> NameKey:
        return NameKey(
            normalized.get("first_name_canonical"),
            normalized.get("first_name"),
            normalized.get("last_name"),
            normalized.get("birth_date"),
        )

    def _names_agree(self, customer_id: str, key: NameKey) -> bool:
        """A shared email/phone only links when the names can be the same person: compatible
        with one of the customer's names and contradicting none (the batch guard's rule)."""
        if key.canonical is None and key.birth_date is None:
            return True
        state = self._state
        positions = state.members.get(customer_id, ())
        others = [NameKey(*(column[p] for column in state.names)) for p in positions]
        others += state.added_names.get(customer_id, [])
        informative = [o for o in others if o.canonical is not None or o.birth_date is not None]
        if not informative:
            return True
        return any(names_compatible(key, o) for o in informative) and not any(
            names_conflict(key, o) for o in informative
        )

    # -- the entry point --------------------------------------------------------------------

    def resolve_one(self, record: Mapping[str, Any]) -> RealtimeResult:
        """The customer of one record (a new id when nothing matches); the record is indexed."""
        with self._lock:
            normalized = self._normalizer.record(record)
            uid = normalized.get("record_uid") or self._synthetic_uid(normalized, record)
            normalized["record_uid"] = uid
            known = self._state.owner_of_record.get(uid)
            if known is not None:
                return RealtimeResult(known, False, [{"type": "known_record", "record_uid": uid}])
            identifiers = self._identifiers_of(record, normalized)
            name_key = self._name_key(normalized)
            customer_id, evidence = self._deterministic(identifiers, name_key)
            if customer_id is None:
                customer_id, evidence = self._probabilistic(normalized)
            is_new = customer_id is None
            if customer_id is None:
                customer_id = new_customer_id(uid, self.settings.id_salt, self._state.issued)
                evidence = [{"type": "new", "reason": "no identifier or model match"}]
            self._index(uid, customer_id, identifiers, normalized, name_key)
            return RealtimeResult(customer_id, is_new, evidence)

    def _synthetic_uid(self, normalized: Mapping[str, Any], raw: Mapping[str, Any]) -> str:
        material = repr(sorted((k, str(v)) for k, v in raw.items() if v is not None))
        source = normalized.get("source") or "realtime"
        return f"{source}:rt-{hashlib.sha256(material.encode()).hexdigest()[:16]}"

    def _deterministic(
        self, identifiers: list[tuple[str, str]], name_key: NameKey
    ) -> tuple[str | None, list[dict[str, Any]]]:
        refused: list[dict[str, Any]] = []
        for identifier_type, value in identifiers:
            key = _key(identifier_type, value)
            if key in self._state.weak:
                refused.append({"identifier_type": identifier_type, "reason": "weak_value"})
                continue
            owner = self._state.identifier_owner.get(key)
            if owner is None:
                continue
            owner = self.customer_of(owner)
            if identifier_type in ("email", "phone") and not self._names_agree(owner, name_key):
                refused.append(
                    {"identifier_type": identifier_type, "reason": f"names_differ:{owner}"}
                )
                continue
            return owner, [
                {
                    "type": "rule",
                    "rule": f"same_{identifier_type}",
                    "identifier_type": identifier_type,
                    "refused": refused,
                }
            ]
        return None, refused

    def _probabilistic(
        self, normalized: Mapping[str, Any]
    ) -> tuple[str | None, list[dict[str, Any]]]:
        if self._scorer is None:
            return None, []
        scored = self._scorer.score(normalized)
        if scored.empty:
            return None, []
        best = scored.iloc[int(np.argmax(scored["match_probability"].to_numpy()))]
        probability = float(best["match_probability"])
        if probability < self._threshold:
            return None, [{"type": "model", "best_probability": probability, "accepted": False}]
        uid = normalized["record_uid"]
        other = best["record_uid_r"] if best["record_uid_l"] == uid else best["record_uid_l"]
        owner = self._state.owner_of_record.get(str(other))
        if owner is None:
            return None, []
        return self.customer_of(owner), [
            {
                "type": "model",
                "rule": "splink",
                "record_uid": str(other),
                "match_probability": probability,
                "match_weight": float(best["match_weight"]),
                "details": best["details"],
            }
        ]

    def _index(
        self,
        uid: str,
        customer_id: str,
        identifiers: list[tuple[str, str]],
        normalized: Mapping[str, Any],
        name_key: NameKey,
    ) -> None:
        state = self._state
        state.owner_of_record[uid] = customer_id
        state.issued.add(customer_id)
        for identifier_type, value in identifiers:
            state.identifier_owner.setdefault(_key(identifier_type, value), customer_id)
        state.added_names.setdefault(customer_id, []).append(name_key)
        if self._scorer is not None:
            self._scorer.add(normalized)

    def close(self) -> None:
        """Release the model scorer's resources (if it holds any)."""
        close = getattr(self._scorer, "close", None)
        if callable(close):
            close()
