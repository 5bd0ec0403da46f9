"""The governance view of the audit trail: approvals, alias history, drift verdicts and who registered a version.

Reads one model's entries in one query (cached for the life of the view) and writes governance entries through the
store's ``append``. Only the hashed body of each entry is trusted, never the store's index columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from mlops_layer.audit import actions
from mlops_layer.audit.acting import ActingTrail
from mlops_layer.audit.registrations import RegistrationRecord, registration_records
from mlops_layer.errors import MlopsError
from mlops_layer.governance.approvals import ApprovalStatement, SignedApproval
from mlops_layer.governance.context import AliasHold, DriftStatus
from mlops_layer.governance.ports import AliasRecord

_READ = (
    actions.ALIAS_SET,
    actions.ALIAS_DELETED,
    actions.APPROVAL_GRANTED,
    actions.APPROVAL_REJECTED,
    actions.APPROVAL_WITHDRAWN,
    actions.DRIFT_CHECKED,
    actions.MODEL_REGISTERED,
    actions.CARD_CHANGED,
    actions.RECONCILE_INCIDENT,
    actions.PROMOTION_DECIDED,
    actions.ROLLBACK_DECIDED,
    actions.MODEL_SNAPSHOT,
    actions.MONITOR_BATCH,
)
_APPROVAL_ACTIONS = {
    "approve": actions.APPROVAL_GRANTED,
    "reject": actions.APPROVAL_REJECTED,
    "withdraw": actions.APPROVAL_WITHDRAWN,
}
_PASSED = {"passed", "pass", "ok", "allowed", "no drift"}


class EntryView(Protocol):
    """What this view reads of an audit entry (``audit.entry.AuditEntry`` satisfies it)."""

    @property
    def seq(self) -> int: ...
    @property
    def action(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def subject(self) -> dict[str, str]: ...
    @property
    def decision(self) -> str | None: ...
    @property
    def details(self) -> dict[str, Any]: ...


class AuditTrailView(ActingTrail):
    """Implements the promotion flow's ``TrailPort`` over an ``AuditStore``."""

    def __init__(self, store: Any, actor: str) -> None:
        super().__init__(store, actor)
        self._cache: dict[str, list[EntryView]] = {}

    def _entries(self, model: str) -> list[EntryView]:
        if model not in self._cache:
            self._cache[model] = list(self.store.entries(model=model, action=_READ))
        return self._cache[model]

    def forget(self, model: str) -> None:
        """Drop what was read of ``model``'s entries: the next read sees what others appended since."""
        self._cache.pop(model, None)

    # -- writing -------------------------------------------------------------------------------------------------
    def record(
        self,
        action: str,
        *,
        subject: dict[str, str],
        run_id: str | None = None,
        decision: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        verdict = None
        reasons = None
        if decision is not None:
            verdict = "allowed" if decision.get("allowed") else "refused"
            reasons = [str(r) for r in decision.get("reasons", [])]
        seq = self.append(action, subject=subject, run_id=run_id, decision=verdict, reasons=reasons, details=details)
        self._cache.pop(subject.get("model", ""), None)
        return seq

    def record_approval(self, approval: SignedApproval) -> int:
        """Store a signed approval/rejection; the actor is the verified signer, the details the signed statement."""
        st = approval.statement
        body = approval.to_dict()
        body.pop("audit_seq", None)
        entry = self.store.append(
            _APPROVAL_ACTIONS.get(st.decision, actions.APPROVAL_GRANTED),
            actor=st.approver,
            subject={"model": st.model, "version": st.version, "alias": st.target},
            run_id=st.run_id,
            decision=st.decision,
            reasons=[st.comment] if st.comment else None,
            details=body,
        )
        self._cache.pop(st.model, None)
        return int(entry.seq)

    def last_policy_hash(self) -> str | None:
        last = None
        for e in self.store.entries(action=actions.POLICY_CHANGED):
            last = e.details.get("policy_hash")
        return str(last) if last else None

    # -- reading -------------------------------------------------------------------------------------------------
    def approvals(self, model: str, version: str, target: str) -> list[SignedApproval]:
        """Every approval/rejection filed for this version and alias, as stored (the flow verifies each)."""
        out: list[SignedApproval] = []
        for e in self._entries(model):
            if e.action not in _APPROVAL_ACTIONS.values():
                continue
            if e.subject.get("version") != version or e.subject.get("alias") != target:
                continue
            try:
                out.append(SignedApproval.from_dict(e.details, audit_seq=e.seq))
            except (MlopsError, TypeError, ValueError):
                # a malformed record is shown as what it is: an approval nobody signed
                statement = ApprovalStatement(
                    model=model,
                    version=version,
                    target=target,
                    decision={a: d for d, a in _APPROVAL_ACTIONS.items()}[e.action],
                    approver=e.actor,
                    timestamp=e.timestamp.isoformat(),
                    run_id=None,
                    source="",
                )
                out.append(SignedApproval(statement, "", e.seq))
        return out

    def alias_history(self, model: str) -> list[AliasHold]:
        """Every period an alias of ``model`` pointed at a version, from ALIAS_SET / ALIAS_DELETED entries."""
        holds: list[AliasHold] = []
        current: dict[str, AliasHold] = {}
        for e in self._entries(model):
            if e.action not in (actions.ALIAS_SET, actions.ALIAS_DELETED):
                continue
            alias = e.subject.get("alias")
            if not alias:
                continue
            if alias in current:
                old = current.pop(alias)
                holds.append(AliasHold(alias, old.version, old.since, e.timestamp))
            version = e.subject.get("version")
            if e.action == actions.ALIAS_SET and version:
                current[alias] = AliasHold(alias, version, e.timestamp)
        return holds + list(current.values())

    def alias_record(self, model: str, alias: str) -> AliasRecord:
        """The holder the trail expects, plus a reconciliation incident recorded since (if any)."""
        incident: EntryView | None = None
        for e in reversed(self._entries(model)):
            if e.subject.get("alias") != alias:
                continue
            if e.action == actions.RECONCILE_INCIDENT and incident is None:
                incident = e
            elif e.action in (actions.ALIAS_SET, actions.ALIAS_DELETED):
                version = e.subject.get("version") if e.action == actions.ALIAS_SET else None
                return AliasRecord(True, version, e.seq, *self._incident(incident))
        return AliasRecord(False, None, None, *self._incident(incident))

    @staticmethod
    def _incident(entry: EntryView | None) -> tuple[int | None, str | None, dict[str, Any] | None]:
        if entry is None:
            return None, None, None
        actual = entry.details.get("actual")
        return entry.seq, None if actual is None else str(actual), dict(entry.details)

    def drift_status(self, model: str, version: str, *, dataset: str | None = None) -> DriftStatus | None:
        """The latest drift check of the version *on production data*: a batch `mlops monitor` recorded for this
        model (any alias; matched by content hash) and that counts as evidence. Checks on other files are recorded
        but satisfy nothing: they are counted in ``ignored``. With ``dataset`` (a DVC path named by the policy), only
        checks of that file whose bytes had the md5 DVC recorded for it count. A check whose input could not be read
        (decision ``error``) is no verdict: it neither counts nor blocks."""
        production = {
            str(e.details.get("batch_sha256"))
            for e in self._entries(model)
            if e.action == actions.MONITOR_BATCH
            and e.decision != "rejected"
            and e.details.get("evidence", True) is not False
            and e.details.get("batch_sha256")
        }
        ignored = 0
        for e in reversed(self._entries(model)):
            if e.action != actions.DRIFT_CHECKED or e.subject.get("version") != version or e.decision == "error":
                continue
            details = e.details
            if dataset is not None:
                if details.get("dvc_path") != dataset or not details.get("dvc_md5"):
                    ignored += 1
                    continue
            else:
                digest = _content_hash(str(details.get("current") or ""))
                if digest is None or digest not in production:
                    ignored += 1
                    continue
            passed = details.get("passed")
            if not isinstance(passed, bool):
                passed = (e.decision or "").lower() in _PASSED
            summary = details.get("summary") or details.get("status") or e.decision or ""
            rows = details.get("n_current")
            return DriftStatus(
                passed=passed,
                checked_at=e.timestamp,
                detail=str(summary),
                audit_seq=e.seq,
                rows=int(rows) if isinstance(rows, int) else None,
                ignored=ignored,
            )
        return DriftStatus(passed=None, ignored=ignored) if ignored else None

    def registered_by(self, model: str, version: str) -> str | None:
        for e in self._entries(model):
            if e.action == actions.MODEL_REGISTERED and e.subject.get("version") == version:
                return e.actor
        return None

    def registration(self, model: str, version: str) -> RegistrationRecord | None:
        """What the first registration of the version fixed (digests, metrics snapshot), or None."""
        entries = [e for e in self._entries(model) if e.action in (actions.MODEL_REGISTERED, actions.MODEL_SNAPSHOT)]
        return registration_records(entries).get((model, str(version)))

    def last_set_seq(self, model: str, alias: str, version: str) -> int | None:
        """The seq of the latest completed move of ``alias`` to ``version`` (approvals before it are used up)."""
        for e in reversed(self._entries(model)):
            if (
                e.action == actions.ALIAS_SET
                and e.subject.get("alias") == alias
                and e.subject.get("version") == str(version)
            ):
                return e.seq
        return None

    def allowed_decision_seq(self, model: str, alias: str, version: str) -> int | None:
        """The latest allowed promotion/rollback decision that gave ``alias`` to ``version``, or None."""
        for e in reversed(self._entries(model)):
            if (
                e.action in (actions.PROMOTION_DECIDED, actions.ROLLBACK_DECIDED)
                and e.decision == "allowed"
                and e.subject.get("alias") == alias
                and e.subject.get("version") == str(version)
            ):
                return e.seq
        return None

    def last_card_hash(self, model: str) -> str | None:
        for e in reversed(self._entries(model)):
            if e.action == actions.CARD_CHANGED:
                value = e.details.get("card_hash")
                return str(value) if value else None
        return None


def _content_hash(current: str) -> str | None:
    """The sha256 hex of the checked file, from a drift entry's ``current`` ("name sha256:HEX")."""
    for token in current.split():
        if token.startswith("sha256:"):
            return token[len("sha256:") :]
    return None
