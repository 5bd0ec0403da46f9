"""Alert rules and the alert state machine: what breaches, over which window, with which cooldown and clear rule.

Pure and deterministic: :func:`evaluate_alerts` takes the rules, the batch points (in batch order) and the previous
state, and returns the new state and the events (fired / cleared). Time comes from the batch timestamps, never from
the wall clock, so replaying the same history gives the same events. Persistence lives in
:mod:`mlops_layer.monitoring.state`.

Semantics of one rule on one model:

* a batch *breaches* when its signal crosses the rule's threshold; a batch without the signal (no labels, a metric
  the version never logged) is *unobserved* and ignored by that rule: it neither counts in the window nor breaks a
  healthy streak;
* while the alert is closed, it *fires* on a breaching batch when at least ``window.breaches`` of the last
  ``window.of`` observed batches breached, unless it is in *cooldown* (less than ``cooldown`` since it last fired),
  in which case the firing is suppressed (counted, not notified);
* while it is open nothing fires again; it *clears* after ``clear_after`` consecutive healthy observed batches, and
  the window starts afresh (the breaches that caused the alert are spent);
* a change of the serving version restarts the window (breaches of the old version do not count for the new one);
* an alert belongs to (model, alias, version): when the monitored alias has moved to another version, the old
  version's open alert closes as *superseded* (with the reason) before the new version's batch is assessed;
* people act on an open alert: *acknowledge* it (it stays open, with who, when and a comment) or *resolve* it (it
  closes now, the window starts afresh). See :func:`acknowledge`, :func:`resolve` and :func:`supersede`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_layer.policyfile import PolicyDocument, load_policy_document
from mlops_layer.yamlfile import Located, kind_of

RULE_TYPES: dict[str, str] = {
    "drift_share": "max (share of drifted columns, 0..1)",
    "prediction_drift": "max (drift score of the prediction distribution)",
    "metric_threshold": "metric, min and/or max",
    "metric_drop": "metric, direction (higher|lower), max_drop and/or max_relative_drop",
}
_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "drift_share": ("max",),
    "prediction_drift": ("max",),
    "metric_threshold": ("metric", "min", "max"),
    "metric_drop": ("metric", "direction", "max_drop", "max_relative_drop"),
}
_COMMON_FIELDS = ("type", "name", "description", "severity", "window", "cooldown", "clear_after", "models")
SEVERITIES = ("info", "warning", "critical")
DIRECTIONS = ("higher", "lower")
DEFAULT_CLEAR_AFTER = 3
PREDICTION_DRIFT_SIGNAL = "prediction_drift"

FIRED = "fired"
CLEARED = "cleared"
SUPERSEDED = "superseded"  # closed because the monitored alias moved to another version
RESOLVED = "resolved"  # closed by a person
ACKNOWLEDGED = "acknowledged"  # seen by a person, still open
OPEN = "open"
CLOSED = "closed"


# ----------------------------------------------------------------------------------------------------- rule values


@dataclass(frozen=True)
class Window:
    """Fire when at least ``breaches`` of the last ``of`` observed batches breached."""

    breaches: int = 1
    of: int = 1

    def describe(self) -> str:
        return f"{self.breaches} of the last {self.of} batch{'es' if self.of != 1 else ''}"


@dataclass(frozen=True)
class Cooldown:
    """After firing, stay quiet for ``seconds`` of batch time and ``batches`` batches (both, when both are set)."""

    seconds: float = 0.0
    batches: int = 0

    @property
    def active(self) -> bool:
        return self.seconds > 0 or self.batches > 0


@dataclass(frozen=True)
class AlertRule:
    """One alert rule. ``threshold`` fields depend on ``type`` (see :data:`RULE_TYPES`)."""

    name: str
    type: str
    metric: str | None = None
    min: float | None = None
    max: float | None = None
    direction: str = "higher"
    max_drop: float | None = None
    max_relative_drop: float | None = None
    window: Window = field(default_factory=Window)
    cooldown: Cooldown = field(default_factory=Cooldown)
    clear_after: int = DEFAULT_CLEAR_AFTER
    severity: str = "warning"
    models: tuple[str, ...] = ()
    description: str = ""

    def applies_to(self, model: str) -> bool:
        return not self.models or model in self.models

    @property
    def needs_labels(self) -> bool:
        return self.type in ("metric_threshold", "metric_drop")

    @property
    def signal(self) -> str:
        """What the rule watches, e.g. ``drift_share`` or ``metric:accuracy``."""
        return f"metric:{self.metric}" if self.metric else self.type

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        for key in ("metric", "min", "max", "max_drop", "max_relative_drop"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.type == "metric_drop":
            out["direction"] = self.direction
        out["window"] = {"breaches": self.window.breaches, "of": self.window.of}
        out["cooldown"] = {"seconds": self.cooldown.seconds, "batches": self.cooldown.batches}
        out["clear_after"] = self.clear_after
        out["severity"] = self.severity
        if self.models:
            out["models"] = list(self.models)
        return out


# ---------------------------------------------------------------------------------------------------------- parsing


def _check_fields(fields: dict[str, Located], allowed: Sequence[str], *, hint: str) -> None:
    unknown = [k for k in fields if k not in allowed]
    if unknown:
        fields[unknown[0]].fail(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)}", hint=hint
        )


def _present(fields: dict[str, Located], key: str) -> Located | None:
    item = fields.get(key)
    return item if item is not None and item.value is not None else None


def _need(node: Located, fields: dict[str, Located], key: str, *, hint: str | None = None) -> Located:
    item = _present(fields, key)
    if item is None:
        node.fail(f"missing required field '{key}'", hint=hint)
    return item


def _text(node: Located) -> str:
    return node.string().strip()


def parse_alert_rules(data: Any, *, source: str, field: str = "alerts") -> list[AlertRule]:
    """Parse the ``alerts:`` section of the policy (a list of rules) into :class:`AlertRule` values.

    ``data`` is the section as the one YAML reader gives it (:class:`~mlops_layer.yamlfile.Located`, errors name
    the line) or plain data (users' code); ``source`` names the file in error messages and ``field`` the section,
    so a ConfigError says e.g. ``policy.yaml:14: field 'alerts[1].window.of': ...``. ``None`` (an empty section)
    is no rules.
    """
    root = Located.wrap(data, source, field)
    if root.value is None:
        return []
    if not isinstance(root.value, list):
        root.fail(f"expected a list of alert rules, got {kind_of(root.value)}")
    nodes: list[Located] = root.value
    rules = [_parse_rule(item) for item in nodes]
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.name in seen:
            nodes[i].fail(
                f"two alert rules are both named {rule.name!r} (also {field}[{seen[rule.name]}])",
                hint="give one of them a distinct 'name:'",
            )
        seen[rule.name] = i
    return rules


def _parse_rule(node: Located) -> AlertRule:
    fields = node.mapping()
    kind = _text(_need(node, fields, "type", hint=f"one of: {', '.join(RULE_TYPES)}"))
    if kind not in RULE_TYPES:
        fields["type"].fail(f"unknown alert rule type {kind!r}", hint=f"known types: {', '.join(RULE_TYPES)}")
    _check_fields(
        fields,
        (*_COMMON_FIELDS, *_TYPE_FIELDS[kind]),
        hint=f"a {kind} alert takes: {RULE_TYPES[kind]}; and {', '.join(_COMMON_FIELDS[1:])}",
    )

    def num(key: str, **bounds: float) -> float | None:
        item = _present(fields, key)
        return item.number(**bounds) if item else None

    metric: str | None = None
    low = high = max_drop = max_rel = None
    direction = "higher"
    if kind in ("drift_share", "prediction_drift"):
        high = _need(node, fields, "max").number(minimum=0.0, maximum=1.0 if kind == "drift_share" else None)
    elif kind == "metric_threshold":
        metric, _ = _metric(_need(node, fields, "metric"))
        low, high = num("min"), num("max")
        if low is None and high is None:
            node.fail("a metric_threshold alert needs 'min' (a floor) and/or 'max' (a ceiling)")
        if low is not None and high is not None and low > high:
            fields["max"].fail(f"max {high:g} is below min {low:g}")
    else:
        metric, known = _metric(_need(node, fields, "metric"))
        item = _present(fields, "direction")
        if item is None and known is None:
            node.fail(f"metric {metric!r} does not say its direction", hint="add direction: higher|lower")
        direction = item.choice(DIRECTIONS) if item else str(known)
        max_drop, max_rel = num("max_drop", minimum=0.0), num("max_relative_drop", minimum=0.0)
        if max_drop is None and max_rel is None:
            node.fail(
                "a metric_drop alert needs 'max_drop' (absolute) and/or 'max_relative_drop' (fraction)",
                hint="e.g. max_drop: 0.05 fires when the metric falls 0.05 below its promoted value",
            )

    name_node = _present(fields, "name")
    name = _text(name_node) if name_node else (f"{kind}:{metric}" if metric else kind)
    severity_node = _present(fields, "severity")
    models_node = _present(fields, "models")
    description = _present(fields, "description")
    clear_node = _present(fields, "clear_after")
    return AlertRule(
        name=name,
        type=kind,
        metric=metric,
        min=low,
        max=high,
        direction=direction,
        max_drop=max_drop,
        max_relative_drop=max_rel,
        window=_window(_present(fields, "window")),
        cooldown=_cooldown(_present(fields, "cooldown")),
        clear_after=clear_node.integer(minimum=1) if clear_node else DEFAULT_CLEAR_AFTER,
        severity=severity_node.choice(SEVERITIES) if severity_node else "warning",
        models=models_node.strings() if models_node else (),
        description=_text(description) if description else "",
    )


def _metric(item: Located) -> tuple[str, str | None]:
    """A metric name monitoring can compute (mlops_layer.metrics), and its direction."""
    from mlops_layer.errors import ConfigError
    from mlops_layer.metrics import resolve

    name = _text(item)
    try:
        return name, resolve(name).direction
    except ConfigError as exc:
        item.fail(exc.message, hint=exc.hint)


def _window(node: Located | None) -> Window:
    if node is None:
        return Window()
    fields = node.mapping()
    _check_fields(fields, ("breaches", "of"), hint="e.g. window: {breaches: 3, of: 5}")
    breaches_node = _need(node, fields, "breaches", hint="e.g. window: {breaches: 3, of: 5}")
    breaches = breaches_node.integer(minimum=1)
    of_node = _present(fields, "of")
    of = of_node.integer(minimum=1) if of_node else breaches
    if breaches > of:
        breaches_node.fail(f"{breaches} breaches cannot happen in a window of {of} batches", hint="breaches <= of")
    return Window(breaches=breaches, of=of)


_DURATION_UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}


def _cooldown(node: Located | None) -> Cooldown:
    if node is None:
        return Cooldown()
    fields = node.mapping()
    hint = "e.g. cooldown: {hours: 6} or cooldown: {batches: 10} (both: quiet until both have passed)"
    _check_fields(fields, (*_DURATION_UNITS, "batches"), hint=hint)
    seconds = 0.0
    for unit, factor in _DURATION_UNITS.items():
        item = _present(fields, unit)
        if item is not None:
            seconds += item.number(minimum=0.0) * factor
    batches_node = _present(fields, "batches")
    batches = batches_node.integer(minimum=0) if batches_node else 0
    if not fields:
        node.fail("an empty cooldown", hint=hint)
    return Cooldown(seconds=seconds, batches=batches)


# ---------------------------------------------------------------------------------------------------- batch points


@dataclass(frozen=True)
class BatchPoint:
    """What monitoring measured on one production batch, as a point in time.

    ``metrics`` are the evaluation metrics on the batch's labels (empty without labels); ``promoted`` the metrics
    the serving version was promoted on; ``signals`` other measurements (``drift_share``, ``prediction_drift``...);
    ``evidence`` links (``report``, ``run_id``, ``run_url``, ``batch``).
    """

    seq: int
    timestamp: datetime
    model: str
    version: str
    drift_share: float | None = None
    alias: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    promoted: Mapping[str, float] = field(default_factory=dict)
    signals: Mapping[str, float] = field(default_factory=dict)
    evidence: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    """One rule applied to one batch: ``breached`` True/False, or None when the batch does not show the signal."""

    rule: str
    signal: str
    breached: bool | None
    observed: float | None = None
    threshold: float | None = None
    by: float | None = None  # how far past the threshold (positive when breached)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "signal": self.signal,
            "breached": self.breached,
            "observed": self.observed,
            "threshold": self.threshold,
            "by": self.by,
            "message": self.message,
        }


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def assess(rule: AlertRule, point: BatchPoint) -> Assessment:
    """Whether ``point`` breaches ``rule``, with the observed value, the threshold and the margin."""
    if rule.type in ("drift_share", "prediction_drift"):
        label = "drift share" if rule.type == "drift_share" else "prediction drift"
        observed = _finite(point.drift_share if rule.type == "drift_share" else point.signals.get(rule.type))
        limit = float(rule.max if rule.max is not None else 0.0)
        if observed is None:
            return Assessment(rule.name, rule.signal, None, threshold=limit, message=f"no {label} measured")
        return _above(rule, label, observed, limit)
    metric = str(rule.metric)
    observed = _finite(point.metrics.get(metric))
    if observed is None:
        why = "no labels in this batch" if not point.metrics else f"metric {metric!r} was not computed"
        return Assessment(rule.name, rule.signal, None, message=why)
    if rule.type == "metric_threshold":
        if rule.min is not None and observed < rule.min:
            return Assessment(
                rule.name,
                rule.signal,
                True,
                observed,
                rule.min,
                rule.min - observed,
                f"{metric} {observed:.4g} below its floor {rule.min:.4g} by {rule.min - observed:.4g}",
            )
        if rule.max is not None and observed > rule.max:
            return _above(rule, metric, observed, rule.max)
        bound = rule.min if rule.min is not None else rule.max
        return Assessment(
            rule.name, rule.signal, False, observed, bound, None, f"{metric} {observed:.4g} within bounds"
        )
    promoted = _finite(point.promoted.get(metric))
    if promoted is None:
        return Assessment(
            rule.name,
            rule.signal,
            None,
            observed,
            message=f"v{point.version} has no promoted value of {metric!r} to compare with",
        )
    drop = promoted - observed if rule.direction == "higher" else observed - promoted
    allowances = []
    if rule.max_drop is not None:
        allowances.append(rule.max_drop)
    if rule.max_relative_drop is not None:
        allowances.append(rule.max_relative_drop * abs(promoted))
    allowed = min(allowances)
    floor = promoted - allowed if rule.direction == "higher" else promoted + allowed
    if drop > allowed:
        return Assessment(
            rule.name,
            rule.signal,
            True,
            observed,
            floor,
            drop - allowed,
            f"{metric} {observed:.4g} is {drop:.4g} worse than its promoted value {promoted:.4g} "
            f"(allowed {allowed:.4g}; past the limit {floor:.4g} by {drop - allowed:.4g})",
        )
    return Assessment(
        rule.name,
        rule.signal,
        False,
        observed,
        floor,
        None,
        f"{metric} {observed:.4g} within {allowed:.4g} of its promoted value {promoted:.4g}",
    )


def _above(rule: AlertRule, label: str, observed: float, limit: float) -> Assessment:
    if observed > limit:
        return Assessment(
            rule.name,
            rule.signal,
            True,
            observed,
            limit,
            observed - limit,
            f"{label} {observed:.4g} above {limit:.4g} by {observed - limit:.4g}",
        )
    return Assessment(
        rule.name, rule.signal, False, observed, limit, None, f"{label} {observed:.4g} within {limit:.4g}"
    )


# ---------------------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class AlertEvent:
    """An alert fired or cleared: which model and version, which rule, what breached and by how much, evidence."""

    kind: str  # "fired" | "cleared"
    alert_id: str
    model: str
    version: str
    rule: str
    rule_type: str
    severity: str
    signal: str
    observed: float | None
    threshold: float | None
    by: float | None
    message: str
    window: str
    breaches: int
    batch_seq: int
    timestamp: str
    fired_seq: int
    evidence: Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        verb = "ALERT" if self.kind == FIRED else "RESOLVED"
        return f"[{verb}] {self.model} v{self.version}: {self.rule} ({self.severity})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "alert_id": self.alert_id,
            "model": self.model,
            "version": self.version,
            "rule": self.rule,
            "rule_type": self.rule_type,
            "severity": self.severity,
            "signal": self.signal,
            "observed": self.observed,
            "threshold": self.threshold,
            "by": self.by,
            "message": self.message,
            "window": self.window,
            "breaches": self.breaches,
            "batch_seq": self.batch_seq,
            "timestamp": self.timestamp,
            "fired_seq": self.fired_seq,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        return cls(**{**data, "evidence": dict(data.get("evidence") or {})})


# ----------------------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class RuleState:
    """Where one rule stands for one model."""

    status: str = CLOSED
    window: tuple[bool, ...] = ()  # outcomes of the last observed batches, oldest first
    window_version: str | None = None
    healthy_streak: int = 0
    fired_seq: int | None = None
    fired_at: str | None = None
    alert_id: str | None = None
    fired_version: str | None = None
    suppressed: int = 0
    last: dict[str, Any] | None = None  # the last assessment (for status displays)
    fired_alias: str | None = None  # the alias monitored when it fired (None: monitored by version)
    acked_by: str | None = None
    acked_at: str | None = None
    ack_comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "window": list(self.window),
            "window_version": self.window_version,
            "healthy_streak": self.healthy_streak,
            "fired_seq": self.fired_seq,
            "fired_at": self.fired_at,
            "alert_id": self.alert_id,
            "fired_version": self.fired_version,
            "suppressed": self.suppressed,
            "last": self.last,
            "fired_alias": self.fired_alias,
            "acked_by": self.acked_by,
            "acked_at": self.acked_at,
            "ack_comment": self.ack_comment,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleState:
        return cls(
            status=str(data.get("status", CLOSED)),
            window=tuple(bool(x) for x in data.get("window") or ()),
            window_version=data.get("window_version"),
            healthy_streak=int(data.get("healthy_streak", 0)),
            fired_seq=data.get("fired_seq"),
            fired_at=data.get("fired_at"),
            alert_id=data.get("alert_id"),
            fired_version=data.get("fired_version"),
            suppressed=int(data.get("suppressed", 0)),
            last=data.get("last"),
            fired_alias=data.get("fired_alias"),
            acked_by=data.get("acked_by"),
            acked_at=data.get("acked_at"),
            ack_comment=str(data.get("ack_comment") or ""),
        )


@dataclass(frozen=True)
class AlertState:
    """Alert state of one model: the last batch processed and one :class:`RuleState` per rule name."""

    model: str
    last_seq: int = 0
    rules: Mapping[str, RuleState] = field(default_factory=dict)
    runs: Mapping[str, str] = field(default_factory=dict)  # serving version -> its MLflow monitoring run id

    def open_alerts(self) -> list[str]:
        return sorted(name for name, st in self.rules.items() if st.status == OPEN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "model": self.model,
            "last_seq": self.last_seq,
            "rules": {name: st.to_dict() for name, st in sorted(self.rules.items())},
            "runs": dict(sorted(self.runs.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        return cls(
            model=str(data["model"]),
            last_seq=int(data.get("last_seq", 0)),
            rules={str(k): RuleState.from_dict(v) for k, v in (data.get("rules") or {}).items()},
            runs={str(k): str(v) for k, v in (data.get("runs") or {}).items()},
        )


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat(timespec="seconds")


def _in_cooldown(rule: AlertRule, st: RuleState, point: BatchPoint) -> bool:
    if not rule.cooldown.active or st.fired_seq is None:
        return False
    quiet = False
    if rule.cooldown.batches and point.seq - st.fired_seq < rule.cooldown.batches:
        quiet = True
    if rule.cooldown.seconds and st.fired_at is not None:
        elapsed = (_aware(point.timestamp) - datetime.fromisoformat(st.fired_at)).total_seconds()
        if elapsed < rule.cooldown.seconds:
            quiet = True
    return quiet


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)


def _event(kind: str, rule: AlertRule, st: RuleState, point: BatchPoint, a: Assessment) -> AlertEvent:
    fired_seq = st.fired_seq if st.fired_seq is not None else point.seq
    return AlertEvent(
        kind=kind,
        alert_id=st.alert_id or f"{point.model}:{rule.name}:{fired_seq}",
        model=point.model,
        version=point.version,
        rule=rule.name,
        rule_type=rule.type,
        severity=rule.severity,
        signal=rule.signal,
        observed=a.observed,
        threshold=a.threshold,
        by=a.by,
        message=a.message
        if kind == FIRED
        else f"{a.message}; {st.healthy_streak} healthy batch(es) in a row since it fired",
        window=rule.window.describe(),
        breaches=sum(st.window),
        batch_seq=point.seq,
        timestamp=_iso(point.timestamp),
        fired_seq=fired_seq,
        evidence=dict(point.evidence),
    )


def step_rule(rule: AlertRule, st: RuleState, point: BatchPoint) -> tuple[RuleState, AlertEvent | None]:
    """Advance one rule by one batch: the heart of the state machine (see the module docstring)."""
    a = assess(rule, point)
    last = {**a.to_dict(), "batch_seq": point.seq}
    if a.breached is None:
        return replace(st, last=last), None
    window = st.window if st.window_version == point.version else ()
    window = (*window, a.breached)[-rule.window.of :]
    st = replace(st, window=window, window_version=point.version, last=last)
    if st.status == OPEN:
        streak = 0 if a.breached else st.healthy_streak + 1
        st = replace(st, healthy_streak=streak)
        if streak >= rule.clear_after:
            event = _event(CLEARED, rule, st, point, a)
            return _closed(st), event
        return st, None
    if not a.breached or sum(window) < rule.window.breaches:
        return st, None
    if _in_cooldown(rule, st, point):
        return replace(st, suppressed=st.suppressed + 1), None
    st = replace(
        st,
        status=OPEN,
        healthy_streak=0,
        fired_seq=point.seq,
        fired_at=_iso(point.timestamp),
        alert_id=f"{point.model}:{rule.name}:{point.seq}",
        fired_version=point.version,
        fired_alias=point.alias,
        acked_by=None,
        acked_at=None,
        ack_comment="",
    )
    return st, _event(FIRED, rule, st, point, a)


def _closed(st: RuleState) -> RuleState:
    """The rule's state once its alert has closed (cleared, superseded or resolved): the window starts afresh."""
    return replace(
        st, status=CLOSED, healthy_streak=0, window=(), alert_id=None, acked_by=None, acked_at=None, ack_comment=""
    )


def _superseded(st: RuleState, point: BatchPoint) -> bool:
    """The open alert was raised on the alias this batch monitors, for a version that no longer holds it."""
    return (
        st.status == OPEN
        and point.alias is not None
        and st.fired_alias == point.alias
        and st.fired_version is not None
        and st.fired_version != point.version
    )


def _lifecycle_event(
    kind: str,
    model: str,
    rule_name: str,
    st: RuleState,
    *,
    at: datetime,
    message: str,
    batch_seq: int,
    rule: AlertRule | None = None,
    evidence: Mapping[str, str] | None = None,
) -> AlertEvent:
    """An event about an existing alert that no batch assessment caused: superseded, acknowledged, resolved."""
    last = st.last or {}
    return AlertEvent(
        kind=kind,
        alert_id=st.alert_id or f"{model}:{rule_name}:{st.fired_seq}",
        model=model,
        version=st.fired_version or "",
        rule=rule_name,
        rule_type=rule.type if rule is not None else "",
        severity=rule.severity if rule is not None else "",
        signal=rule.signal if rule is not None else str(last.get("signal") or ""),
        observed=last.get("observed"),
        threshold=last.get("threshold"),
        by=None,
        message=message,
        window=rule.window.describe() if rule is not None else "",
        breaches=sum(st.window),
        batch_seq=batch_seq,
        timestamp=_iso(at),
        fired_seq=st.fired_seq if st.fired_seq is not None else batch_seq,
        evidence=dict(evidence or {}),
    )


def _supersede_one(
    model: str,
    rule_name: str,
    st: RuleState,
    alias: str,
    version: str,
    *,
    at: datetime,
    batch_seq: int,
    rule: AlertRule | None = None,
) -> tuple[RuleState, AlertEvent]:
    message = (
        f"@{alias} moved from v{st.fired_version} to v{version}: the alert raised on v{st.fired_version} "
        "no longer applies to what serves"
    )
    event = _lifecycle_event(SUPERSEDED, model, rule_name, st, at=at, message=message, batch_seq=batch_seq, rule=rule)
    return _closed(st), event


def supersede(
    state: AlertState, alias: str, version: str, *, at: datetime, rules: Sequence[AlertRule] = ()
) -> tuple[AlertState, list[AlertEvent]]:
    """Close every open alert raised on ``alias`` for a version other than ``version`` (the alias moved).

    Called when the layer moves an alias (promotion, rollback); monitoring does the same on the next batch when the
    alias was moved some other way.
    """
    by_rule = {r.name: r for r in rules}
    events: list[AlertEvent] = []
    updated = dict(state.rules)
    for name, st in sorted(state.rules.items()):
        if st.status == OPEN and st.fired_alias == alias and st.fired_version not in (None, version):
            updated[name], event = _supersede_one(
                state.model, name, st, alias, version, at=at, batch_seq=state.last_seq, rule=by_rule.get(name)
            )
            events.append(event)
    return replace(state, rules=updated), events


def find_open_alert(state: AlertState, alert: str) -> tuple[str, RuleState]:
    """The open alert named by its rule (``drift_share``) or its id (``churn:drift_share:7``)."""
    from mlops_layer.errors import NotFoundError

    for name, st in sorted(state.rules.items()):
        if st.status == OPEN and alert in (name, st.alert_id):
            return name, st
    opened = [f"{n} ({st.alert_id})" for n, st in sorted(state.rules.items()) if st.status == OPEN]
    raise NotFoundError(
        f"{state.model} has no open alert {alert!r}",
        hint=f"open alerts: {', '.join(opened)}" if opened else "it has no open alert (see `mlops alerts status`)",
    )


def acknowledge(
    state: AlertState, alert: str, *, actor: str, comment: str, at: datetime, rules: Sequence[AlertRule] = ()
) -> tuple[AlertState, AlertEvent]:
    """Someone has seen the open alert and says what is being done: it stays open, marked with who, when, why."""
    name, st = find_open_alert(state, alert)
    st = replace(st, acked_by=actor, acked_at=_iso(at), ack_comment=comment)
    rule = next((r for r in rules if r.name == name), None)
    event = _lifecycle_event(
        ACKNOWLEDGED,
        state.model,
        name,
        st,
        at=at,
        batch_seq=state.last_seq,
        rule=rule,
        message=f"acknowledged by {actor}" + (f": {comment}" if comment else ""),
    )
    return replace(state, rules={**state.rules, name: st}), event


def resolve(
    state: AlertState, alert: str, *, actor: str, comment: str, at: datetime, rules: Sequence[AlertRule] = ()
) -> tuple[AlertState, AlertEvent]:
    """Someone closes the open alert now (the cause is fixed); its window starts afresh, so it may fire again."""
    name, st = find_open_alert(state, alert)
    rule = next((r for r in rules if r.name == name), None)
    event = _lifecycle_event(
        RESOLVED,
        state.model,
        name,
        st,
        at=at,
        batch_seq=state.last_seq,
        rule=rule,
        message=f"resolved by {actor}" + (f": {comment}" if comment else ""),
    )
    return replace(state, rules={**state.rules, name: _closed(st)}), event


def evaluate_alerts(
    rules: Sequence[AlertRule], points: Iterable[BatchPoint], state: AlertState
) -> tuple[AlertState, list[AlertEvent]]:
    """Run the alert state machine over the batch ``points`` newer than ``state.last_seq`` (in ``seq`` order).

    Returns the new state and the events in the order they happened. Idempotent: points already processed are
    skipped, so passing the whole history again yields no duplicate events. Rules no longer in ``rules`` are
    dropped from the state; rules that do not apply to the model are ignored.
    """
    active = [r for r in rules if r.applies_to(state.model)]
    by_name = {r.name: state.rules.get(r.name, RuleState()) for r in active}
    events: list[AlertEvent] = []
    last_seq = state.last_seq
    for point in sorted(points, key=lambda p: p.seq):
        if point.seq <= last_seq:
            continue
        if point.model != state.model:
            raise ValueError(f"batch point of model {point.model!r} given to the state of {state.model!r}")
        for rule in active:
            st = by_name[rule.name]
            if _superseded(st, point):
                st, closed = _supersede_one(
                    state.model,
                    rule.name,
                    st,
                    str(point.alias),
                    point.version,
                    at=point.timestamp,
                    batch_seq=point.seq,
                    rule=rule,
                )
                events.append(closed)
            by_name[rule.name], event = step_rule(rule, st, point)
            if event is not None:
                events.append(event)
        last_seq = point.seq
    return replace(state, last_seq=last_seq, rules=by_name), events


def alert_rules_from_document(document: PolicyDocument) -> list[AlertRule]:
    """The ``alerts:`` section of a policy document parsed once (no file or no section: no rules)."""
    return parse_alert_rules(document.section("alerts"), source=document.path)


def load_alert_rules(policy_file: Path) -> list[AlertRule]:
    """The ``alerts:`` section of ``governance/policy.yaml`` (no file or no section: no rules)."""
    return alert_rules_from_document(load_policy_document(policy_file, missing_ok=True))
