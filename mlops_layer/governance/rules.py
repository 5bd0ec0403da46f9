"""Rule evaluation: every rule of a target's policy applied to a :class:`PromotionContext`, giving a Decision.

Pure: the context carries everything (candidate, current holder, alias history, drift, checked approvals,
card), so tests hand it fakes and the api fills it from MLflow and the audit trail. A rule never crashes on
missing data: it fails with a message saying what is missing and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from mlops_layer import tags
from mlops_layer.governance.approvals import ApprovalCheck, CandidateIdentity, format_time
from mlops_layer.governance.cards import ModelCard, check_required
from mlops_layer.governance.decisions import Decision, RuleResult
from mlops_layer.governance.policy import (
    Approvals,
    CardFields,
    DriftPassed,
    Evaluation,
    LineageClean,
    MetricThreshold,
    NoRegression,
    Policy,
    PromotionOrder,
    Rule,
    rule_name,
    rule_type,
)

TAG_DIRTY = tags.DIRTY
TAG_COMMIT = tags.COMMIT
TAG_GOVERNED = tags.LINEAGE_GOVERNED
DEFAULT_APPROVAL_AGE_DAYS = 30.0  # an approval older than this never counts, unless the rule sets max_age_days


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


def evaluate(policy: Policy, ctx: PromotionContext, *, extra: tuple[RuleResult, ...] = ()) -> Decision:
    """Evaluate every rule of the target's policy; allowed only when all pass (``extra`` results too)."""
    target = policy.target(ctx.candidate.model, ctx.target)
    results: list[RuleResult] = list(extra)
    if target is None:
        known = ", ".join(sorted(policy.targets)) or "none"
        results.append(
            RuleResult(
                name="policy_target",
                passed=False,
                observed=ctx.target,
                expected=f"one of: {known}",
                message=(
                    f"policy.yaml has no target '{ctx.target}'; promotion to an alias without a policy is refused"
                ),
                rule_type="policy_target",
            )
        )
    else:
        results.extend(evaluate_rule(rule, ctx, policy) for rule in target.rules)
    return Decision(
        allowed=all(r.passed for r in results),
        rules=tuple(results),
        policy_hash=policy.policy_hash,
        model=ctx.candidate.model,
        version=ctx.candidate.version,
        target=ctx.target,
        card_hash=ctx.card.card_hash if ctx.card else None,
        action=ctx.action,
        auto_promote=bool(target and target.auto_promote),
        evaluated_at=format_time(ctx.now),
        current_holder=ctx.holder.version if ctx.holder else None,
    )


def evaluate_rule(rule: Rule, ctx: PromotionContext, policy: Policy) -> RuleResult:
    name, kind = rule_name(rule), rule_type(rule)
    if isinstance(rule, MetricThreshold):
        passed, observed, expected, message = _metric_threshold(rule, ctx)
    elif isinstance(rule, NoRegression):
        passed, observed, expected, message = _no_regression(rule, ctx)
    elif isinstance(rule, LineageClean):
        passed, observed, expected, message = _lineage_clean(rule, ctx)
    elif isinstance(rule, CardFields):
        passed, observed, expected, message = _card_fields(rule, ctx)
    elif isinstance(rule, PromotionOrder):
        passed, observed, expected, message = _promotion_order(rule, ctx)
    elif isinstance(rule, DriftPassed):
        passed, observed, expected, message = _drift_passed(rule, ctx)
    elif isinstance(rule, Evaluation):
        passed, observed, expected, message = _evaluation(rule, ctx)
    else:
        passed, observed, expected, message = evaluate_approvals(
            rule.count,
            rule.roles or (ctx.card.approver_roles if ctx.card else ()),
            ctx,
            require_each_role=rule.require_each_role,
            exclude_trainer=rule.exclude_trainer,
            exclude_registrant=rule.exclude_registrant,
            max_age_days=rule.max_age_days,
        )
    return RuleResult(name=name, passed=passed, observed=observed, expected=expected, message=message, rule_type=kind)


