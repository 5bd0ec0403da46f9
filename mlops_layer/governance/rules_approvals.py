"""The approvals rule and separation of duties: who may approve a candidate, and whose signed approvals count."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mlops_layer.governance.approvals import ApprovalCheck, format_time
from mlops_layer.governance.context import Candidate, PromotionContext, Verdict, _fmt
from mlops_layer.governance.policy import Approvals, Rule

DEFAULT_APPROVAL_AGE_DAYS = 30.0  # an approval older than this never counts, unless the rule sets max_age_days


def duty_conflict(
    principal: str,
    candidate: Candidate,
    *,
    exclude_trainer: bool = True,
    exclude_registrant: bool = True,
) -> str | None:
    """Separation of duties, the one place it is decided: what ``principal`` did to the candidate that forbids them
    approving it (``trained``, ``registered``, ``registered or trained``), or None."""
    who = principal.lower()
    for other, label, on in (
        (candidate.registered_by, "registered", exclude_registrant),
        (candidate.trained_by, "trained", exclude_trainer),
        (candidate.trained_via, "trained", exclude_trainer),
        *((other, "trained", exclude_trainer) for other in candidate.also_trained_by),
        *((other, "registered or trained", exclude_registrant) for other in candidate.other_identities),
    ):
        if on and other and other.lower() == who:
            return label
    return None


def separation_flags(rules: tuple[Rule, ...]) -> tuple[bool, bool]:
    """(exclude_trainer, exclude_registrant) of a target's approvals rules (the defaults when it has none)."""
    found = [r for r in rules if isinstance(r, Approvals)]
    if not found:
        return True, True
    return any(r.exclude_trainer for r in found), any(r.exclude_registrant for r in found)


def evaluate_approvals(
    count: int,
    roles: tuple[str, ...],
    ctx: PromotionContext,
    *,
    require_each_role: bool = False,
    exclude_trainer: bool = True,
    exclude_registrant: bool = True,
    max_age_days: float | None = None,
) -> Verdict:
    """Count distinct valid signed approvals by holders of ``roles``; a valid reject by one blocks."""
    role_text = " or ".join(roles) if roles else "(no roles: set approver_roles on the model card)"
    expected = f"{count} approval(s) by {role_text}" + (" (each role)" if require_each_role else "")
    if exclude_trainer or exclude_registrant:
        expected += ", not by the trainer/registrant"
    if not roles:
        return False, None, expected, "no approver roles given by the rule or the model card"
    if exclude_trainer and ctx.candidate.trainer_problem:
        # excluding a CI account from approving excludes nobody: the person behind it must be known
        return False, None, expected, ctx.candidate.trainer_problem

    notes: list[str] = []
    # the latest valid statement of each principal counts (an approver may change their mind)
    latest: dict[str, ApprovalCheck] = {}
    for check in ctx.approvals:
        if not check.valid or check.principal is None:
            notes.append(check.reason)
            continue
        previous = latest.get(check.principal)
        if previous is None or check.time >= previous.time:
            latest[check.principal] = check

    cand = ctx.candidate
    changed = cand.changed_at or cand.created_at
    approvers: list[ApprovalCheck] = []
    blockers: list[str] = []
    rejecters: list[str] = []
    for principal, check in sorted(latest.items()):
        relevant = [r for r in check.roles if r in roles]
        if not relevant:
            notes.append(
                f"{principal} holds none of the roles {', '.join(roles)} (holds: {', '.join(check.roles) or 'none'})"
            )
            continue
        conflict = duty_conflict(
            principal, cand, exclude_trainer=exclude_trainer, exclude_registrant=exclude_registrant
        )
        if conflict:
            notes.append(f"{principal} {conflict} version {cand.version}: separation of duties forbids approving it")
            continue
        if changed is not None and check.time <= changed:
            notes.append(
                f"the {check.decision} by {principal} ({format_time(check.time)}) predates the "
                f"candidate's last change ({format_time(changed)}); approve again"
            )
            continue
        age_limit = DEFAULT_APPROVAL_AGE_DAYS if max_age_days is None else max_age_days
        if (ctx.now - check.time).total_seconds() / 86400 > age_limit:
            notes.append(f"the {check.decision} by {principal} expired (older than {_fmt(age_limit)} days)")
            continue
        if check.time > ctx.now + timedelta(minutes=5):
            notes.append(f"the {check.decision} by {principal} is dated in the future ({format_time(check.time)})")
            continue
        if check.decision == "reject":
            comment = check.approval.statement.comment
            rejecters.append(principal)
            blockers.append(f"{principal} ({', '.join(relevant)}) rejected" + (f": {comment}" if comment else ""))
        else:
            approvers.append(check)

    names = sorted(c.principal or "" for c in approvers)
    observed: dict[str, Any] = {"approved_by": names}
    if blockers:
        observed["rejected_by"] = rejecters
        return False, observed, expected, "; ".join(blockers + notes)
    missing_roles = []
    if require_each_role:
        covered = {r for c in approvers for r in c.roles}
        missing_roles = [r for r in roles if r not in covered]
    if len(names) < count or missing_roles:
        need = f"{len(names)} of {count} approval(s)"
        if missing_roles:
            need += f"; no approval yet by role {', '.join(missing_roles)}"
        if ctx.used_approvals:
            notes.append(
                f"approvals given before v{cand.version} last took '{ctx.target}' were used by that promotion "
                "(an approval enables one promotion unless the rule says reusable: true)"
            )
        hint = f"; run `mlops approve {cand.model} {cand.version} --to {ctx.target} --key KEY`"
        return False, observed, expected, need + (": " + "; ".join(notes) if notes else "") + hint
    declared = (
        "; separation of duties compared declared names (MLOPS_ACTOR, git config): set `identity: signed` in "
        "policy.yaml to compare signed principals"
        if (exclude_trainer or exclude_registrant) and not ctx.identity_signed
        else ""
    )
    return (
        True,
        observed,
        expected,
        f"approved by {', '.join(names)}" + (f" (ignored: {'; '.join(notes)})" if notes else "") + declared,
    )
