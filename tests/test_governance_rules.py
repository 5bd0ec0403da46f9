"""Every rule type on hand-built PromotionContexts (pure core, fakes only)."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlops_layer.governance.approvals import ApprovalCheck, SignedApproval, make_statement
from mlops_layer.governance.cards import parse_card
from mlops_layer.governance.decisions import Decision, RuleResult
from mlops_layer.governance.policy import Policy, parse_policy
from mlops_layer.governance.rules import (
    AliasHold,
    Candidate,
    DriftStatus,
    Holder,
    LineageStatus,
    PromotionContext,
    evaluate,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
CREATED = NOW - timedelta(days=10)


def policy(rules: str, *, extra: str = "") -> Policy:
    text = (
        textwrap.dedent(
            """\
        roles:
          alice@example.com: [model-risk]
          bob@example.com: [business-owner]
          dan@example.com: [model-risk]
          eve@example.com: [intern]
        targets:
          champion:
            rules:
        """
        )
        + textwrap.indent(textwrap.dedent(rules), "      ")
        + extra
    )
    return parse_policy(text.encode(), "policy.yaml")


def candidate(**kw: object) -> Candidate:
    base = Candidate(
        model="credit",
        version="4",
        run_id="run4",
        source="models:/m-4",
        metrics={"accuracy": 0.91, "rmse": 1.5},
        tags={"mlops.git.commit": "abc123", "mlops.git.dirty": "false"},
        registered_by="carol@example.com",
        trained_by="trainer@example.com",
        created_at=CREATED,
        changed_at=CREATED,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def ctx(**kw: object) -> PromotionContext:
    base = PromotionContext(candidate=candidate(), target="champion", now=NOW)
    return replace(base, **kw)  # type: ignore[arg-type]


def only(decision: Decision) -> RuleResult:
    assert len(decision.rules) == 1
    return decision.rules[0]


def test_metric_threshold_pass_fail_and_missing_metric() -> None:
    p = policy("- {type: metric_threshold, metric: accuracy, min: 0.9, max: 0.99}\n")
    ok = evaluate(p, ctx())
    assert ok.allowed and only(ok).observed == 0.91 and only(ok).expected == "accuracy >= 0.9 and <= 0.99"
    low = evaluate(p, ctx(candidate=candidate(metrics={"accuracy": 0.5})))
    assert not low.allowed and "below the minimum 0.9" in only(low).message
    high = evaluate(p, ctx(candidate=candidate(metrics={"accuracy": 0.999})))
    assert not high.allowed and "above the maximum" in only(high).message
    # a metric the version never logged: a clear refusal, not a crash
    p2 = policy("- {type: metric_threshold, metric: auc, min: 0.7}\n")
    missing = evaluate(p2, ctx())
    result = only(missing)
    assert not missing.allowed and result.observed is None
    assert "never logged metric 'auc'" in result.message and "accuracy, rmse" in result.message
    nan = evaluate(p, ctx(candidate=candidate(metrics={"accuracy": float("nan")})))
    assert not nan.allowed


def test_no_regression_first_promotion_and_deltas() -> None:
    p = policy("- {type: no_regression, metric: accuracy, direction: higher, min_delta: 0.01}\n")
    first = evaluate(p, ctx(holder=None))
    assert first.allowed and "first promotion" in only(first).message
    assert first.current_holder is None
    better = evaluate(p, ctx(holder=Holder("3", {"accuracy": 0.85})))
    assert better.allowed and only(better).observed["improvement"] > 0.05
    small = evaluate(p, ctx(holder=Holder("3", {"accuracy": 0.905})))
    assert not small.allowed and "less than 0.01" in only(small).message
    nobase = evaluate(p, ctx(holder=Holder("3", {})))
    assert not nobase.allowed and "v3 never logged 'accuracy'" in only(nobase).message
    lower = policy("- {type: no_regression, metric: rmse, direction: lower, min_relative: 0.1}\n")
    assert evaluate(lower, ctx(holder=Holder("3", {"rmse": 2.0}))).allowed  # 25% better
    worse = evaluate(lower, ctx(holder=Holder("3", {"rmse": 1.6})))  # 6.25% better, needs 10%
    assert not worse.allowed and "less than 10%" in only(worse).message
    plain = policy("- {type: no_regression, metric: rmse, direction: lower}\n")
    assert not evaluate(plain, ctx(holder=Holder("3", {"rmse": 1.0}))).allowed
    assert evaluate(plain, ctx(holder=Holder("3", {"rmse": 1.5}))).allowed  # equal is no regression


def test_lineage_clean_from_tags_and_live_status() -> None:
    p = policy("- {type: lineage_clean, require_data_in_remote: false, require_lock_up_to_date: false}\n")
    assert evaluate(p, ctx()).allowed
    dirty = evaluate(p, ctx(candidate=candidate(tags={"mlops.git.commit": "abc", "mlops.git.dirty": "true"})))
    assert not dirty.allowed and "uncommitted" in only(dirty).message
    untagged = evaluate(p, ctx(candidate=candidate(tags={})))
    assert not untagged.allowed and "cannot tell" in only(untagged).message
    full = policy("- {type: lineage_clean}\n")
    status = LineageStatus(True, False, None, {"data_in_remote": "data/train.csv not pushed"})
    res = only(evaluate(full, ctx(lineage=status)))
    assert not res.passed and "data not in the DVC remote: data/train.csv not pushed" in res.message
    assert "cannot tell whether dvc.lock is up to date" in res.message
    assert evaluate(full, ctx(lineage=LineageStatus(True, True, True))).allowed


CARD = textwrap.dedent(
    """\
    business_owner: carol@example.com
    intended_use: Rank applications.
    intended_users: [analysts]
    prediction_consumption: batch
    sla: {availability_percent: 99}
    retraining: {method: scheduled, cadence: monthly}
    approver_roles: [model-risk]
    sensitivity: internal
    code_shareable: true
    """
)


def test_card_fields() -> None:
    card = parse_card(CARD.encode(), "credit.yaml", "credit")
    p = policy("- {type: card_fields, required: [business_owner, approver_roles]}\n")
    assert evaluate(p, ctx(card=card)).allowed
    p2 = policy("- {type: card_fields, required: [business_owner, stakeholders, sla.max_latency_ms]}\n")
    res = only(evaluate(p2, ctx(card=card)))
    assert not res.passed and res.observed == {"missing": ["stakeholders", "sla.max_latency_ms"]}
    nocard = only(evaluate(p, ctx(card=None, card_error="credit.yaml:3: field 'x': bad")))
    assert not nocard.passed and "credit.yaml:3" in nocard.message
    assert evaluate(p, ctx(card=card)).card_hash == card.card_hash


def test_promotion_order() -> None:
    p = policy("- {type: promotion_order, must_have_held: staging, min_days: 2}\n")
    never = only(evaluate(p, ctx()))
    assert not never.passed and "never held 'staging'" in never.message
    short = (AliasHold("staging", "4", NOW - timedelta(days=1)),)
    assert not evaluate(p, ctx(history=short)).allowed
    other = (AliasHold("staging", "3", NOW - timedelta(days=9)),)
    assert not evaluate(p, ctx(history=other)).allowed
    held = (AliasHold("staging", "4", NOW - timedelta(days=5), NOW - timedelta(days=1)),)
    assert evaluate(p, ctx(history=held)).allowed
    still = policy("- {type: promotion_order, must_have_held: staging, must_still_hold: true}\n")
    res = only(evaluate(still, ctx(history=held)))
    assert not res.passed and "no longer holds" in res.message


def test_drift_passed() -> None:
    p = policy("- {type: drift_passed, max_age_days: 7}\n")
    none = only(evaluate(p, ctx()))
    assert not none.passed and "no drift check" in none.message
    assert evaluate(p, ctx(drift=DriftStatus(True, NOW - timedelta(days=1)))).allowed
    old = only(evaluate(p, ctx(drift=DriftStatus(True, NOW - timedelta(days=8)))))
    assert not old.passed and "days old" in old.message
    failed = only(evaluate(p, ctx(drift=DriftStatus(False, NOW, "PSI 0.4 on income"))))
    assert not failed.passed and "PSI 0.4 on income" in failed.message


def approval(
    who: str,
    *,
    decision: str = "approve",
    valid: bool = True,
    roles: tuple[str, ...] = ("model-risk",),
    at: datetime | None = None,
    reason: str = "",
) -> ApprovalCheck:
    st = make_statement(candidate().identity, "champion", who, decision=decision, now=at or NOW - timedelta(hours=1))
    return ApprovalCheck(SignedApproval(st, "sig"), valid, who if valid else None, roles, reason)


def test_approvals_count_roles_and_separation_of_duties() -> None:
    p = policy("- {type: approvals, count: 2, roles: [model-risk]}\n")
    one = only(evaluate(p, ctx(approvals=(approval("alice@example.com"),))))
    assert not one.passed and "1 of 2" in one.message and "mlops approve credit 4 --to champion" in one.message
    two = evaluate(p, ctx(approvals=(approval("alice@example.com"), approval("dan@example.com"))))
    assert two.allowed and only(two).observed == {"approved_by": ["alice@example.com", "dan@example.com"]}
    # the same person twice counts once
    dup = evaluate(p, ctx(approvals=(approval("alice@example.com"), approval("alice@example.com"))))
    assert not dup.allowed
    # wrong role does not count
    intern = only(
        evaluate(p, ctx(approvals=(approval("alice@example.com"), approval("eve@example.com", roles=("intern",)))))
    )
    assert not intern.passed and "eve@example.com holds none of the roles model-risk" in intern.message
    # the registrant approving their own version
    own = candidate(registered_by="alice@example.com")
    sod = only(evaluate(p, ctx(candidate=own, approvals=(approval("alice@example.com"), approval("dan@example.com")))))
    assert not sod.passed and "separation of duties" in sod.message and "registered version 4" in sod.message
    trained = candidate(trained_by="Dan@Example.com")
    sod2 = only(
        evaluate(p, ctx(candidate=trained, approvals=(approval("alice@example.com"), approval("dan@example.com"))))
    )
    assert not sod2.passed and "trained version 4" in sod2.message


def test_approvals_rejects_stale_invalid_and_card_roles() -> None:
    p = policy("- {type: approvals, count: 1}\n")  # roles from the card
    card = parse_card(CARD.encode(), "credit.yaml", "credit")
    assert evaluate(p, ctx(card=card, approvals=(approval("alice@example.com"),))).allowed
    noroles = only(evaluate(p, ctx(card=None, approvals=(approval("alice@example.com"),))))
    assert not noroles.passed and "no approver roles" in noroles.message
    # a reject from a required role blocks, even with enough approvals
    block = only(
        evaluate(
            p, ctx(card=card, approvals=(approval("alice@example.com"), approval("dan@example.com", decision="reject")))
        )
    )
    assert not block.passed and "dan@example.com (model-risk) rejected" in block.message
    # the latest statement of a person wins: reject then approve again
    changed = evaluate(
        p,
        ctx(
            card=card,
            approvals=(
                approval("dan@example.com", decision="reject", at=NOW - timedelta(hours=2)),
                approval("dan@example.com", at=NOW - timedelta(hours=1)),
            ),
        ),
    )
    assert changed.allowed
    # older than the candidate's last change
    stale = only(
        evaluate(p, ctx(card=card, approvals=(approval("alice@example.com", at=CREATED - timedelta(days=1)),)))
    )
    assert not stale.passed and "predates the candidate's last change" in stale.message
    # an invalid (forged/replayed) approval never counts and its reason is shown
    bad = approval("alice@example.com", valid=False, reason="approval by alice was signed for another version '3'")
    forged = only(evaluate(p, ctx(card=card, approvals=(bad,))))
    assert not forged.passed and "signed for another version '3'" in forged.message
    aged = policy("- {type: approvals, count: 1, max_age_days: 1, roles: [model-risk]}\n")
    assert not evaluate(aged, ctx(approvals=(approval("alice@example.com", at=NOW - timedelta(days=2)),))).allowed


def test_approvals_expire_after_30_days_by_default_and_used_ones_are_named() -> None:
    p = policy("- {type: approvals, count: 1, roles: [model-risk]}\n")
    long_ago = candidate(created_at=NOW - timedelta(days=60), changed_at=NOW - timedelta(days=60))
    old = approval("alice@example.com", at=NOW - timedelta(days=31))
    expired = only(evaluate(p, ctx(candidate=long_ago, approvals=(old,))))
    assert not expired.passed and "expired (older than 30 days)" in expired.message
    fresh = approval("alice@example.com", at=NOW - timedelta(days=29))
    assert evaluate(p, ctx(candidate=long_ago, approvals=(fresh,))).allowed
    used = only(evaluate(p, ctx(candidate=long_ago, used_approvals=True)))
    assert not used.passed and "used by that promotion" in used.message
    reusable = policy("- {type: approvals, count: 1, roles: [model-risk], reusable: true}\n")
    assert reusable.targets["champion"].rules[0].reusable  # type: ignore[union-attr]


def test_approvals_require_each_role() -> None:
    p = policy("- {type: approvals, count: 2, roles: [model-risk, business-owner], require_each_role: true}\n")
    both_risk = only(evaluate(p, ctx(approvals=(approval("alice@example.com"), approval("dan@example.com")))))
    assert not both_risk.passed and "no approval yet by role business-owner" in both_risk.message
    mixed = (approval("alice@example.com"), approval("bob@example.com", roles=("business-owner",)))
    assert evaluate(p, ctx(approvals=mixed)).allowed


def test_unknown_target_is_refused_and_decision_shape() -> None:
    p = policy("- {type: metric_threshold, metric: accuracy, min: 0.5}\n")
    d = evaluate(p, ctx(target="prod"))
    assert not d.allowed and d.rules[0].name == "policy_target" and "no target 'prod'" in d.rules[0].message
    ok = evaluate(p, ctx())
    data = ok.to_dict()
    assert set(data) >= {"allowed", "rules", "audit_seq", "policy_hash"}
    assert data["rules"][0].keys() == {"name", "passed", "observed", "expected", "message"}
    assert data["policy_hash"] == p.policy_hash and len(p.policy_hash) == 40
    failing = ok.with_rule(RuleResult("holder_unchanged", False, "5", "3", "moved"))
    assert not failing.allowed and failing.reasons() == ["holder_unchanged: moved"]


def test_every_rule_is_reported(tmp_path: Path) -> None:
    p = policy(
        """\
        - {type: metric_threshold, metric: accuracy, min: 0.95}
        - {type: lineage_clean, require_data_in_remote: false, require_lock_up_to_date: false}
        - {type: drift_passed}
        - {type: approvals, roles: [model-risk]}
        """
    )
    d = evaluate(p, ctx())
    assert [r.passed for r in d.rules] == [False, True, False, False]
    assert len(d.reasons()) == 3
