"""What a report page shows, as value objects built from the audit trail (and, where it adds, the registry).

Everything here is computed from plain inputs (audit entries, a model card, registry facts handed in by the api), so
it can be tested with no store at all. The HTML is made by :mod:`mlops_layer.report.html`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops_layer.audit import actions
from mlops_layer.audit.entry import AuditEntry
from mlops_layer.audit.history import AliasSpan, replay_spans

if TYPE_CHECKING:
    from mlops_layer.governance.cards import ModelCard

# The alias whose holder is "in service", in order of preference (the first one the model has).
SERVING_ALIASES = ("champion", "production", "prod", "live")


@dataclass(frozen=True)
class CardAnswer:
    """One governance question, the card field that answers it, and the answer as text."""

    question: str
    field: str
    answer: str


@dataclass(frozen=True)
class RegistryFacts:
    """What the registry knows of a version that the trail does not: current aliases and fine-tuning parent."""

    version: str
    aliases: tuple[str, ...] = ()
    parent: str | None = None  # "model/version"
    created: datetime | None = None


@dataclass(frozen=True)
class VersionRow:
    """A registered version and its lineage, as the ``model.registered`` entry recorded it."""

    version: str
    registered_at: datetime | None
    registered_by: str
    git_commit: str | None
    run_id: str | None
    data: tuple[tuple[str, str], ...]
    params: tuple[tuple[str, str], ...]
    artifacts: tuple[tuple[str, str], ...]
    model_uri: str
    aliases: tuple[str, ...]
    parent_chain: tuple[str, ...]  # parent, grandparent, ... ("model/version")
    audit_seq: int | None
    in_registry: bool


@dataclass(frozen=True)
class RuleRow:
    name: str
    passed: bool
    observed: str
    expected: str
    message: str


@dataclass(frozen=True)
class DecisionRow:
    """One promotion or rollback decision, allowed or refused, with every rule."""

    seq: int
    time: datetime
    actor: str
    action: str
    version: str
    target: str
    allowed: bool
    policy_hash: str
    card_hash: str
    current_holder: str | None
    rules: tuple[RuleRow, ...]


@dataclass(frozen=True)
class ApprovalRow:
    """A signed approval or rejection: who signed, with which key, for what."""

    seq: int
    time: datetime
    version: str
    target: str
    action: str
    decision: str
    signer: str
    key_fingerprint: str
    comment: str
    signed: bool


@dataclass(frozen=True)
class BatchPoint:
    """One monitored production batch (or a drift check), a point on the charts."""

    seq: int
    time: datetime
    version: str
    drift_share: float | None
    metrics: tuple[tuple[str, float], ...]
    verdict: str
    kind: str  # "batch" | "drift_check"


@dataclass(frozen=True)
class AlertEvent:
    seq: int
    time: datetime
    kind: str  # "fired" | "cleared"
    rule: str
    alert_id: str
    version: str
    severity: str
    message: str


@dataclass(frozen=True)
class AuditHead:
    """The trail's head, the oldest entry it holds, and the newest signed checkpoint with its status."""

    size: int
    head: str
    oldest_seq: int | None = None
    oldest_time: datetime | None = None
    checkpoint_size: int | None = None
    checkpoint_time: str | None = None
    checkpoint_signer: str | None = None
    checkpoint_key: str | None = None
    checkpoint_ok: bool = False
    checkpoint_problem: str | None = None

    @property
    def unanchored(self) -> int:
        return self.size - (self.checkpoint_size or 0) if self.checkpoint_ok else self.size

    @property
    def status(self) -> str:
        if self.checkpoint_size is None:
            return "no signed checkpoint"
        if not self.checkpoint_ok:
            return f"checkpoint does not verify: {self.checkpoint_problem}"
        if self.unanchored:
            return f"{self.unanchored} entries after the newest signed checkpoint"
        return "every entry covered by a signed checkpoint"


@dataclass(frozen=True)
class ModelPage:
    """Everything the per-model page shows."""

    name: str
    generated_at: datetime
    card: tuple[CardAnswer, ...]
    card_hash: str | None
    card_error: str | None
    aliases: tuple[tuple[str, str], ...]
    versions: tuple[VersionRow, ...]
    spans: tuple[AliasSpan, ...]
    decisions: tuple[DecisionRow, ...]
    approvals: tuple[ApprovalRow, ...]
    points: tuple[BatchPoint, ...]
    alerts: tuple[AlertEvent, ...]
    open_alerts: tuple[AlertEvent, ...]
    waiting: tuple[str, ...]
    audit: AuditHead
    entry_count: int
    notes: tuple[str, ...] = ()

    @property
    def serving(self) -> tuple[str, str] | None:
        return serving_alias(dict(self.aliases))

    @property
    def metric_names(self) -> tuple[str, ...]:
        names = {name for p in self.points for name, _ in p.metrics}
        return tuple(sorted(names))