Verdict = tuple[bool, Any, Any, str]


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _metric_threshold(rule: MetricThreshold, ctx: PromotionContext) -> Verdict:
    bounds = []
    if rule.min is not None:
        bounds.append(f">= {_fmt(rule.min)}")
    if rule.max is not None:
        bounds.append(f"<= {_fmt(rule.max)}")
    expected = f"{rule.metric} {' and '.join(bounds)}"
    value = ctx.candidate.metrics.get(rule.metric)
    if value is None and not ctx.candidate.metrics_frozen:
        return False, None, expected, _no_snapshot(ctx.candidate.version)
    if value is None:
        have = ", ".join(sorted(ctx.candidate.metrics)) or "none"
        return (
            False,
            None,
            expected,
            f"version {ctx.candidate.version} never logged metric '{rule.metric}' (logged: {have}); "
            "log it in the evaluation stage or fix the metric name in policy.yaml",
        )
    if value != value:
        return False, "nan", expected, f"metric '{rule.metric}' is NaN"
    if rule.min is not None and value < rule.min:
        return False, value, expected, f"{rule.metric} {_fmt(value)} is below the minimum {_fmt(rule.min)}"
    if rule.max is not None and value > rule.max:
        return False, value, expected, f"{rule.metric} {_fmt(value)} is above the maximum {_fmt(rule.max)}"
    return True, value, expected, f"{rule.metric} {_fmt(value)} is within bounds"


def _no_regression(rule: NoRegression, ctx: PromotionContext) -> Verdict:
    parts = []
    if rule.min_delta is not None:
        parts.append(f"by >= {_fmt(rule.min_delta)}")
    if rule.min_relative is not None:
        parts.append(f"by >= {_fmt(rule.min_relative * 100)}%")
    better = "higher" if rule.direction == "higher" else "lower"
    expected = f"{rule.metric} {better} than the holder" + (f" {' and '.join(parts)}" if parts else " or equal")
    value = ctx.candidate.metrics.get(rule.metric)
    if value is None and not ctx.candidate.metrics_frozen:
        return False, None, expected, _no_snapshot(ctx.candidate.version)
    if value is None:
        return (
            False,
            None,
            expected,
            f"version {ctx.candidate.version} never logged metric '{rule.metric}', so it cannot be compared",
        )
    if ctx.holder is None:
        return (
            True,
            value,
            expected,
            f"no current holder of '{ctx.target}': first promotion, nothing to regress from",
        )
    if ctx.holder.version == ctx.candidate.version:
        return True, value, expected, f"version {ctx.candidate.version} already holds '{ctx.target}'"
    base = ctx.holder.metrics.get(rule.metric)
    if base is None and not ctx.holder.metrics_frozen:
        return False, value, expected, _no_snapshot(ctx.holder.version) + " (the holder)"
    if base is None:
        return (
            False,
            value,
            expected,
            f"the holder v{ctx.holder.version} never logged '{rule.metric}': no baseline to compare against "
            "(roll out with a one-off policy change reviewed in git, or log the metric for the holder)",
        )
    gain = value - base if rule.direction == "higher" else base - value
    observed = {"candidate": value, "holder": base, "holder_version": ctx.holder.version, "improvement": gain}
    if rule.min_delta is None and rule.min_relative is None and gain < 0:
        return (
            False,
            observed,
            expected,
            f"{rule.metric} regresses by {_fmt(-gain)} against v{ctx.holder.version}",
        )
    if rule.min_delta is not None and gain < rule.min_delta:
        return (
            False,
            observed,
            expected,
            f"{rule.metric} improves by {_fmt(gain)} over v{ctx.holder.version}, less than {_fmt(rule.min_delta)}",
        )
    if rule.min_relative is not None:
        relative = gain / abs(base) if base != 0 else (float("inf") if gain > 0 else 0.0)
        observed["relative"] = relative
        if relative < rule.min_relative:
            return (
                False,
                observed,
                expected,
                f"{rule.metric} improves by {_fmt(relative * 100)}% over v{ctx.holder.version}, "
                f"less than {_fmt(rule.min_relative * 100)}%",
            )
    return True, observed, expected, f"{rule.metric} {_fmt(value)} vs {_fmt(base)} of v{ctx.holder.version}"


