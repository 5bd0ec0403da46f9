"""Rules on metric values: ``metric_threshold`` and ``no_regression`` on the metrics frozen at registration, and
``evaluation`` on the metrics the layer measured itself on a holdout."""

from __future__ import annotations

from typing import Any

from mlops_layer.governance.context import PromotionContext, Verdict, _fmt
from mlops_layer.governance.policy import Evaluation, MetricThreshold, NoRegression, rule_name


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
