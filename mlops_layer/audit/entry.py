"""One audit entry: its canonical body (RFC 8785 JSON, NFC strings, no floats) and the hash that chains it.

``entry_hash = SHA-256(DOMAIN_TAG ‖ seq as 8 bytes big-endian ‖ prev_hash as 32 raw bytes ‖ body_bytes)``.
Every part before the body has a fixed length, so the concatenation is unambiguous. The body bytes are stored exactly
as hashed; verification never re-serialises. Changing anything here changes every hash: the golden vectors in
``tests/golden/`` guard it.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import cached_property
from pathlib import PurePath
from typing import Any

from mlops_layer.errors import InputError

SCHEMA_VERSION = 1
GENESIS = "0" * 64
GENESIS_DIGEST = bytes(32)
DOMAIN_TAG = b"mlops-audit-entry/v1\x00"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width (27 chars): byte order is time order
# "timestamp" sorts after every other top-level key, so every canonical body ends with '"timestamp":"<27 chars>"}';
# verification reads it with two slices instead of parsing the JSON.
TIMESTAMP_KEY = b'"timestamp":"'
BODY_KEYS = (
    "action",
    "actor",
    "clock",
    "decision",
    "details",
    "dvc_hashes",
    "git_commit",
    "reasons",
    "run_id",
    "schema",
    "subject",
    "timestamp",
)
SUBJECT_KEYS = ("model", "version", "alias")
_MAX_SAFE_INT = 2**53 - 1


def entry_digest(seq: int, prev_digest: bytes, body_bytes: bytes) -> bytes:
    """The raw SHA-256 that chains an entry to its predecessor (``prev_digest``: 32 raw bytes)."""
    if len(prev_digest) != 32:
        raise ValueError(f"prev_hash must be 32 bytes, got {len(prev_digest)}")
    return hashlib.sha256(DOMAIN_TAG + seq.to_bytes(8, "big") + prev_digest + body_bytes).digest()


def compute_entry_hash(seq: int, prev_hash: str, body_bytes: bytes) -> str:
    """The hex SHA-256 that chains an entry to its predecessor."""
    return entry_digest(seq, bytes.fromhex(prev_hash), body_bytes).hex()


def format_timestamp(moment: datetime) -> str:
    """UTC, microseconds, fixed width: ``2025-01-02T03:04:05.000006Z``."""
    if moment.tzinfo is None:
        raise InputError(f"timestamp {moment.isoformat()} has no time zone", hint="use an aware datetime (UTC)")
    return moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)


def body_timestamp(body_bytes: bytes) -> bytes | None:
    """The raw timestamp of a canonical body without parsing it (see TIMESTAMP_KEY); None when absent/malformed."""
    return body_bytes[-29:-2] if body_bytes[-42:-29] == TIMESTAMP_KEY and body_bytes[-2:] == b'"}' else None


def normalize(value: Any, field: str) -> Any:
    """A JSON value that canonicalises the same way forever: NFC strings, no floats, safe integers.

    Finite floats become their shortest round-trip decimal string (``0.1`` -> ``"0.1"``); NaN/Inf are refused with
    the field named. Integers beyond 2**53 become decimal strings (JSON parsers would round them).
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _nfc(value, field)
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(
                f"audit field {field} is {value!r}, which JSON cannot represent",
                hint="record a finite number, or a string such as 'nan' if that is the real observation",
            )
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InputError(f"audit field {field} is {value}, which JSON cannot represent")
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return _nfc(value.as_posix(), field)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"audit field {field} has a non-string key {key!r}", hint="use string keys")
            nkey = _nfc(key, f"{field}.{key}")
            if nkey in out:
                raise InputError(f"audit field {field} has the key {key!r} twice once NFC-normalised")
            out[nkey] = normalize(item, f"{field}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [normalize(item, f"{field}[{i}]") for i, item in enumerate(value)]
    item_method = getattr(value, "item", None)  # numpy scalars, without importing numpy
    if callable(item_method) and not isinstance(value, (bytes, bytearray)):
        return normalize(item_method(), field)
    raise InputError(
        f"audit field {field} holds a {type(value).__name__}, which has no canonical JSON form",
        hint="record strings, integers, booleans, lists and mappings (floats become decimal strings)",
    )


def _nfc(text: str, field: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"audit field {field} holds a lone surrogate, which is not valid Unicode") from None
    return unicodedata.normalize("NFC", text)


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 (JCS) serialisation of an already-normalised JSON value."""
    import rfc8785

    return rfc8785.dumps(value)


def build_body(
    action: str,
    *,
    actor: str,
    timestamp: datetime,
    clock: datetime | None = None,
    subject: Mapping[str, Any] | None = None,
    git_commit: str | None = None,
    dvc_hashes: Mapping[str, str] | None = None,
    run_id: str | None = None,
    decision: str | None = None,
    reasons: Sequence[str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> bytes:
    """The canonical body bytes of an entry. Absent (None) fields are left out, so old bodies never change meaning.

    ``clock`` is the real wall clock when it ran behind the previous entry and ``timestamp`` was clamped.
    """
    if not isinstance(action, str) or not action.strip():
        raise InputError("audit action must be a non-empty string", hint="use a constant from audit.actions")
    if not isinstance(actor, str) or not actor.strip():
        raise InputError("audit actor must be a non-empty string", hint="set MLOPS_ACTOR or git config user.email")
    body: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "action": normalize(action, "action"),
        "actor": normalize(actor, "actor"),
        "timestamp": format_timestamp(timestamp),
    }
    if clock is not None:
        body["clock"] = format_timestamp(clock)
    if subject is not None:
        if not isinstance(subject, Mapping):
            raise InputError(f"audit field subject must be a mapping, got {type(subject).__name__}")
        unknown = sorted(set(subject) - set(SUBJECT_KEYS))
        if unknown:
            raise InputError(
                f"audit field subject has unknown key(s) {', '.join(map(str, unknown))}",
                hint=f"subject holds {', '.join(SUBJECT_KEYS)}; put anything else in details",
            )
        clean = {k: v for k, v in subject.items() if v is not None}
        for key, val in clean.items():
            if isinstance(val, bool) or not isinstance(val, (str, int)):
                raise InputError(f"audit field subject.{key} must be a string, got {val!r}")
        if clean:
            body["subject"] = {k: normalize(str(v), f"subject.{k}") for k, v in clean.items()}
    if git_commit is not None:
        body["git_commit"] = normalize(git_commit, "git_commit")
    if dvc_hashes is not None:
        body["dvc_hashes"] = normalize(dict(dvc_hashes), "dvc_hashes")
    if run_id is not None:
        body["run_id"] = normalize(run_id, "run_id")
    if decision is not None:
        body["decision"] = normalize(decision, "decision")
    if reasons is not None:
        if isinstance(reasons, str):
            raise InputError("audit field reasons must be a list of strings, not one string")
        body["reasons"] = [
            normalize(str(r) if not isinstance(r, str) else r, f"reasons[{i}]") for i, r in enumerate(reasons)
        ]
    if details is not None:
        if not isinstance(details, Mapping):
            raise InputError(f"audit field details must be a mapping, got {type(details).__name__}")
        body["details"] = normalize(details, "details")
    return canonical_bytes(body)


@dataclass(frozen=True)
class AuditEntry:
    """One stored entry. ``body_bytes`` are the exact hashed bytes; the other properties are parsed from them."""

    seq: int
    prev_hash: str
    entry_hash: str
    body_bytes: bytes

    @cached_property
    def body(self) -> dict[str, Any]:
        parsed = json.loads(self.body_bytes)
        if not isinstance(parsed, dict):
            raise ValueError(f"audit entry {self.seq}: body is not a JSON object")
        return parsed

    @property
    def timestamp(self) -> datetime:
        return parse_timestamp(str(self.body["timestamp"]))

    @property
    def clock(self) -> datetime | None:
        """The real wall clock when it ran behind the previous entry (the timestamp was clamped), else None."""
        raw = self.body.get("clock")
        return parse_timestamp(str(raw)) if raw else None

    @property
    def schema(self) -> int:
        return int(self.body.get("schema", 0))

    @property
    def actor(self) -> str:
        return str(self.body["actor"])

    @property
    def action(self) -> str:
        return str(self.body["action"])

    @property
    def subject(self) -> dict[str, str]:
        return dict(self.body.get("subject") or {})

    @property
    def model(self) -> str | None:
        return self.subject.get("model")

    @property
    def version(self) -> str | None:
        return self.subject.get("version")

    @property
    def alias(self) -> str | None:
        return self.subject.get("alias")

    @property
    def git_commit(self) -> str | None:
        return self.body.get("git_commit")

    @property
    def dvc_hashes(self) -> dict[str, str]:
        return dict(self.body.get("dvc_hashes") or {})

    @property
    def run_id(self) -> str | None:
        return self.body.get("run_id")

    @property
    def decision(self) -> str | None:
        return self.body.get("decision")

    @property
    def reasons(self) -> list[str]:
        return list(self.body.get("reasons") or [])

    @property
    def details(self) -> dict[str, Any]:
        return dict(self.body.get("details") or {})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view: chain fields plus every body field (absent ones as null/empty)."""
        return {
            "seq": self.seq,
            "timestamp": self.body.get("timestamp"),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "git_commit": self.git_commit,
            "dvc_hashes": self.dvc_hashes,
            "run_id": self.run_id,
            "decision": self.decision,
            "reasons": self.reasons,
            "details": self.details,
            "clock": self.body.get("clock"),
            "schema": self.schema,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
        }

    def to_record(self) -> dict[str, Any]:
        """The exact stored form for export: the body as the very text that was hashed."""
        return {
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
            "body": self.body_bytes.decode("utf-8"),
        }

    def recompute_hash(self) -> str:
        return compute_entry_hash(self.seq, self.prev_hash, self.body_bytes)


_RELATIVE = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time from the command line: ISO 8601 (naive = UTC), ``now``, or an age such as ``7d``/``12h``."""
    from datetime import timedelta

    raw = text.strip()
    current = now or datetime.now(timezone.utc)
    if raw.lower() == "now":
        return current
    unit = raw[-1:].lower()
    if unit in _RELATIVE and raw[:-1].isdigit():
        return current - timedelta(seconds=int(raw[:-1]) * _RELATIVE[unit])
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(
            f"cannot read the time {text!r}",
            hint="use ISO 8601 (2025-01-31, 2025-01-31T12:00:00Z), 'now', or an age like 7d, 12h, 30m",
        ) from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