def _evaluation(rule: Evaluation, ctx: PromotionContext) -> Verdict:
    """Bounds and no-regression margins on metrics the layer measured itself (never self-reported ones)."""
    parts = []
    for m in rule.metrics:
        bounds = [f">= {_fmt(m.min)}" if m.min is not None else "", f"<= {_fmt(m.max)}" if m.max is not None else ""]
        if m.max_regression is not None:
            worse = "lower" if m.direction == "higher" else "higher"
            bounds.append(f"at most {_fmt(m.max_regression)} {worse} than the holder")
        parts.append(f"{m.metric} " + " and ".join(b for b in bounds if b))
    expected = {"holdout": rule.data or "(card evaluation.data)", "metrics": parts}
    outcome = ctx.evaluations.get(rule_name(rule))
    if outcome is None:
        return False, None, expected, "the layer did not evaluate this version (no evaluator wired)"
    if outcome.error:
        return False, {"data": outcome.data, "data_md5": outcome.data_md5}, expected, outcome.error
    cand = outcome.candidate
    holder = outcome.holder
    observed: dict[str, Any] = {
        "data": outcome.data,
        "data_md5": outcome.data_md5,
        "target": outcome.target,
        "rows": outcome.rows,
        "candidate": cand.to_dict() if cand else None,
        "holder": holder.to_dict() if holder else None,
    }
    problems: list[str] = []
    notes: list[str] = []
    for m in rule.metrics:
        value = cand.metrics.get(m.metric) if cand else None
        if value is None or value != value:
            problems.append(f"{m.metric} could not be computed for v{ctx.candidate.version} on the holdout")
            continue
        if m.min is not None and value < m.min:
            problems.append(f"{m.metric} {_fmt(value)} is below the minimum {_fmt(m.min)}")
        if m.max is not None and value > m.max:
            problems.append(f"{m.metric} {_fmt(value)} is above the maximum {_fmt(m.max)}")
        if m.max_regression is None:
            continue
        if holder is None:
            notes.append(f"{m.metric} {_fmt(value)}: no other holder of '{ctx.target}' to compare with")
            continue
        base = holder.metrics.get(m.metric)
        if base is None or base != base:
            problems.append(f"{m.metric} could not be computed for the holder v{holder.version}: no baseline")
            continue
        loss = base - value if m.direction == "higher" else value - base
        if loss > m.max_regression:
            problems.append(
                f"{m.metric} {_fmt(value)} regresses by {_fmt(loss)} against v{holder.version} ({_fmt(base)}) "
                f"on the same holdout, more than {_fmt(m.max_regression)}"
            )
        else:
            notes.append(f"{m.metric} {_fmt(value)} vs {_fmt(base)} of v{holder.version}")
    where = f"on {outcome.data} (md5 {str(outcome.data_md5)[:12]}, {outcome.rows} rows)"
    if problems:
        return False, observed, expected, "; ".join(problems) + f" {where}"
    measured = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(cand.metrics.items())) if cand else ""
    return True, observed, expected, (("; ".join(notes) + " ") if notes else f"{measured} ") + where


def _no_snapshot(version: str) -> str:
    return (
        f"version {version} has no metrics snapshot frozen at registration: registered before snapshots existed "
        "(run `mlops migrate` to record one) or outside the layer (register the run with `api.register`, "
        "which freezes its metrics and files)"
    )


def _lineage_clean(rule: LineageClean, ctx: PromotionContext) -> Verdict:
    status = ctx.lineage or lineage_from_tags(ctx.candidate.tags)
    checks = [
        ("committed", rule.require_committed, status.committed, "code not committed", "the code was committed"),
        (
            "data_in_remote",
            rule.require_data_in_remote,
            status.data_in_remote,
            "data not in the DVC remote",
            "the data is in the DVC remote",
        ),
        (
            "lock_up_to_date",
            rule.require_lock_up_to_date,
            status.lock_up_to_date,
            "dvc.lock not up to date",
            "dvc.lock is up to date",
        ),
    ]
    observed = {key: value for key, wanted, value, _, _ in checks if wanted}
    expected = {key: True for key, wanted, _, _, _ in checks if wanted}
    problems = []
    for key, wanted, value, negative, question in checks:
        if not wanted:
            continue
        why = status.detail.get(key, "")
        if value is None:
            problems.append(f"cannot tell whether {question}" + (f" ({why})" if why else ""))
        elif not value:
            problems.append(negative + (f": {why}" if why else ""))
    if problems:
        return False, observed, expected, "; ".join(problems)
    return True, observed, expected, "lineage is clean"


def lineage_from_tags(tags: Mapping[str, str]) -> LineageStatus:
    """What the version's own lineage tags say (the api adds live DVC checks on top)."""
    dirty = tags.get(TAG_DIRTY)
    committed: bool | None
    detail: dict[str, str] = {}
    if tags.get(TAG_GOVERNED) == "false":
        committed = None
        detail["committed"] = (
            "the version has no governed lineage (registered from a model logged outside a governed run); "
            "train it in `api.governed_run` and register that"
        )
    elif not tags.get(TAG_COMMIT) or dirty is None:
        committed = None
        detail["committed"] = "the version has no mlops.git.* lineage tags; register it through the layer"
    else:
        committed = dirty.lower() == "false"
        if not committed:
            detail["committed"] = f"trained from uncommitted changes on {tags.get(TAG_COMMIT, '')[:12]}"
    return LineageStatus(committed=committed, data_in_remote=None, lock_up_to_date=None, detail=detail)