@dataclass(frozen=True)
class InventoryRow:
    name: str
    owner: str
    serving: tuple[str, str] | None
    aliases: tuple[tuple[str, str], ...]
    last_drift: str | None
    last_drift_time: datetime | None
    open_alerts: tuple[str, ...]
    waiting: tuple[str, ...]
    versions: int
    page: str


@dataclass(frozen=True)
class InventoryPage:
    generated_at: datetime
    models: tuple[InventoryRow, ...]
    audit: AuditHead
    notes: tuple[str, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------------------------------------ the model card

_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("Who is accountable for this model?", "business_owner"),
    ("What is it for?", "intended_use"),
    ("Who uses it?", "intended_users"),
    ("How are its predictions consumed?", "prediction_consumption"),
    ("What service must it give?", "sla"),
    ("How and when is it retrained?", "retraining"),
    ("Who decides whether it is promoted?", "approver_roles"),
    ("How sensitive is it?", "sensitivity"),
    ("May its code be shared?", "code_shareable"),
    ("What should someone reusing it know?", "reuse_notes"),
    ("What is it not good at?", "limitations"),
    ("Who is alerted when it degrades?", "stakeholders"),
    ("Description", "description"),
)


def card_answers(card: ModelCard) -> tuple[CardAnswer, ...]:
    """The governance questions a model card answers, each with its answer as text ("not stated" when empty)."""
    out: list[CardAnswer] = []
    for question, name in _QUESTIONS:
        value = getattr(card, name)
        if name == "sla":
            parts = [f"availability {value.availability_percent}%"]
            if value.max_latency_ms is not None:
                parts.append(f"max latency {value.max_latency_ms} ms")
            if value.support_hours:
                parts.append(f"support {value.support_hours}")
            text = ", ".join(parts)
        elif name == "retraining":
            text = f"{value.method}, {value.cadence}" + (f" ({value.trigger_notes})" if value.trigger_notes else "")
        elif name == "stakeholders":
            text = "; ".join(
                f"{s.name}" + (f" ({s.role})" if s.role else "") + ": " + ", ".join(c.target for c in s.channels)
                for s in value
            )
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, tuple):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        out.append(CardAnswer(question, name, text or "not stated"))
    return tuple(out)


# ------------------------------------------------------------------------------------------------ from the trail


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _key_fingerprint(signature: str) -> str:
    from mlops_layer import signing

    try:
        return signing.fingerprint(signing.signature_public_key(signature))
    except signing.SignatureError:
        return ""


def serving_alias(aliases: Mapping[str, str]) -> tuple[str, str] | None:
    """(alias, version) of the version in service: the first of SERVING_ALIASES the model has."""
    for alias in SERVING_ALIASES:
        if alias in aliases:
            return alias, aliases[alias]
    return None


def waiting_approvals(entries: Iterable[AuditEntry], aliases: Mapping[str, str]) -> tuple[str, ...]:
    """Signed approvals for a version that does not hold the approved alias yet (used ones drop out)."""
    pending: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        key = (str(entry.version), str(entry.alias))
        if entry.action == actions.APPROVAL_GRANTED:
            pending.setdefault(key, []).append(entry.actor)
        elif entry.action == actions.ALIAS_SET:
            pending.pop(key, None)
    return tuple(
        f"v{version} -> @{alias} approved by {', '.join(sorted(set(who)))}"
        for (version, alias), who in sorted(pending.items())
        if aliases.get(alias) != version
    )


def alert_events(entries: Iterable[AuditEntry]) -> list[AlertEvent]:
    out = []
    for e in entries:
        if e.action not in (actions.ALERT_FIRED, actions.ALERT_CLEARED):
            continue
        d = e.details
        out.append(
            AlertEvent(
                seq=e.seq,
                time=e.timestamp,
                kind="fired" if e.action == actions.ALERT_FIRED else "cleared",
                rule=_text(d.get("rule")),
                alert_id=_text(d.get("alert_id")) or f"{e.model}:{d.get('rule')}",
                version=str(e.version or d.get("version") or ""),
                severity=_text(d.get("severity")),
                message=_text(d.get("message")),
            )
        )
    return out


