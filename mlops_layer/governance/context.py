"""What a promotion decision is made on: the candidate, the current holder, alias history, drift and lineage status,
gathered into one :class:`PromotionContext` that the rule evaluators read (``governance.rules``).

Pure data: tests hand the rules fakes and the api fills them from MLflow and the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlops_layer.governance.approvals import ApprovalCheck, CandidateIdentity
from mlops_layer.governance.cards import ModelCard


@dataclass(frozen=True)
class Candidate:
    """The version asking for the alias."""

    model: str
    version: str
    run_id: str | None
    source: str = ""
    digest: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    registered_by: str | None = None
    trained_by: str | None = None
    created_at: datetime | None = None
    changed_at: datetime | None = None  # last change of what was approved (content, lineage); approvals must be newer
    other_identities: tuple[str, ...] = ()  # more names of the registrant/trainer (e.g. an edited tag's)
    metrics_frozen: bool = True  # False: registered before snapshots existed (metrics empty until `mlops migrate`)
    artifacts: Mapping[str, str] | None = None  # sha256 per file, fixed by the first registration
    identity_problems: tuple[str, ...] = ()  # why trainer/registrant are not proven (policy `identity: signed`)
    trained_via: str | None = None  # the service account the run was created under (trained_by: the person)
    also_trained_by: tuple[str, ...] = ()  # more people accountable for the training (excluded like trained_by)
    trainer_problem: str | None = None  # trained by a service account nobody signed for: nobody to exclude
    files_problem: str | None = None  # why the registration's digests cannot back a promotion (governance.digests)

    @property
    def identity(self) -> CandidateIdentity:
        return CandidateIdentity(self.model, self.version, self.run_id, self.source, self.digest)


@dataclass(frozen=True)
class Holder:
    """The version currently holding the target alias."""

    version: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_frozen: bool = True


@dataclass(frozen=True)
class AliasHold:
    """A period when ``version`` held ``alias`` (``until`` None: still holds it), from the audit trail."""

    alias: str
    version: str
    since: datetime
    until: datetime | None = None


@dataclass(frozen=True)
class DriftStatus:
    """The latest drift check of the candidate: ``passed`` True/False, or None when there was none."""

    passed: bool | None
    checked_at: datetime | None = None
    detail: str = ""
    audit_seq: int | None = None
    rows: int | None = None  # rows of the checked batch
    ignored: int = 0  # later checks that were not on production data (they satisfy nothing)


@dataclass(frozen=True)
class LineageStatus:
    """Whether the candidate's lineage is clean; None means the layer could not tell (fails the rule)."""

    committed: bool | None
    data_in_remote: bool | None
    lock_up_to_date: bool | None
    detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PromotionContext:
    candidate: Candidate
    target: str
    holder: Holder | None = None
    history: tuple[AliasHold, ...] = ()
    drift: DriftStatus | None = None
    # DVC path -> the latest check of that dataset, for ``drift_passed`` rules that name one
    drift_datasets: Mapping[str, DriftStatus | None] = field(default_factory=dict)
    approvals: tuple[ApprovalCheck, ...] = ()
    card: ModelCard | None = None
    card_error: str | None = None
    lineage: LineageStatus | None = None
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    action: str = "promote"
    # rule name -> mlops_layer.governance.evaluation.EvaluationOutcome, measured by the layer for `evaluation` rules
    evaluations: Mapping[str, Any] = field(default_factory=dict)
    used_approvals: bool = False  # approvals filed before the version's last move to this alias were left out
    identity_signed: bool = False  # trainer/registrant are signed principals (policy `identity: signed`)


Verdict = tuple[bool, Any, Any, str]


def _fmt(value: float) -> str:
    return f"{value:.6g}"