def _card_fields(rule: CardFields, ctx: PromotionContext) -> Verdict:
    expected = list(rule.required)
    if ctx.card is None:
        why = ctx.card_error or f"model '{ctx.candidate.model}' has no model card"
        return False, None, expected, why
    missing = check_required(ctx.card, rule.required)
    if missing:
        return False, {"missing": missing}, expected, f"model card lacks {', '.join(missing)}"
    return True, {"missing": []}, expected, "every required card field is filled in"


def holds_of(history: tuple[AliasHold, ...], version: str, alias: str) -> list[AliasHold]:
    return [h for h in history if h.version == version and h.alias == alias]


def _promotion_order(rule: PromotionOrder, ctx: PromotionContext) -> Verdict:
    expected = f"held '{rule.must_have_held}'" + (f" for >= {_fmt(rule.min_days)} days" if rule.min_days else "")
    if rule.must_still_hold:
        expected += " and still holds it"
    holds = holds_of(ctx.history, ctx.candidate.version, rule.must_have_held)
    if not holds:
        return (
            False,
            "never held",
            expected,
            f"version {ctx.candidate.version} never held '{rule.must_have_held}' (per the audit trail); "
            f"promote it to '{rule.must_have_held}' first",
        )
    longest = max(((h.until or ctx.now) - h.since for h in holds), default=timedelta(0))
    days = longest.total_seconds() / 86400
    current = any(h.until is None for h in holds)
    observed = {"days": round(days, 3), "still_holds": current}
    if rule.must_still_hold and not current:
        return (
            False,
            observed,
            expected,
            f"version {ctx.candidate.version} no longer holds '{rule.must_have_held}'",
        )
    if days < rule.min_days:
        return (
            False,
            observed,
            expected,
            f"held '{rule.must_have_held}' for {days:.2f} days, less than {_fmt(rule.min_days)}",
        )
    return True, observed, expected, f"held '{rule.must_have_held}' for {days:.2f} days"


def _drift_passed(rule: DriftPassed, ctx: PromotionContext) -> Verdict:
    expected = "latest drift check passed" + (
        f" within {_fmt(rule.max_age_days)} days" if rule.max_age_days is not None else ""
    )
    drift = ctx.drift_datasets.get(rule.dataset) if rule.dataset else ctx.drift
    if rule.dataset and (drift is None or drift.passed is None):
        why = (
            f"no drift check of version {ctx.candidate.version} on {rule.dataset} (as DVC records it) on record; "
            f"checks of other files count for nothing here: run `mlops drift {ctx.candidate.model}/"
            f"{ctx.candidate.version} --current {rule.dataset}`"
        )
        return False, "no drift check", expected, why
    if drift is None or drift.passed is None:
        ignored = drift.ignored if drift is not None else 0
        why = (
            f"{ignored} drift check(s) of version {ctx.candidate.version} were on data no `mlops monitor` batch of "
            "this model had: only production data counts; monitor a production batch, then run `mlops drift` on it"
            if ignored
            else f"no drift check of version {ctx.candidate.version} on production data on record; run "
            "`mlops monitor` on a production batch, then `mlops drift` on it"
        )
        return False, "no drift check", expected, why
    observed: dict[str, Any] = {"passed": drift.passed}
    if drift.rows is not None:
        observed["rows"] = drift.rows
    if rule.min_rows is not None and (drift.rows or 0) < rule.min_rows:
        return False, observed, expected, f"the drift check saw {drift.rows or 0} rows, fewer than {rule.min_rows}"
    if drift.checked_at is not None:
        observed["checked_at"] = format_time(drift.checked_at)
    if not drift.passed:
        return (
            False,
            observed,
            expected,
            "the latest drift check failed" + (f": {drift.detail}" if drift.detail else ""),
        )
    if rule.max_age_days is not None:
        if drift.checked_at is None:
            return False, observed, expected, "the drift check has no time; cannot tell its age"
        age = (ctx.now - drift.checked_at).total_seconds() / 86400
        observed["age_days"] = round(age, 3)
        if age > rule.max_age_days:
            return (
                False,
                observed,
                expected,
                f"the latest drift check is {age:.1f} days old; run `mlops drift` again",
            )
    return True, observed, expected, "the latest drift check passed"


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
