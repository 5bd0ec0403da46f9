"""Governance through the facade: model cards, policy checks, approvals, promotion and rollback."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, MlopsError

if TYPE_CHECKING:
    from mlops_layer.governance.approvals import SignedApproval
    from mlops_layer.governance.cards import ModelCard
    from mlops_layer.governance.decisions import Decision
    from mlops_layer.governance.policy import Policy
    from mlops_layer.governance.ports import PromotionResult
    from mlops_layer.governance.promotion import Governance
    from mlops_layer.governance.trail import AuditTrailView


def card_show(name: str, *, settings: Settings | None = None) -> ModelCard:
    """The validated model card of ``name`` (``governance/models/NAME.yaml``) as a ``ModelCard``."""
    from mlops_layer.governance.cards import load_card

    return load_card(_wiring.resolve(settings).cards_dir, name)


def _record_card_change(trail: AuditTrailView, card: ModelCard) -> int | None:
    from mlops_layer.audit import actions

    if trail.last_card_hash(card.name) == card.card_hash:
        return None
    seq: int = trail.record(
        actions.CARD_CHANGED,
        subject={"model": card.name},
        details={"card_hash": card.card_hash, "path": card.path},
    )
    return seq


def _record_policy_change(trail: AuditTrailView, policy: Policy) -> int | None:
    from mlops_layer.audit import actions

    if trail.last_policy_hash() == policy.policy_hash:
        return None
    seq: int = trail.record(
        actions.POLICY_CHANGED, subject={}, details={"policy_hash": policy.policy_hash, "path": policy.path}
    )
    return seq


def _lineage_probe(cfg: Settings) -> Any:
    """Live lineage checks for the ``lineage_clean`` rule against this workspace's DVC state."""
    from mlops_layer.adapters.dvc import DvcWorkspace
    from mlops_layer.governance.workspace import lineage_probe

    return lineage_probe(DvcWorkspace(cfg.root, cfg.dvc_remote))


def _governance(cfg: Settings, trail: AuditTrailView) -> Governance:
    """The promotion flow wired to MLflow, the open audit trail and the governance files *as committed*."""
    from mlops_layer.api._trust import check_files, governance_files
    from mlops_layer.api.evaluation import evaluator
    from mlops_layer.governance.approvals import default_verifier
    from mlops_layer.governance.ports import file_locks
    from mlops_layer.governance.promotion import Governance

    files = governance_files(cfg)  # policy, cards and signers from the commit, never the working copy
    registry = _wiring.registry(cfg)
    return Governance(
        registry=registry,
        trail=trail,
        policy=files.policy,
        load_card=files.card,
        allowed_signers=files.allowed_signers,
        verifier=default_verifier(),
        locks=file_locks(cfg.state_dir),
        lineage_probe=_lineage_probe(cfg),
        evaluator=evaluator(cfg, registry),
        file_check=lambda source, expected: check_files(registry, source, expected),
        provenance=files.record(),
        warnings=files.warnings,
    )


def check_names(name: str, version: str | None = None) -> None:
    """Model names and versions with '/', '..' or control characters are bad input (exit 2), never sent on."""
    from mlops_layer.governance.cards import validate_model_name
    from mlops_layer.governance.policy import check_version

    validate_model_name(name)
    if version is not None:
        check_version(version)


def check(name: str, version: str, to: str, *, automatic: bool = False, settings: Settings | None = None) -> Decision:
    """Evaluate the promotion policy for ``name`` v``version`` -> ``to`` without acting; returns a ``Decision``.

    ``automatic=True`` asks as the retraining loop would (the target must allow ``auto_promote``).
    """
    from mlops_layer.governance.policy import check_alias

    cfg = _wiring.resolve(settings)
    check_alias(to)
    check_names(name, str(version))
    if (server := _wiring.governing_server(cfg)) is not None:
        decision: Decision = server.check(name, str(version), to)
        return decision
    with _wiring.governance_trail(cfg) as trail:
        return _governance(cfg, trail).check(name, str(version), to, automatic=automatic)


