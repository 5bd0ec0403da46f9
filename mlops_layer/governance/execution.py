"""The governed move: the built-in checks (model files, registry agrees with the trail), the decision audited before
the registry moves under the alias's lock, the completion entry, the decision mirrored as version tags, and rollback
to the previous holder."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from mlops_layer import tags
from mlops_layer.audit.actions import ALIAS_SET, PROMOTION_DECIDED, ROLLBACK_DECIDED
from mlops_layer.errors import MlopsError
from mlops_layer.governance.approvals import check_approvals, format_time
from mlops_layer.governance.candidates import CandidateBuilding
from mlops_layer.governance.context import AliasHold, Candidate, PromotionContext
from mlops_layer.governance.decisions import Decision, RuleResult
from mlops_layer.governance.ports import AliasRecord, LockFactory, PromotionResult, RegistryPort
from mlops_layer.governance.rules_approvals import evaluate_approvals
from mlops_layer.tags import mirror

TAG_POLICY_HASH = tags.POLICY_HASH
decision_tag = tags.decision_tag
approvals_tag = tags.approvals_tag


def approvals_tag_value(standing: Mapping[str, str]) -> str:
    """``alice@example.com:approve,dan@example.com:reject`` (verified, counting statements only), or ``none``."""
    return ",".join(f"{who}:{what}" for who, what in sorted(standing.items())) or "none"


class Execution(CandidateBuilding):
    """The checks, moves and rollback of :class:`~mlops_layer.governance.promotion.Governance` (its fields, below)."""

    registry: RegistryPort
    locks: LockFactory
    clock: Callable[[], datetime]
    before_move: Callable[[], None] | None
    decision_details: Mapping[str, Any]
    file_check: Callable[[str, Mapping[str, str]], list[str]] | None
    provenance: Mapping[str, Any] | None
    warnings: tuple[str, ...]

    def model_files(self, cand: Candidate) -> RuleResult:
        """The candidate's files must still be the bytes fixed at registration (and bound by the approvals)."""
        if cand.files_problem:
            return RuleResult("model_files", False, None, "server-computed digests", cand.files_problem, "builtin")
        if cand.artifacts is None and self.file_check is None:
            # the governing server holds no model files: it decides on what it recorded, clients verify on load
            return RuleResult("model_files", True, "not checked", "recorded digests", "files not held here", "builtin")
        if cand.artifacts is None:
            return RuleResult(
                "model_files",
                False,
                None,
                "sha256 digests recorded at registration",
                f"version {cand.version} has no file digests recorded at registration, so its bytes cannot be "
                "bound; register it through the layer (or `mlops migrate` for versions registered before)",
                "builtin",
            )
        if self.file_check is None:
            return RuleResult("model_files", True, "not checked", "recorded digests", "digests recorded", "builtin")
        assert cand.artifacts is not None
        changed = self.file_check(cand.source, cand.artifacts)
        if changed:
            return RuleResult(
                "model_files",
                False,
                {"changed": changed},
                "the files recorded at registration",
                f"the model files changed since registration: {', '.join(changed[:8])}; restore them or register "
                "a new version",
                "builtin",
            )
        return RuleResult(
            "model_files", True, {"changed": []}, "the files recorded at registration", "files unchanged", "builtin"
        )

    def registry_matches_trail(self, name: str, alias: str, registry_holder: str | None) -> RuleResult:
        """The alias must hold what the audit trail says it should: anything else was moved behind our back."""
        record = self.trail.alias_record(name, alias)
        if record.tracked and record.version != registry_holder:
            # A promotion of this alias moves the registry and then records the move, both under the alias's lock:
            # a disagreement seen without the lock may be one in flight. Look again once it has finished.
            with self.locks(name, alias):
                forget = getattr(self.trail, "forget", None)
                if forget is not None:
                    forget(name)
                record = self.trail.alias_record(name, alias)
                if self.registry.get_aliases(name).get(alias) == record.version:
                    registry_holder = record.version
        expected = record.version if record.tracked else "(not yet governed)"
        if not record.tracked:
            msg = f"'{alias}' has no history in the audit trail yet: starting from {_v(registry_holder)}"
            return RuleResult("registry_matches_trail", True, registry_holder, expected, msg, "builtin")
        if record.version == registry_holder:
            return RuleResult(
                "registry_matches_trail",
                True,
                registry_holder,
                expected,
                "the registry agrees with the audit trail",
                "builtin",
            )
        if record.incident_seq is not None and record.incident_actual == registry_holder:
            signer, why = self._incident_signer(name, alias, record)
            if signer is None:
                return RuleResult(
                    "registry_matches_trail",
                    False,
                    registry_holder,
                    record.version,
                    f"{name}@{alias} was moved to {_v(registry_holder)} behind the layer's back; incident "
                    f"#{record.incident_seq} acknowledges it but {why}: record it again signed by an approver "
                    "(`mlops audit reconcile --record-incident --key KEY`)",
                    "builtin",
                )
            return RuleResult(
                "registry_matches_trail",
                True,
                registry_holder,
                expected,
                f"{name}@{alias} was moved to {_v(registry_holder)} behind the layer's back (the trail says "
                f"{_v(record.version)}); recorded as incident #{record.incident_seq} signed by {signer}, so "
                "governance resumes from it",
                "builtin",
            )
        return RuleResult(
            "registry_matches_trail",
            False,
            registry_holder,
            record.version,
            f"the registry says {name}@{alias} -> {_v(registry_holder)} but the audit trail says "
            f"{_v(record.version)} (seq {record.seq}): the alias was moved behind the layer's back; "
            "put it back, or record the incident (`mlops audit reconcile --record-incident`) before promoting",
            "builtin",
        )

    def _incident_signer(self, name: str, alias: str, record: AliasRecord) -> tuple[str | None, str]:
        """Who signed the incident (an approver, verified against the committed signers), or None and why not."""
        import rfc8785

        from mlops_layer.governance.approvals import NAMESPACE

        details = record.incident_details or {}
        statement, signature = details.get("statement"), details.get("signature")
        if not isinstance(statement, dict) or not signature:
            return None, "it is unsigned (anyone can append a claim)"
        if (statement.get("model"), statement.get("alias"), statement.get("actual")) != (
            name,
            alias,
            record.incident_actual,
        ):
            return None, "its signed statement is about another alias or holder"
        claimed = str(statement.get("signer") or "")
        try:
            principal = self.verifier(
                bytes(rfc8785.dumps(statement)), str(signature), self.allowed_signers, NAMESPACE, claimed
            )
        except MlopsError as exc:
            return None, f"its signature does not verify ({exc.message})"
        if not self.policy.roles_of(principal):
            return None, f"{principal} holds no role in the policy"
        return principal, ""

    def _execute(
        self, decision: Decision, cand: Candidate, snapshot: str | None, *, version_to_set: str
    ) -> PromotionResult:
        name, target = decision.model, decision.target
        if not decision.allowed:
            seq = self._record_decision(decision, cand)
            result = PromotionResult(decision.with_audit_seq(seq), False, snapshot, snapshot, seq)
            return self._mirror(result)
        if self.before_move is not None:
            self.before_move()
        with self.locks(name, target):
            now_holder = self.registry.get_aliases(name).get(target)
            if now_holder != snapshot:
                decision = decision.with_rule(
                    RuleResult(
                        "holder_unchanged",
                        False,
                        now_holder,
                        snapshot,
                        f"{name}@{target} moved from {_v(snapshot)} to {_v(now_holder)} after the policy was "
                        "evaluated (a concurrent promotion, or a change behind the layer's back); "
                        "check again and retry",
                        "builtin",
                    )
                )
                seq = self._record_decision(decision, cand)
                return self._mirror(PromotionResult(decision.with_audit_seq(seq), False, now_holder, now_holder, seq))
            decision = decision.with_rule(
                RuleResult(
                    "holder_unchanged",
                    True,
                    now_holder,
                    snapshot,
                    "the alias did not move since the policy was evaluated",
                    "builtin",
                )
            )
            seq = self._record_decision(decision, cand)
            decision = decision.with_audit_seq(seq)
            if now_holder == version_to_set:
                return self._mirror(PromotionResult(decision, False, now_holder, now_holder, seq))
            self.registry.set_alias(name, target, version_to_set)
            done = self.trail.record(
                ALIAS_SET,
                subject={"model": name, "version": version_to_set, "alias": target},
                run_id=cand.run_id,
                details={
                    "previous": now_holder,
                    "via": decision.action,
                    "decision_seq": seq,
                    "action": decision.action,
                    "policy_hash": decision.policy_hash,
                },
            )
        return self._mirror(PromotionResult(decision, True, now_holder, version_to_set, seq, done))

    def _record_decision(self, decision: Decision, cand: Candidate) -> int:
        return self.trail.record(
            ROLLBACK_DECIDED if decision.action == "rollback" else PROMOTION_DECIDED,
            subject={"model": decision.model, "version": decision.version, "alias": decision.target},
            run_id=cand.run_id,
            decision={"allowed": decision.allowed, "reasons": decision.reasons()},
            details={
                "action": decision.action,
                "policy_hash": decision.policy_hash,
                "card_hash": decision.card_hash,
                "current_holder": decision.current_holder,
                "rules": [r.to_dict() for r in decision.rules],
                **self.decision_details,
                "digest": cand.digest,
                "governance": {**(self.provenance or {}), "card_blob": decision.card_hash},
            },
        )

    def _mirror(self, result: PromotionResult) -> PromotionResult:
        """Governance state as MLflow version tags: visible in the UI; failures warn, they never undo governance."""
        d = result.decision
        approvals = next((r for r in d.rules if r.rule_type == "approvals"), None)
        tags: dict[str, str] = {decision_tag(d.target): d.summary_tag(), TAG_POLICY_HASH: d.policy_hash}
        if approvals is not None and isinstance(approvals.observed, dict):
            tags[approvals_tag(d.target)] = approvals_tag_value(
                {
                    **{p: "approve" for p in approvals.observed.get("approved_by", [])},
                    **{p: "reject" for p in approvals.observed.get("rejected_by", [])},
                }
            )
        failed = mirror(self.registry, d.model, d.version, tags, what="the decision tags")
        return replace(result, warnings=(*result.warnings, failed)) if failed else result

    # -- rollback ----------------------------------------------------------------------------------------------
    def rollback(self, name: str, target: str) -> PromotionResult:
        """Return ``target`` to the version that held it before its current holder (per the audit trail)."""
        aliases = self.registry.get_aliases(name)
        current = aliases.get(target)
        history = [h for h in self.trail.alias_history(name) if h.alias == target]
        previous = previous_holder(history, current)
        now = self.clock()
        rules = [self.registry_matches_trail(name, target, current)]
        if current is None:
            rules.append(RuleResult("has_holder", False, None, "a holder", f"{name}@{target} is not set", "builtin"))
        if previous is None:
            rules.append(
                RuleResult(
                    "previous_holder",
                    False,
                    None,
                    "a previous holder in the audit trail",
                    f"the audit trail has no earlier holder of '{target}' to roll back to",
                    "builtin",
                )
            )
            version = current or "-"
        else:
            version = previous
            rules.append(
                RuleResult(
                    "previous_holder",
                    True,
                    previous,
                    "a previous holder in the audit trail",
                    f"v{previous} held '{target}' before {_v(current)}",
                    "builtin",
                )
            )
        info = self.registry.get_version(name, version) if previous is not None else None
        target_policy = self.policy.target(name, target)
        cand = self.candidate(info) if info is not None else Candidate(model=name, version=version, run_id=None)
        if previous is not None:
            decided = self.trail.allowed_decision_seq(name, target, previous)
            rules.append(
                RuleResult(
                    "previous_holder_decided",
                    decided is not None,
                    decided,
                    f"an allowed decision that gave v{previous} '{target}'",
                    f"v{previous} got '{target}' by allowed decision {decided}"
                    if decided is not None
                    else f"no allowed promotion or rollback decision ever gave v{previous} '{target}': the trail's "
                    "history of it is a claim, not evidence; promote it under the policy instead",
                    "builtin",
                )
            )
            rules.append(self.model_files(cand))
        needed = target_policy.rollback.requires_approvals if target_policy else 0
        card, card_error = self.card_or_error(name)
        if needed and info is not None and target_policy is not None:
            checks = check_approvals(
                [a for a in self.trail.approvals(name, version, target) if a.statement.action == "rollback"],
                cand.identity,
                target,
                "rollback",
                self.allowed_signers,
                self.verifier,
                self.policy.roles_of,
            )
            # a rollback approval must be newer than the move it undoes, not than the version's creation
            last_move = max((h.since for h in history if h.until is None), default=None)
            ctx = PromotionContext(
                candidate=replace(cand, changed_at=last_move or cand.changed_at),
                target=target,
                approvals=checks,
                card=card,
                card_error=card_error,
                now=now,
                action="rollback",
            )
            roles = target_policy.rollback.roles or (card.approver_roles if card else ())
            passed, observed, expected, message = evaluate_approvals(
                needed, roles, ctx, exclude_registrant=False, exclude_trainer=False
            )
            rules.append(RuleResult("rollback_approvals", passed, observed, expected, message, "approvals"))
        decision = Decision(
            allowed=all(r.passed for r in rules),
            rules=tuple(rules),
            policy_hash=self.policy.policy_hash,
            model=name,
            version=version,
            target=target,
            card_hash=card.card_hash if card else None,
            action="rollback",
            auto_promote=False,
            evaluated_at=format_time(now),
            current_holder=current,
        )
        result = self._execute(decision, cand, current, version_to_set=version)
        return replace(result, warnings=(*self.warnings, *result.warnings))


def previous_holder(history: Sequence[AliasHold], current: str | None) -> str | None:
    """The version that held the alias just before the current holding began."""
    ordered = sorted(history, key=lambda h: h.since)
    if not ordered:
        return None
    # the last hold is the current one (if it matches); the one before it is what we go back to
    if ordered[-1].version == current:
        ordered = ordered[:-1]
    for hold in reversed(ordered):
        if hold.version != current:
            return hold.version
    return None


def _v(version: str | None) -> str:
    return f"v{version}" if version is not None else "(none)"
