"""Promotion and rollback as a governed transaction: evaluate, audit, lock, re-check, move, audit completion.

The flow works on two small ports — the registry (MLflow) and the governance view of the audit trail — so the core can
be tested with fakes and the api wires the real ones. Order matters: the decision is audited before the registry
moves; a crash in between leaves an audited decision without its completion entry, which reconciliation finds.

The ports live in ``ports``; building the candidate in ``candidates`` and the checks, the move and rollback in
``execution``, the two parts :class:`Governance` is made of.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from mlops_layer.governance.approvals import SignedApproval, Verifier, check_approvals, utc_now
from mlops_layer.governance.cards import ModelCard
from mlops_layer.governance.context import Holder, LineageStatus, PromotionContext
from mlops_layer.governance.decisions import Decision, RuleResult
from mlops_layer.governance.execution import Execution
from mlops_layer.governance.policy import DriftPassed, Evaluation, LineageClean, Policy
from mlops_layer.governance.ports import LockFactory, PromotionResult, RegistryPort, TrailPort
from mlops_layer.governance.rules import evaluate


# -- the flow --------------------------------------------------------------------------------------------------------
@dataclass
class Governance(Execution):
    """Everything a promotion needs, wired by the api (or by tests, with fakes)."""

    registry: RegistryPort
    trail: TrailPort
    policy: Policy
    load_card: Callable[[str], ModelCard]
    allowed_signers: Path
    verifier: Verifier
    locks: LockFactory
    # (version info, need data-in-remote, need lock-up-to-date) -> live lineage status; only called when a rule needs it
    lineage_probe: Callable[[Any, bool, bool], LineageStatus | None] | None = None
    clock: Callable[[], datetime] = utc_now
    # (model, candidate version, holder version, evaluation rules, card) -> {rule name: EvaluationOutcome}
    evaluator: Callable[[str, str, str | None, Sequence[Evaluation], ModelCard | None], Mapping[str, Any]] | None = None
    before_move: Callable[[], None] | None = None  # test hook: runs after evaluation, before taking the lock
    # recorded with every decision (the governing server adds the governance commit it read the files from)
    decision_details: Mapping[str, Any] = field(default_factory=dict)
    # (model source, recorded digests) -> the files that differ now; None: the bytes are not checked (core tests)
    file_check: Callable[[str, Mapping[str, str]], list[str]] | None = None
    # which governance the decision was judged under (commit, blob ids), recorded with every decision
    provenance: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()  # e.g. uncommitted governance edits that were ignored

    def context(self, name: str, version: str, target: str, *, action: str = "promote") -> PromotionContext:
        info = self.registry.get_version(name, version)
        aliases = self.registry.get_aliases(name)
        holder_version = aliases.get(target)
        # metrics come from the snapshot frozen at registration: a later log_metric on the run changes nothing
        cand = self.candidate(info)
        holder = None
        if holder_version is not None:
            if holder_version == cand.version:
                holder = Holder(version=holder_version, metrics=dict(cand.metrics), metrics_frozen=cand.metrics_frozen)
            else:
                h_record = self.trail.registration(name, holder_version)
                h_metrics = h_record.metrics if h_record is not None else None
                holder = Holder(
                    version=holder_version, metrics=dict(h_metrics or {}), metrics_frozen=h_metrics is not None
                )
        card, card_error = self.card_or_error(name)
        used_at = self.trail.last_set_seq(name, target, cand.version)
        checks = check_approvals(
            [
                a
                for a in self.trail.approvals(name, cand.version, target)
                if a.statement.action == action and not _used(a, used_at, self._reusable(name, target))
            ],
            cand.identity,
            target,
            action,
            self.allowed_signers,
            self.verifier,
            self.policy.roles_of,
        )
        lineage = None
        target_policy = self.policy.target(name, target)
        checks_needed = [r for r in (target_policy.rules if target_policy else ()) if isinstance(r, LineageClean)]
        if self.lineage_probe is not None and checks_needed:
            lineage = self.lineage_probe(
                info,
                any(r.require_data_in_remote for r in checks_needed),
                any(r.require_lock_up_to_date for r in checks_needed),
            )
        evaluations: Mapping[str, Any] = {}
        wanted = [r for r in (target_policy.rules if target_policy else ()) if isinstance(r, Evaluation)]
        if self.evaluator is not None and wanted:
            evaluations = self.evaluator(name, cand.version, holder_version, wanted, card)
        return PromotionContext(
            candidate=cand,
            target=target,
            holder=holder,
            history=tuple(self.trail.alias_history(name)),
            drift=self.trail.drift_status(name, cand.version),
            drift_datasets={
                d: self.trail.drift_status(name, cand.version, dataset=d)
                for d in {
                    r.dataset
                    for r in (target_policy.rules if target_policy else ())
                    if isinstance(r, DriftPassed) and r.dataset
                }
            },
            approvals=checks,
            card=card,
            card_error=card_error,
            lineage=lineage,
            now=self.clock(),
            action=action,
            evaluations=evaluations,
            used_approvals=used_at is not None and not self._reusable(name, target),
            identity_signed=self.policy.identity == "signed",
        )

    def _reusable(self, name: str, target: str) -> bool:
        target_policy = self.policy.target(name, target)
        return any(getattr(r, "reusable", False) for r in (target_policy.rules if target_policy else ()))

    # -- check -------------------------------------------------------------------------------------------------
    def check(self, name: str, version: str, target: str, *, automatic: bool = False) -> Decision:
        ctx = self.context(name, version, target)
        return self._decide(ctx, automatic=automatic)

    def _decide(self, ctx: PromotionContext, *, automatic: bool) -> Decision:
        holder = ctx.holder.version if ctx.holder else None
        extra = [
            self.registry_matches_trail(ctx.candidate.model, ctx.target, holder),
            self.model_files(ctx.candidate),
        ]
        if self.policy.identity == "signed":
            problems = ctx.candidate.identity_problems
            extra.append(
                RuleResult(
                    "identity_signed",
                    not problems,
                    {"trained_by": ctx.candidate.trained_by, "registered_by": ctx.candidate.registered_by},
                    "trainer and registrant proven by signatures (identity: signed)",
                    "; ".join(problems)
                    + (
                        "; train and register with a signing key (MLOPS_SIGNING_KEY or signing_key in mlops.yaml)"
                        if problems
                        else ""
                    )
                    or f"trained by {ctx.candidate.trained_by}, registered by {ctx.candidate.registered_by} (signed)",
                    "builtin",
                )
            )
        if automatic:
            target = self.policy.target(ctx.candidate.model, ctx.target)
            auto_ok = bool(target and target.auto_promote)
            extra.append(
                RuleResult(
                    "auto_promote",
                    auto_ok,
                    "automatic",
                    "auto_promote: true",
                    "the policy allows automatic promotion to this target"
                    if auto_ok
                    else f"'{ctx.target}' needs people: the policy does not set auto_promote: true",
                    "builtin",
                )
            )
        return evaluate(self.policy, ctx, extra=tuple(extra))

    # -- promote -----------------------------------------------------------------------------------------------
    def promote(self, name: str, version: str, target: str, *, automatic: bool = False) -> PromotionResult:
        ctx = self.context(name, version, target)
        decision = self._decide(ctx, automatic=automatic)
        snapshot = ctx.holder.version if ctx.holder else None
        result = self._execute(decision, ctx.candidate, snapshot, version_to_set=ctx.candidate.version)
        return replace(result, warnings=(*self.warnings, *result.warnings))


def _used(approval: SignedApproval, used_at: int | None, reusable: bool) -> bool:
    """An approval filed before the version last took the alias enabled that move: it is used up."""
    return not reusable and used_at is not None and approval.audit_seq is not None and approval.audit_seq < used_at
