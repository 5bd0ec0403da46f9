"""Rule evaluation: every rule of a target's policy applied to a :class:`PromotionContext`, giving a Decision.

Pure: the context carries everything (candidate, current holder, alias history, drift, checked approvals,
card), so tests hand it fakes and the api fills it from MLflow and the audit trail. A rule never crashes on
missing data: it fails with a message saying what is missing and what to do.

The evaluators of each family live in ``rules_metrics``, ``rules_evidence`` and ``rules_approvals``; the context's
dataclasses in ``context``.
"""

from __future__ import annotations

from mlops_layer.governance.approvals import format_time
from mlops_layer.governance.context import (
    AliasHold,
    Candidate,
    DriftStatus,
    Holder,
    LineageStatus,
    PromotionContext,
)
from mlops_layer.governance.decisions import Decision, RuleResult
from mlops_layer.governance.policy import (
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
from mlops_layer.governance.rules_approvals import evaluate_approvals
from mlops_layer.governance.rules_evidence import _card_fields, _drift_passed, _lineage_clean, _promotion_order
from mlops_layer.governance.rules_metrics import _evaluation, _metric_threshold, _no_regression

# the context's dataclasses are imported from here by many callers and tests
__all__ = [
    "AliasHold",
    "Candidate",
    "DriftStatus",
    "Holder",
    "LineageStatus",
    "PromotionContext",
    "evaluate",
    "evaluate_rule",
]


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
