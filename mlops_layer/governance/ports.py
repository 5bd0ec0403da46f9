"""The ports the promotion flow works on — the registry (MLflow) and the governance view of the audit trail — with
what the trail says of an alias, what a promotion returns, and the per-alias locks that serialise promotions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_layer.audit.registrations import RegistrationRecord
from mlops_layer.governance.approvals import SignedApproval
from mlops_layer.governance.context import AliasHold, DriftStatus
from mlops_layer.governance.decisions import Decision
from mlops_layer.locks import file_lock, lock_path


# -- ports ----------------------------------------------------------------------------------------------------------
class RegistryPort(Protocol):
    """The registry as the flow uses it (``adapters.mlflow.MlflowRegistry`` satisfies it)."""

    def get_version(self, name: str, version: str | int) -> Any: ...
    def get_aliases(self, name: str) -> dict[str, str]: ...
    def set_alias(self, name: str, alias: str, version: str | int) -> None: ...
    def set_version_tags(self, name: str, version: str | int, tags: Mapping[str, Any]) -> None: ...
    def run_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]: ...


@dataclass(frozen=True)
class AliasRecord:
    """What the audit trail says about one alias: whether it tracks it at all, and the version it should hold.

    ``incident_seq``/``incident_actual``: a reconciliation incident recorded after the last alias event, naming the
    holder found in the registry (None: found unset). It acknowledges an out-of-band move so governance can resume.
    """

    tracked: bool
    version: str | None
    seq: int | None = None
    incident_seq: int | None = None
    incident_actual: str | None = None
    incident_details: Mapping[str, Any] | None = None  # the incident entry's details (statement, signature)


class TrailPort(Protocol):
    """The governance view of the audit trail."""

    def record(
        self,
        action: str,
        *,
        subject: dict[str, str],
        run_id: str | None = None,
        decision: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> int: ...

    def approvals(self, model: str, version: str, target: str) -> list[SignedApproval]: ...
    def alias_history(self, model: str) -> list[AliasHold]: ...
    def alias_record(self, model: str, alias: str) -> AliasRecord: ...
    def drift_status(self, model: str, version: str, *, dataset: str | None = None) -> DriftStatus | None: ...
    def registered_by(self, model: str, version: str) -> str | None: ...
    def registration(self, model: str, version: str) -> RegistrationRecord | None: ...
    def last_set_seq(self, model: str, alias: str, version: str) -> int | None: ...
    def allowed_decision_seq(self, model: str, alias: str, version: str) -> int | None: ...


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote``/``rollback`` did: the decision, whether the alias moved, and the audit entries."""

    decision: Decision
    moved: bool
    previous: str | None
    current: str | None
    audit_seq: int | None
    completion_seq: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    def to_dict(self) -> dict[str, Any]:
        body = self.decision.to_dict()
        body.update(
            audit_seq=self.audit_seq,
            moved=self.moved,
            previous=self.previous,
            current=self.current,
            completion_seq=self.completion_seq,
            warnings=list(self.warnings),
        )
        return body


# -- locking ---------------------------------------------------------------------------------------------------------
LockFactory = Callable[[str, str], "contextlib.AbstractContextManager[None]"]


def file_locks(state_dir: Path) -> LockFactory:
    """One machine-local lock per model+alias: promotions of the same alias are serialised."""

    def factory(model: str, alias: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(
            lock_path(state_dir, "promote", f"{model}@{alias}"),
            timeout=30.0,
            what=f"promotion of {model}@{alias}",
            hint="another promotion of this alias is running; wait for it to finish, then retry",
        )

    return factory
