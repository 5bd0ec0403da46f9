"""Reconciliation: compare the registry's aliases and versions with the state the trail says they should have.

A change made behind the layer's back (an alias moved in the MLflow UI or by a bare client call, a version deleted)
shows up as a finding. A move that the trail decided but never recorded as done (a crash between the registry call
and the completion entry) is named as such, with the decision's sequence number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mlops_layer.audit import actions
from mlops_layer.audit.entry import AuditEntry
from mlops_layer.audit.history import expected_aliases, registered_versions

if TYPE_CHECKING:
    from mlops_layer.audit.store import AuditStore

ALIAS_MOVED = "alias_moved"
ALIAS_MISSING = "alias_missing"
ALIAS_UNEXPECTED = "alias_unexpected"
VERSION_MISSING = "version_missing"
MODEL_MISSING = "model_missing"
METRICS_CHANGED = "metrics_changed"


class RegistryView(Protocol):
    """What reconciliation needs from a model registry (the MLflow adapter implements it)."""

    def model_names(self) -> list[str]: ...

    def get_aliases(self, model: str) -> dict[str, str]: ...

    def list_versions(self, model: str) -> list[str]: ...


@dataclass(frozen=True)
class Finding:
    """One difference between the registry and the trail."""

    kind: str
    model: str
    message: str
    alias: str | None = None
    version: str | None = None
    expected: str | None = None
    actual: str | None = None
    pending_seq: int | None = None  # an allowed decision for this move that never completed (interrupted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "expected": self.expected,
            "actual": self.actual,
            "pending_seq": self.pending_seq,
            "message": self.message,
        }


@dataclass(frozen=True)
class ReconcileReport:
    """``mlops audit reconcile``: every finding, and the incident entries recorded for them (if asked)."""

    ok: bool
    findings: tuple[Finding, ...]
    models_checked: tuple[str, ...]
    incident_seqs: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "models_checked": list(self.models_checked),
            "incident_seqs": list(self.incident_seqs),
        }


def _pending_decisions(store: AuditStore) -> dict[tuple[str, str, str], int]:
    """Allowed alias decisions not followed by any alias event for that alias: (model, alias, version) -> seq."""
    pending: dict[tuple[str, str, str], int] = {}
    wanted = [*actions.ALIAS_DECISIONS, *actions.ALIAS_EVENTS]
    for entry in store.entries(action=wanted):
        model, alias = entry.model, entry.alias
        if not model or not alias:
            continue
        if entry.action in actions.ALIAS_EVENTS:
            for key in [k for k in pending if k[0] == model and k[1] == alias]:
                del pending[key]
        elif entry.decision == "allowed" and entry.version:
            pending[(model, alias, entry.version)] = entry.seq
    return pending


def reconcile(store: AuditStore, registry: RegistryView) -> ReconcileReport:
    """Compare ``registry`` with the trail; returns every finding (an empty tuple when they agree)."""
    expected = expected_aliases(store)
    registered = registered_versions(store)
    pending = _pending_decisions(store)
    present = set(registry.model_names())
    findings: list[Finding] = []
    models = sorted(present | set(expected) | set(registered))
    for model in models:
        if model not in present:
            findings.append(
                Finding(
                    MODEL_MISSING,
                    model,
                    f"model {model} is in the trail (aliases {sorted(expected.get(model, {}))}, versions "
                    f"{sorted(registered.get(model, set()), key=_vkey)}) but not in the registry: deleted outside "
                    "the layer",
                )
            )
            continue
        actual = registry.get_aliases(model)
        want = expected.get(model, {})
        for alias in sorted(set(actual) | set(want)):
            have, should = actual.get(alias), want.get(alias)
            if have == should:
                continue
            seq = pending.get((model, alias, have)) if have is not None else None
            tail = (
                f"; decision {seq} allowed this move but its completion was never recorded (interrupted)"
                if seq is not None
                else ""
            )
            if should is None:
                findings.append(
                    Finding(
                        ALIAS_UNEXPECTED,
                        model,
                        f"{model}@{alias} points to v{have} in the registry but the trail never set it{tail}",
                        alias=alias,
                        version=have,
                        actual=have,
                        pending_seq=seq,
                    )
                )
            elif have is None:
                findings.append(
                    Finding(
                        ALIAS_MISSING,
                        model,
                        f"{model}@{alias} should point to v{should} (per the trail) but is missing in the registry",
                        alias=alias,
                        version=should,
                        expected=should,
                    )
                )
            else:
                findings.append(
                    Finding(
                        ALIAS_MOVED,
                        model,
                        f"{model}@{alias} points to v{have} in the registry but the trail says v{should}{tail}",
                        alias=alias,
                        version=have,
                        expected=should,
                        actual=have,
                        pending_seq=seq,
                    )
                )
        versions = set(registry.list_versions(model))
        for version in sorted(registered.get(model, set()) - versions, key=_vkey):
            findings.append(
                Finding(
                    VERSION_MISSING,
                    model,
                    f"{model} v{version} was registered through the layer but is gone from the registry",
                    version=version,
                    expected=version,
                )
            )
    return ReconcileReport(ok=not findings, findings=tuple(findings), models_checked=tuple(models))


def metric_findings(
    frozen: dict[tuple[str, str], dict[str, float]], live: dict[tuple[str, str], dict[str, float]]
) -> list[Finding]:
    """Versions whose run metrics no longer match the snapshot frozen at registration (the rules read the snapshot;
    a change says someone logged on a registered version's run afterwards)."""
    findings = []
    for (model, version), snapshot in sorted(frozen.items()):
        now = live.get((model, version))
        if now is None:
            continue
        changed = sorted(k for k in set(snapshot) | set(now) if snapshot.get(k) != now.get(k))
        if changed:
            shown = ", ".join(f"{k} {snapshot.get(k)} -> {now.get(k)}" for k in changed[:5])
            findings.append(
                Finding(
                    METRICS_CHANGED,
                    model,
                    f"{model} v{version}: run metrics changed after registration ({shown}); the rules keep "
                    "reading the snapshot frozen at registration",
                    version=version,
                )
            )
    return findings


INCIDENT_SCHEMA = "mlops.incident/v1"


def incident_statement(finding: Finding, signer: str, timestamp: str) -> dict[str, Any]:
    """What a signed incident vouches for: this alias was found holding ``actual`` where the trail said
    ``expected``, acknowledged by ``signer`` at ``timestamp``."""
    return {
        "schema": INCIDENT_SCHEMA,
        "model": finding.model,
        "alias": finding.alias,
        "kind": finding.kind,
        "expected": finding.expected,
        "actual": finding.actual,
        "signer": signer,
        "timestamp": timestamp,
    }


def record_incidents(
    store: AuditStore,
    findings: Sequence[Finding],
    actor: str,
    sign: Callable[[dict[str, Any]], tuple[dict[str, Any], str]] | None = None,
) -> tuple[AuditEntry, ...]:
    """Append one ``reconcile.incident`` entry per finding; ``sign`` (statement -> (statement, signature)) makes
    each a signed acknowledgement, the only kind the promotion gate accepts."""
    out = []
    for f in findings:
        details: dict[str, Any] = {
            "kind": f.kind,
            "expected": f.expected,
            "actual": f.actual,
            "pending_seq": f.pending_seq,
        }
        if sign is not None and f.alias:
            statement, signature = sign(incident_statement(f, actor, ""))
            details.update(statement=statement, signature=signature)
            actor = str(statement["signer"])
        out.append(
            store.append(
                actions.RECONCILE_INCIDENT,
                actor=actor,
                subject={"model": f.model, "alias": f.alias, "version": f.version},
                decision="finding",
                reasons=[f.message],
                details=details,
            )
        )
    return tuple(out)


def _vkey(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