def promote(
    name: str, version: str, to: str, *, automatic: bool = False, settings: Settings | None = None
) -> PromotionResult:
    """Move alias ``to`` to ``version`` only if every rule passes; returns a ``PromotionResult``, never raises on no.

    The decision is audited first (allowed or refused, with every rule); the alias holder is re-read under a lock
    right before the move and a change since the evaluation refuses; then the registry moves and a completion entry
    is appended. Decision, approvers and policy hash are mirrored as MLflow version tags (that part may only warn).
    """
    from mlops_layer.governance.policy import check_alias

    cfg = _wiring.resolve(settings)
    check_alias(to)
    check_names(name, str(version))
    if (server := _wiring.governing_server(cfg)) is not None:
        moved: PromotionResult = server.promote(name, str(version), to)
        return moved
    with _wiring.governance_trail(cfg) as trail:
        gov = _governance(cfg, trail)
        _record_policy_change(trail, gov.policy)
        with contextlib.suppress(MlopsError):  # an absent/invalid card is reported by the rules that need it
            _record_card_change(trail, gov.load_card(name))
        result = gov.promote(name, str(version), to, automatic=automatic)
    return _after_move(cfg, name, to, result)


def _after_move(cfg: Settings, name: str, alias: str, result: PromotionResult) -> PromotionResult:
    """The replaced version's alerts on ``alias`` close, GTO's stage tag follows: side effects that only warn."""
    if not result.moved:
        return result
    from mlops_layer.api.lifecycle import after_alias_move

    notes = after_alias_move(cfg, name, alias, result.current)
    return dataclasses.replace(result, warnings=(*result.warnings, *notes)) if notes else result


def rollback(name: str, to: str, *, settings: Settings | None = None) -> PromotionResult:
    """Return alias ``to`` to the version that held it before its current holder (from the audit trail).

    The policy's ``rollback: {requires_approvals: N}`` decides whether signed rollback approvals are needed.
    Returns a ``PromotionResult`` (``decision.action == "rollback"``); audited like a promotion.
    """
    from mlops_layer.governance.policy import check_alias

    cfg = _wiring.resolve(settings)
    check_alias(to)
    check_names(name)
    if (server := _wiring.governing_server(cfg)) is not None:
        back: PromotionResult = server.rollback(name, to)
        return back
    with _wiring.governance_trail(cfg) as trail:
        result = _governance(cfg, trail).rollback(name, to)
    return _after_move(cfg, name, to, result)


