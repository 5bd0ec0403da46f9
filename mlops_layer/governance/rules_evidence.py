"""Rules on the evidence about the version: clean lineage, a filled-in model card, the alias history it has held
(``promotion_order``) and the drift checks on record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from mlops_layer import tags
from mlops_layer.governance.approvals import format_time
from mlops_layer.governance.cards import check_required
from mlops_layer.governance.context import AliasHold, LineageStatus, PromotionContext, Verdict, _fmt
from mlops_layer.governance.policy import CardFields, DriftPassed, LineageClean, PromotionOrder

TAG_DIRTY = tags.DIRTY
TAG_COMMIT = tags.COMMIT
TAG_GOVERNED = tags.LINEAGE_GOVERNED


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