def open_alerts(events: Sequence[AlertEvent]) -> tuple[AlertEvent, ...]:
    """Alerts fired and not cleared since (per rule), replayed from the trail."""
    current: dict[str, AlertEvent] = {}
    for ev in events:
        if ev.kind == "fired":
            current[ev.rule] = ev
        else:
            current.pop(ev.rule, None)
    return tuple(sorted(current.values(), key=lambda a: a.seq))


def _decision(e: AuditEntry) -> DecisionRow:
    d = e.details
    rules = tuple(
        RuleRow(
            name=_text(r.get("name")),
            passed=bool(r.get("passed")),
            observed=_text(r.get("observed")),
            expected=_text(r.get("expected")),
            message=_text(r.get("message")),
        )
        for r in d.get("rules") or []
        if isinstance(r, dict)
    )
    return DecisionRow(
        seq=e.seq,
        time=e.timestamp,
        actor=e.actor,
        action=_text(d.get("action")) or ("rollback" if e.action == actions.ROLLBACK_DECIDED else "promote"),
        version=e.version or "",
        target=e.alias or "",
        allowed=e.decision == "allowed",
        policy_hash=_text(d.get("policy_hash")),
        card_hash=_text(d.get("card_hash")),
        current_holder=None if d.get("current_holder") is None else _text(d.get("current_holder")),
        rules=rules,
    )


def _approval(e: AuditEntry) -> ApprovalRow:
    d = e.details
    statement = _mapping(d.get("statement"))
    signature = _text(d.get("signature"))
    return ApprovalRow(
        seq=e.seq,
        time=e.timestamp,
        version=e.version or "",
        target=e.alias or "",
        action=_text(statement.get("action")) or "promote",
        decision=e.decision or ("reject" if e.action == actions.APPROVAL_REJECTED else "approve"),
        signer=e.actor,
        key_fingerprint=_key_fingerprint(signature) if signature else "",
        comment=_text(statement.get("comment")),
        signed=bool(signature.strip()),
    )


def _points(entries: Iterable[AuditEntry]) -> list[BatchPoint]:
    out = []
    for e in entries:
        d = e.details
        if e.action == actions.MONITOR_BATCH:
            raw = _mapping(d.get("metrics"))
            metrics = tuple((str(k), n) for k, v in sorted(raw.items()) if (n := _number(v)) is not None)
            out.append(
                BatchPoint(
                    e.seq,
                    e.timestamp,
                    e.version or "",
                    _number(d.get("drift_share")),
                    metrics,
                    e.decision or "",
                    "batch",
                )
            )
        elif e.action == actions.DRIFT_CHECKED:
            share = _number(d.get("share"))
            out.append(BatchPoint(e.seq, e.timestamp, e.version or "", share, (), e.decision or "", "drift_check"))
    return out


def _versions(
    name: str, entries: Sequence[AuditEntry], facts: Mapping[str, RegistryFacts], aliases: Mapping[str, str]
) -> list[VersionRow]:
    registered: dict[str, AuditEntry] = {}
    for e in entries:
        if e.action == actions.MODEL_REGISTERED and e.version:
            registered.setdefault(e.version, e)
    names = set(registered) | set(facts)
    rows = []
    for version in sorted(names, key=_version_key):
        reg = registered.get(version)
        fact = facts.get(version)
        details = reg.details if reg is not None else {}
        params = _mapping(details.get("params"))
        artifacts = _mapping(details.get("artifacts"))
        chain: list[str] = []
        parent = fact.parent if fact else None
        seen = {f"{name}/{version}"}
        while parent and parent not in seen and len(chain) < 20:
            chain.append(parent)
            seen.add(parent)
            model, _, pv = parent.partition("/")
            nxt = facts.get(pv) if model == name else None  # the registry facts at hand are this model's
            parent = nxt.parent if nxt is not None else None
        rows.append(
            VersionRow(
                version=version,
                registered_at=reg.timestamp if reg is not None else (fact.created if fact else None),
                registered_by=reg.actor if reg is not None else "",
                git_commit=reg.git_commit if reg is not None else None,
                run_id=reg.run_id if reg is not None else None,
                data=tuple(sorted((reg.dvc_hashes if reg is not None else {}).items())),
                params=tuple(sorted((str(k), _text(v)) for k, v in params.items())),
                artifacts=tuple(sorted((str(k), _text(v)) for k, v in artifacts.items())),
                model_uri=_text(details.get("model_uri")),
                aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
                parent_chain=tuple(chain),
                audit_seq=reg.seq if reg is not None else None,
                in_registry=fact is not None,
            )
        )
    return rows


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


