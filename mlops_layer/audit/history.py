"""Alias history answered from the trail: which version held an alias, from when to when, and who moved it.

Only completed moves count (``alias.set`` / ``alias.deleted``, written after the registry acted); a decision that
never completed is not history. The same replay gives the state reconciliation expects the registry to have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops_layer.audit import actions
from mlops_layer.audit.entry import AuditEntry

if TYPE_CHECKING:
    from mlops_layer.audit.store import AuditStore


@dataclass(frozen=True)
class AliasSpan:
    """``version`` held ``model@alias`` from ``start`` (inclusive) until ``end`` (exclusive; None = still holds)."""

    model: str
    alias: str
    version: str
    start: datetime
    end: datetime | None
    start_seq: int
    end_seq: int | None
    actor: str
    via: str | None = None
    ended_by: str | None = None  # "alias.set" (replaced) or "alias.deleted"

    def holds_at(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None,
            "start_seq": self.start_seq,
            "end_seq": self.end_seq,
            "actor": self.actor,
            "via": self.via,
            "ended_by": self.ended_by,
        }


def replay_spans(entries: Iterable[AuditEntry]) -> list[AliasSpan]:
    """Spans from alias events in sequence order (events without a model or alias are ignored)."""
    open_spans: dict[tuple[str, str], AliasSpan] = {}
    closed: list[AliasSpan] = []
    for entry in entries:
        if entry.action not in actions.ALIAS_EVENTS:
            continue
        model, alias = entry.model, entry.alias
        if not model or not alias:
            continue
        key = (model, alias)
        current = open_spans.get(key)
        if entry.action == actions.ALIAS_SET:
            version = entry.version
            if not version:
                continue
            if current is not None and current.version == version:
                continue  # re-set to the same holder: the span goes on
            if current is not None:
                closed.append(_close(current, entry))
            open_spans[key] = AliasSpan(
                model=model,
                alias=alias,
                version=version,
                start=entry.timestamp,
                end=None,
                start_seq=entry.seq,
                end_seq=None,
                actor=entry.actor,
                via=entry.details.get("via"),
            )
        elif current is not None:
            closed.append(_close(current, entry))
            del open_spans[key]
    spans = closed + list(open_spans.values())
    spans.sort(key=lambda s: (s.model, s.alias, s.start_seq))
    return spans


def _close(span: AliasSpan, entry: AuditEntry) -> AliasSpan:
    return AliasSpan(
        model=span.model,
        alias=span.alias,
        version=span.version,
        start=span.start,
        end=entry.timestamp,
        start_seq=span.start_seq,
        end_seq=entry.seq,
        actor=span.actor,
        via=span.via,
        ended_by=entry.action,
    )


def alias_history(store: AuditStore, model: str, alias: str | None = None) -> list[AliasSpan]:
    """Every span of every alias of ``model`` (or of one alias), oldest first."""
    spans = replay_spans(store.entries(model=model, action=list(actions.ALIAS_EVENTS)))
    return [s for s in spans if alias is None or s.alias == alias]


def holder_at(store: AuditStore, model: str, alias: str, at: datetime) -> str | None:
    """The version that held ``model@alias`` at ``at`` (aware datetime), or None."""
    for span in alias_history(store, model, alias):
        if span.holds_at(at):
            return span.version
    return None


def expected_aliases(store: AuditStore) -> dict[str, dict[str, str]]:
    """The alias state the trail says the registry should have now: model -> alias -> version."""
    state: dict[str, dict[str, str]] = {}
    for span in replay_spans(store.entries(action=list(actions.ALIAS_EVENTS))):
        if span.end is None:
            state.setdefault(span.model, {})[span.alias] = span.version
    return state


def registered_versions(store: AuditStore) -> dict[str, set[str]]:
    """Versions the trail registered and did not delete: model -> versions."""
    out: dict[str, set[str]] = {}
    for entry in store.entries(action=[actions.MODEL_REGISTERED, actions.MODEL_VERSION_DELETED]):
        if not entry.model or not entry.version:
            continue
        if entry.action == actions.MODEL_REGISTERED:
            out.setdefault(entry.model, set()).add(entry.version)
        else:
            out.get(entry.model, set()).discard(entry.version)
    return out
