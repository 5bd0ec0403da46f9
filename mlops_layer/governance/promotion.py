"""Promotion and rollback as a governed transaction: evaluate, audit, lock, re-check, move, audit completion.

The flow works on two small ports — the registry (MLflow) and the governance view of the audit trail — so the core can
be tested with fakes and the api wires the real ones. Order matters: the decision is audited before the registry
moves; a crash in between leaves an audited decision without its completion entry, which reconciliation finds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from mlops_layer import tags
from mlops_layer.audit.actions import ALIAS_SET, PROMOTION_DECIDED, ROLLBACK_DECIDED
from mlops_layer.audit.registrations import RegistrationRecord
from mlops_layer.errors import MlopsError
from mlops_layer.governance.approvals import (
    CandidateIdentity,
    SignedApproval,
    Verifier,
    check_approvals,
    format_time,
    utc_now,
)
from mlops_layer.governance.cards import ModelCard
from mlops_layer.governance.decisions import Decision, RuleResult
from mlops_layer.governance.digests import files_refusal
from mlops_layer.governance.policy import DriftPassed, Evaluation, LineageClean, Policy
from mlops_layer.governance.principals import Trainer
from mlops_layer.governance.rules import (
    AliasHold,
    Candidate,
    DriftStatus,
    Holder,
    LineageStatus,
    PromotionContext,
    evaluate,
    evaluate_approvals,
)
from mlops_layer.locks import file_lock, lock_path
from mlops_layer.tags import mirror

TAG_REGISTERED_BY = tags.REGISTERED_BY
TAG_TRAINED_BY = tags.TRAINED_BY
TAG_TRAINED_VIA = tags.TRAINED_VIA
TAG_DIGEST = tags.DIGEST
TAG_POLICY_HASH = tags.POLICY_HASH
decision_tag = tags.decision_tag
approvals_tag = tags.approvals_tag


def approvals_tag_value(standing: Mapping[str, str]) -> str:
    """``alice@example.com:approve,dan@example.com:reject`` (verified, counting statements only), or ``none``."""
    return ",".join(f"{who}:{what}" for who, what in sorted(standing.items())) or "none"


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
    def drift_status(
        self, model: str, version: str, *, dataset: str | None = None, md5: str | None = None
    ) -> DriftStatus | None: ...
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


# -- the flow --------------------------------------------------------------------------------------------------------
@dataclass
class Governance:
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
    # DVC path a drift_passed rule names -> the md5 DVC records for it at the governance commit (ConfigError: not
    # tracked there); None: any recorded md5 counts (core tests)
    dataset_md5: Callable[[str], str] | None = None

    # -- context ---------------------------------------------------------------------------------------------
    def candidate(self, info: Any, metrics: Mapping[str, float] | None = None) -> Candidate:
        tags = dict(info.tags)
        trail_registrant = self.trail.registered_by(info.name, info.version)
        tag_registrant = tags.get(TAG_REGISTERED_BY) or None
        record = self.trail.registration(info.name, str(info.version))
        identity = bound_identity(info, record)
        frozen = record.metrics if record is not None else None
        if metrics is None:
            metrics = frozen or {}
        trained_by = tags.get(TAG_TRAINED_BY) or None
        registered_by = trail_registrant or tag_registrant
        others = tuple(x for x in (tag_registrant,) if x and x != registered_by)
        problems: tuple[str, ...] = ()
        if self.policy.identity == "signed":
            # compare signed principals; the declared names stay excluded too (a cheap extra, never a weaker check)
            trainer, registrant, problems = self._signed_identities(identity, record)
            others = tuple(x for x in (*others, trained_by, registered_by) if x)
            trained_by, registered_by = trainer, registrant
        accountable = self._accountable_trainer(info, tags, trained_by)
        # everyone accountable for the training stays excluded (and so does a recorded trainer it replaced)
        also = tuple(
            dict.fromkeys(
                x for x in (*accountable.also, trained_by) if x and x not in (accountable.principal, accountable.via)
            )
        )
        trained_by = accountable.principal
        return Candidate(
            model=identity.model,
            version=identity.version,
            run_id=identity.run_id,
            source=identity.source,
            digest=identity.digest,
            metrics=dict(metrics),
            tags=tags,
            # the trail is append-only, a version tag anyone can edit: prefer the trail, exclude both
            registered_by=registered_by,
            trained_by=trained_by,
            created_at=info.creation_time,
            changed_at=info.creation_time,
            other_identities=others,
            metrics_frozen=frozen is not None,
            identity_problems=problems,
            trained_via=accountable.via,
            also_trained_by=also,
            trainer_problem=accountable.problem,
            artifacts=dict(record.artifacts) if record is not None and record.artifacts else None,
            files_problem=files_refusal(record),
        )

    def _accountable_trainer(self, info: Any, tags: Mapping[str, str], trained_by: str | None) -> Trainer:
        """The person accountable for the training: a service account's run is the signer's of a committed
        training statement (on the model card); the account stays excluded from approving too."""
        from mlops_layer.governance.principals import resolve_trainer

        # the governing server records the account a person's training ran under; a signed trainer proof is stronger
        recorded_via = tags.get(TAG_TRAINED_VIA) or None
        raw = trained_by if self.policy.identity == "signed" else (recorded_via or trained_by)
        statements: tuple[Mapping[str, Any], ...] = ()
        if self.policy.principals.is_service_account(raw):
            with contextlib.suppress(MlopsError):
                statements = self.load_card(info.name).training_statements
        found = resolve_trainer(
            raw,
            info.name,
            self.policy.principals,
            statements,
            self.allowed_signers,
            self.verifier,
            info.creation_time,
        )
        via = found.via or recorded_via
        return replace(found, via=via) if via != found.via else found

    def _signed_identities(
        self, identity: CandidateIdentity, record: RegistrationRecord | None
    ) -> tuple[str | None, str | None, tuple[str, ...]]:
        """The trainer and registrant as their signatures prove them (policy ``identity: signed``), and problems."""
        from mlops_layer.governance.identity import REGISTRATION_NAMESPACE, TRAINING_NAMESPACE, verified_identity

        if record is None:
            return None, None, ("the version has no registration entry, so nobody's signature says who made it",)
        trainer, why_t = verified_identity(
            record.trainer_proof,
            TRAINING_NAMESPACE,
            {"role": "trainer", "run_id": identity.run_id, "service_account": None},
            self.allowed_signers,
            self.verifier,
        )
        registrant, why_r = verified_identity(
            record.registrant_proof,
            REGISTRATION_NAMESPACE,
            {"role": "registrant", "model": identity.model, "run_id": identity.run_id, "digest": identity.digest},
            self.allowed_signers,
            self.verifier,
        )
        problems = tuple(
            f"the {what} is not proven by a signature ({why})"
            for what, who, why in (("trainer", trainer, why_t), ("registrant", registrant, why_r))
            if who is None
        )
        return trainer, registrant, problems

    def card_or_error(self, model: str) -> tuple[ModelCard | None, str | None]:
        try:
            return self.load_card(model), None
        except MlopsError as exc:
            return None, exc.message

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
                d: self.trail.drift_status(
                    name, cand.version, dataset=d, md5=self.dataset_md5(d) if self.dataset_md5 else None
                )
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


def _used(approval: SignedApproval, used_at: int | None, reusable: bool) -> bool:
    """An approval filed before the version last took the alias enabled that move: it is used up."""
    return not reusable and used_at is not None and approval.audit_seq is not None and approval.audit_seq < used_at


def bound_identity(info: Any, record: RegistrationRecord | None) -> CandidateIdentity:
    """What approvals bind: the version and, when registration recorded them, the sha256 of its exact files."""
    base = identity_of(info)
    if record is None or not record.artifacts:
        return base
    return replace(base, digest=content_digest(record.artifacts))


def content_digest(digests: Mapping[str, str]) -> str:
    """One digest naming a model's exact files: sha256 over the sorted ``path<TAB>digest`` lines."""
    import hashlib

    lines = "".join(f"{p}\t{d}\n" for p, d in sorted(digests.items()))
    return "sha256:" + hashlib.sha256(lines.encode("utf-8")).hexdigest()


def identity_of(info: Any) -> CandidateIdentity:
    return CandidateIdentity(
        model=info.name,
        version=str(info.version),
        run_id=info.run_id,
        source=info.source or "",
        digest=getattr(info, "model_id", None) or dict(info.tags).get(TAG_DIGEST) or None,
    )