def build_model_page(
    name: str,
    entries: Sequence[AuditEntry],
    *,
    generated_at: datetime,
    audit: AuditHead,
    card: ModelCard | None = None,
    card_error: str | None = None,
    registry: Mapping[str, RegistryFacts] | None = None,
    registry_aliases: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> ModelPage:
    """The per-model page from the model's audit entries (oldest first) and what the registry adds.

    Aliases come from the trail's completed moves; when the registry is at hand and disagrees, a note says so
    (``mlops audit reconcile`` explains it).
    """
    facts = dict(registry or {})
    spans = replay_spans(entries)
    trail_aliases = {s.alias: s.version for s in spans if s.end is None}
    extra = list(notes)
    if registry_aliases is not None and dict(registry_aliases) != trail_aliases:
        extra.append(
            f"the registry's aliases {dict(sorted(registry_aliases.items()))} differ from the trail's "
            f"{dict(sorted(trail_aliases.items()))}: run `mlops audit reconcile`"
        )
    events = alert_events(entries)
    return ModelPage(
        name=name,
        generated_at=generated_at,
        card=card_answers(card) if card is not None else (),
        card_hash=card.card_hash if card is not None else None,
        card_error=card_error,
        aliases=tuple(sorted(trail_aliases.items())),
        versions=tuple(_versions(name, entries, facts, trail_aliases)),
        spans=tuple(spans),
        decisions=tuple(_decision(e) for e in entries if e.action in actions.ALIAS_DECISIONS),
        approvals=tuple(
            _approval(e) for e in entries if e.action in (actions.APPROVAL_GRANTED, actions.APPROVAL_REJECTED)
        ),
        points=tuple(_points(entries)),
        alerts=tuple(events),
        open_alerts=open_alerts(events),
        waiting=waiting_approvals(entries, trail_aliases),
        audit=audit,
        entry_count=len(entries),
        notes=tuple(extra),
    )


def inventory_row(page: ModelPage, *, owner: str | None = None, page_file: str) -> InventoryRow:
    """The inventory's line for one model, from its page."""
    last = next((p for p in reversed(page.points) if p.verdict), None)
    card_owner = next((a.answer for a in page.card if a.field == "business_owner"), None)
    return InventoryRow(
        name=page.name,
        owner=owner or card_owner or (f"no card ({page.card_error})" if page.card_error else "no card"),
        serving=page.serving,
        aliases=page.aliases,
        last_drift=last.verdict if last else None,
        last_drift_time=last.time if last else None,
        open_alerts=tuple(a.rule for a in page.open_alerts),
        waiting=page.waiting,
        versions=len(page.versions),
        page=page_file,
    )


def page_file_name(model: str) -> str:
    """The file name of a model's page (model names are restricted to [A-Za-z0-9._-], so this is safe)."""
    from mlops_layer.governance.cards import validate_model_name

    validate_model_name(model)
    return f"{model}.html"


def audit_head(store: Any, checkpoints: Sequence[Any], allowed_signers: Any) -> AuditHead:
    """The trail's head, its oldest entry, and whether the newest checkpoint verifies and still matches the chain.

    ``store``: an ``AuditStore``; ``checkpoints``: from the database and the checkpoint file; ``allowed_signers``:
    a Path or None. Cheap: one signature and one entry lookup, not a full verification (``mlops audit verify``).
    """
    from mlops_layer.audit.checkpoints import verify_signature
    from mlops_layer.errors import MlopsError

    size, head = store.head()
    first = next(iter(store.rows(batch=1)), None) if size else None  # one row, not a batch
    oldest = AuditEntry(int(first[0]), bytes(first[1]).hex(), bytes(first[2]).hex(), bytes(first[3])) if first else None
    base = AuditHead(size, head, oldest.seq if oldest else None, oldest.timestamp if oldest else None)
    valid = [cp for cp in checkpoints if cp.size <= size]
    if not valid:
        return base
    cp = max(valid, key=lambda c: (c.size, c.time))
    signer: str | None = None
    problem: str | None = None
    try:
        if allowed_signers is None or not allowed_signers.exists():
            problem = "no allowed_signers file to check its signature"
        else:
            signer = verify_signature(cp, allowed_signers)
            actual = store.get(cp.size).entry_hash if cp.size else None
            if cp.size and actual != cp.head:
                problem = f"entry {cp.size} no longer has the signed hash (the trail was rewritten)"
    except MlopsError as exc:
        problem = exc.message
    return AuditHead(
        size,
        head,
        base.oldest_seq,
        base.oldest_time,
        checkpoint_size=cp.size,
        checkpoint_time=cp.time,
        checkpoint_signer=signer or cp.signer,
        checkpoint_key=cp.key,
        checkpoint_ok=problem is None,
        checkpoint_problem=problem,
    )