def approve(
    name: str,
    version: str,
    to: str,
    *,
    key_path: Path | str,
    comment: str | None = None,
    reject: bool = False,
    principal: str | None = None,
    action: str = "promote",
    withdraw: bool = False,
    settings: Settings | None = None,
) -> SignedApproval:
    """Sign an approval (or, with ``reject=True``, a rejection; with ``withdraw=True``, a withdrawal of the
    signer's earlier decision, see :func:`withdraw_approval`) of ``name`` v``version`` for alias ``to``.

    The signer is whoever ``allowed_signers`` trusts the key for (never the actor name); their roles come from
    policy.yaml. The statement binds the version's content (run id, source, model id), so it cannot be replayed for
    another version or alias. Stored in the audit trail (APPROVAL_GRANTED/REJECTED, with the signature) and mirrored
    as the MLflow tag ``mlops.approvals.<alias>``. Returns the ``Approval`` (statement, signature, audit_seq).
    """
    from dataclasses import replace

    from mlops_layer.api._trust import governance_files
    from mlops_layer.errors import ApprovalError
    from mlops_layer.governance.approvals import (
        NAMESPACE,
        check_approval,
        check_approvals,
        default_signer,
        default_verifier,
        make_statement,
        sign_statement,
    )
    from mlops_layer.governance.candidates import bound_identity
    from mlops_layer.governance.execution import approvals_tag, approvals_tag_value
    from mlops_layer.governance.identity import principal_for_key
    from mlops_layer.governance.policy import check_alias
    from mlops_layer.governance.ports import file_locks
    from mlops_layer.governance.promotion import Governance
    from mlops_layer.governance.rules_approvals import duty_conflict, separation_flags

    cfg = _wiring.resolve(settings)
    check_alias(to)
    check_names(name, str(version))
    if (server := _wiring.governing_server(cfg)) is not None:  # signed here, verified and recorded by the server
        remote: SignedApproval = server.approve(
            name, str(version), to, key_path=Path(key_path), comment=comment, reject=reject, action=action
        )
        return remote
    files = governance_files(cfg)  # the committed policy and signers: uncommitted edits count for nothing
    policy = files.policy
    signers = files.allowed_signers
    target = policy.target(name, to)
    if target is None:
        raise InputError(
            f"policy.yaml has no target '{to}'", hint=f"targets: {', '.join(sorted(policy.targets)) or 'none'}"
        )
    key = Path(key_path).expanduser()
    signer_principal = principal_for_key(signers, key, NAMESPACE, principal)
    roles = policy.roles_of(signer_principal)
    if not roles:
        raise ApprovalError(
            f"{signer_principal} holds no role in {cfg.policy_file}",
            hint="roles are assigned under 'roles:' in the committed policy.yaml (reviewed in git)",
        )
    registry = _wiring.registry(cfg)
    info = registry.get_version(name, str(version))
    with _wiring.governance_trail(cfg) as trail:
        identity = bound_identity(info, trail.registration(name, str(info.version)))
        if withdraw:
            _withdrawable(
                trail.approvals(name, identity.version, to), signer_principal, action, name, identity.version, to
            )
        elif action == "promote":
            # who trained and registered it, as the promotion rules see them: the signed principals under
            # `identity: signed` (declared names stay excluded too), else the trail's and the tags' declared names
            candidate = Governance(
                registry=registry,
                trail=trail,
                policy=policy,
                load_card=files.card,
                allowed_signers=signers,
                verifier=default_verifier(),
                locks=file_locks(cfg.state_dir),
            ).candidate(info)
            exclude_trainer, exclude_registrant = separation_flags(target.rules)
            did = duty_conflict(
                signer_principal, candidate, exclude_trainer=exclude_trainer, exclude_registrant=exclude_registrant
            )
            if did:
                raise ApprovalError(
                    f"{signer_principal} {did} {name} v{identity.version}: separation of duties forbids approving it",
                    hint="ask another holder of the approver roles",
                )
        decision = "withdraw" if withdraw else "reject" if reject else "approve"
        statement = make_statement(identity, to, signer_principal, decision=decision, action=action, comment=comment)
        signed = sign_statement(statement, key, default_signer())
        # this statement on its own: a withdrawal is a valid statement that never counts as a decision
        verified = check_approval(signed, identity, to, action, signers, default_verifier(), policy.roles_of)
        if not verified.valid:
            raise ApprovalError(f"the new approval does not verify: {verified.reason}")
        seq = trail.record_approval(signed)
        standing = check_approvals(
            [a for a in trail.approvals(name, identity.version, to) if a.statement.action == action],
            identity,
            to,
            action,
            signers,
            default_verifier(),
            policy.roles_of,
        )
    latest: dict[str, str] = {}
    for c in sorted((c for c in standing if c.valid and c.principal), key=lambda c: c.time):
        latest[str(c.principal)] = c.decision
    _wiring.mirror_tags(
        registry, name, identity.version, {approvals_tag(to): approvals_tag_value(latest)}, what="governance tags"
    )
    return replace(signed, audit_seq=seq)


def _withdrawable(filed: list[SignedApproval], principal: str, action: str, name: str, version: str, to: str) -> None:
    """A withdrawal needs an earlier decision of the signer on this binding (else there is nothing to withdraw)."""
    if not any(
        a.statement.approver == principal and a.statement.action == action and a.statement.decision != "withdraw"
        for a in filed
    ):
        raise InputError(
            f"{principal} has no {action} decision on {name} v{version} -> @{to} to withdraw",
            hint="`mlops status NAME` lists the approvals waiting",
        )


def withdraw_approval(
    name: str,
    version: str,
    to: str,
    *,
    key_path: Path | str,
    comment: str | None = None,
    principal: str | None = None,
    action: str = "promote",
    settings: Settings | None = None,
) -> SignedApproval:
    """Sign a withdrawal of your earlier approval (or rejection) of ``name`` v``version`` for ``to``.

    Stored as ``approval.withdrawn`` with its signature; from then on the earlier decision no longer counts (an
    approval signed later counts again). Returns the signed withdrawal (statement, signature, audit_seq).
    """
    return approve(
        name,
        version,
        to,
        key_path=key_path,
        comment=comment,
        principal=principal,
        action=action,
        withdraw=True,
        settings=settings,
    )
