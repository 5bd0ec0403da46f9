"""Alert rules and the alert state machine (pure core): parsing, windows, cooldowns, clearing, persistence."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_layer.errors import ConfigError, InputError
from mlops_layer.monitoring.alerts import (
    CLEARED,
    FIRED,
    AlertRule,
    AlertState,
    BatchPoint,
    Cooldown,
    Window,
    assess,
    evaluate_alerts,
    parse_alert_rules,
)
from mlops_layer.monitoring.state import load_state, model_lock, save_state, state_path

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)

EXAMPLE = """
alerts:
  - name: data-drift
    type: drift_share
    max: 0.3
    window: {breaches: 3, of: 5}
    cooldown: {hours: 6, batches: 2}
    clear_after: 3
    severity: critical
    description: more than 30% of the feature columns drifted
  - type: metric_threshold
    metric: accuracy
    min: 0.8
  - name: auc-drop
    type: metric_drop
    metric: roc_auc
    direction: higher
    max_drop: 0.05
    max_relative_drop: 0.1
    models: [churn]
  - name: prediction-shift
    type: prediction_drift
    max: 0.2
"""


def point(seq: int, *, share: float | None = None, metrics: dict[str, float] | None = None, **kw: Any) -> BatchPoint:
    return BatchPoint(
        seq=seq,
        timestamp=kw.pop("timestamp", T0 + timedelta(hours=seq)),
        model=kw.pop("model", "churn"),
        version=kw.pop("version", "1"),
        drift_share=share,
        metrics=metrics or {},
        promoted=kw.pop("promoted", {}),
        evidence=kw.pop("evidence", {"run_id": f"run{seq}"}),
        **kw,
    )


def drift_rule(**kw: Any) -> AlertRule:
    return AlertRule(name=kw.pop("name", "drift"), type="drift_share", max=0.3, **kw)


def run(rules: list[AlertRule], shares: list[float | None], **kw: Any) -> list[tuple[str, int]]:
    points = [point(i + 1, share=s, **kw) for i, s in enumerate(shares)]
    _, events = evaluate_alerts(rules, points, AlertState("churn"))
    return [(e.kind, e.batch_seq) for e in events]


B, H = 0.9, 0.1  # a breaching and a healthy drift share


# ------------------------------------------------------------------------------------------------------ parsing


def test_parse_complete_example() -> None:
    rules = parse_alert_rules(yaml.safe_load(EXAMPLE)["alerts"], source="policy.yaml")
    assert [r.name for r in rules] == ["data-drift", "metric_threshold:accuracy", "auc-drop", "prediction-shift"]
    drift, acc, drop, pred = rules
    assert drift.window == Window(3, 5) and drift.cooldown == Cooldown(seconds=6 * 3600, batches=2)
    assert drift.clear_after == 3 and drift.severity == "critical" and drift.max == 0.3
    assert acc.min == 0.8 and acc.clear_after == 3 and acc.window == Window(1, 1) and acc.needs_labels
    assert drop.max_drop == 0.05 and drop.max_relative_drop == 0.1 and drop.applies_to("churn")
    assert not drop.applies_to("fraud")
    assert pred.type == "prediction_drift" and pred.max == 0.2
    assert parse_alert_rules(None, source="policy.yaml") == []


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([{"type": "nope"}], "field 'alerts[0].type': unknown alert rule type 'nope'"),
        ([{"type": "drift_share"}], "field 'alerts[0]': missing required field 'max'"),
        ([{"type": "drift_share", "max": 1.5}], "field 'alerts[0].max': must be at most 1"),
        ([{"type": "drift_share", "max": "high"}], "field 'alerts[0].max': expected a number"),
        ([{"type": "drift_share", "max": 0.3, "windw": {}}], "field 'alerts[0].windw': unknown field"),
        (
            [{"type": "drift_share", "max": 0.3, "window": {"breaches": 4, "of": 3}}],
            "field 'alerts[0].window.breaches': 4 breaches cannot happen in a window of 3",
        ),
        ([{"type": "drift_share", "max": 0.3, "window": {"of": 3}}], "missing required field 'breaches'"),
        ([{"type": "drift_share", "max": 0.3, "cooldown": {"weeks": 1}}], "alerts[0].cooldown.weeks': unknown"),
        ([{"type": "drift_share", "max": 0.3, "clear_after": 0}], "alerts[0].clear_after': must be at least 1"),
        ([{"type": "drift_share", "max": 0.3, "severity": "loud"}], "alerts[0].severity': must be one of"),
        ([{"type": "metric_threshold", "metric": "accuracy"}], "needs 'min' (a floor) and/or 'max'"),
        (
            [{"type": "metric_threshold", "metric": "accuracy", "min": 0.9, "max": 0.1}],
            "'alerts[0].max': max 0.1 is below",
        ),
        ([{"type": "metric_drop", "metric": "accuracy"}], "needs 'max_drop' (absolute) and/or 'max_relative_drop'"),
        (
            [{"type": "metric_drop", "metric": "accuracy", "max_drop": 0.1, "direction": "up"}],
            "direction': must be one",
        ),
        ([{"type": "metric_threshold", "metric": "acc", "min": 0.9}], "'alerts[0].metric': unknown metric 'acc'"),
        ([{"type": "metric_threshold", "min": 0.1}], "missing required field 'metric'"),
        ({"type": "drift_share"}, "field 'alerts': expected a list of alert rules, got a mapping"),
        (
            [{"type": "drift_share", "max": 0.3}, {"type": "drift_share", "max": 0.5}],
            "alerts[1]': two alert rules are both named 'drift_share'",
        ),
    ],
)
def test_parse_errors_name_the_field(rules: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_alert_rules(rules, source="governance/policy.yaml")
    assert info.value.message.startswith("governance/policy.yaml")
    assert expected in info.value.message


def test_parse_located_nodes_give_line_numbers() -> None:
    """The policy engineer's located YAML nodes (value/file/line) give errors with the line."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Loc:
        value: Any
        file: str
        line: int
        field: str = ""

    bad = Loc(
        [Loc({"type": Loc("drift_share", "p.yaml", 12), "max": Loc(2.0, "p.yaml", 13)}, "p.yaml", 12)], "p.yaml", 11
    )
    with pytest.raises(ConfigError, match=r"^p\.yaml:13: field 'alerts\[0\]\.max': must be at most 1"):
        parse_alert_rules(bad, source="ignored")
    good = Loc(
        [Loc({"type": Loc("drift_share", "p.yaml", 12), "max": Loc(0.2, "p.yaml", 13)}, "p.yaml", 12)], "p.yaml", 11
    )
    assert parse_alert_rules(good, source="x")[0].max == 0.2


# ------------------------------------------------------------------------------------------------- assessments


def test_assess_reports_observed_threshold_and_margin() -> None:
    a = assess(drift_rule(), point(1, share=0.5))
    assert (a.breached, a.observed, a.threshold) == (True, 0.5, 0.3)
    assert a.by == pytest.approx(0.2) and "above 0.3 by 0.2" in a.message
    floor = AlertRule(name="acc", type="metric_threshold", metric="accuracy", min=0.8)
    a = assess(floor, point(1, metrics={"accuracy": 0.75}))
    assert a.breached and a.by == pytest.approx(0.05) and "below its floor 0.8" in a.message
    assert assess(floor, point(1, metrics={"accuracy": 0.85})).breached is False
    assert assess(floor, point(1)).breached is None  # no labels: unobserved, not healthy
    assert "no labels" in assess(floor, point(1)).message
    ceiling = AlertRule(name="rmse", type="metric_threshold", metric="rmse", max=2.0)
    assert assess(ceiling, point(1, metrics={"rmse": 2.5})).by == pytest.approx(0.5)


def test_assess_metric_drop_absolute_relative_and_lower_is_better() -> None:
    drop = AlertRule(name="d", type="metric_drop", metric="auc", max_drop=0.05)
    promoted = {"auc": 0.90}
    a = assess(drop, point(1, metrics={"auc": 0.80}, promoted=promoted))
    assert a.breached and a.threshold == pytest.approx(0.85) and a.by == pytest.approx(0.05)
    assert "0.1 worse than its promoted value 0.9" in a.message
    assert assess(drop, point(1, metrics={"auc": 0.86}, promoted=promoted)).breached is False
    missing = assess(drop, point(1, metrics={"auc": 0.80}))
    assert missing.breached is None and "no promoted value" in missing.message
    both = AlertRule(name="d", type="metric_drop", metric="auc", max_drop=0.2, max_relative_drop=0.05)
    assert assess(both, point(1, metrics={"auc": 0.85}, promoted=promoted)).breached  # the stricter allowance wins
    lower = AlertRule(name="e", type="metric_drop", metric="rmse", direction="lower", max_relative_drop=0.1)
    assert assess(lower, point(1, metrics={"rmse": 1.2}, promoted={"rmse": 1.0})).breached
    assert assess(lower, point(1, metrics={"rmse": 0.8}, promoted={"rmse": 1.0})).breached is False


# ------------------------------------------------------------------------------------------------ state machine


def test_fires_once_while_the_condition_holds() -> None:
    assert run([drift_rule()], [B] * 10) == [(FIRED, 1)]


def test_window_m_of_n() -> None:
    rule = drift_rule(window=Window(3, 5))
    assert run([rule], [B, H, B, H, H, H, B]) == []  # never 3 breaches within 5 batches
    assert run([rule], [B, H, B, H, B]) == [(FIRED, 5)]
    assert run([rule], [B, B, H, H, H, B]) == []  # the first breaches slid out of the window


def test_clears_after_k_consecutive_healthy_batches() -> None:
    rule = drift_rule(clear_after=3)
    assert run([rule], [B, H, H, B, H, H, H, H]) == [(FIRED, 1), (CLEARED, 7)]


def test_flapping_signal_does_not_spam() -> None:
    rule = drift_rule(clear_after=3)
    assert run([rule], [B, H] * 20) == [(FIRED, 1)]
    # Clearing fast, the cooldown keeps it quiet: a fire at most every 6 batches.
    fast = drift_rule(clear_after=1, cooldown=Cooldown(batches=6))
    events = run([fast], [B, H] * 10)
    assert [e for e in events if e[0] == FIRED] == [(FIRED, 1), (FIRED, 7), (FIRED, 13), (FIRED, 19)]


def test_cooldown_in_batch_time_and_suppressed_count() -> None:
    rule = drift_rule(clear_after=1, cooldown=Cooldown(seconds=3 * 3600))
    points = [point(i, share=s) for i, s in enumerate([B, H, B, H, B], start=1)]  # one batch per hour
    state, events = evaluate_alerts([rule], points, AlertState("churn"))
    kinds = [(e.kind, e.batch_seq) for e in events]
    assert kinds == [(FIRED, 1), (CLEARED, 2), (FIRED, 5)]  # batch 3 is 2 h after the fire: suppressed
    assert state.rules["drift"].suppressed == 1


def test_unobserved_batches_neither_count_nor_break_the_streak() -> None:
    rule = AlertRule(name="acc", type="metric_threshold", metric="accuracy", min=0.8, window=Window(2, 2))
    low, ok = {"accuracy": 0.5}, {"accuracy": 0.9}
    points = [point(1, metrics=low), point(2), point(3, metrics=low), point(4, metrics=ok), point(5)]
    points += [point(6, metrics=ok), point(7, metrics=ok)]
    _, events = evaluate_alerts([rule], points, AlertState("churn"))
    assert [(e.kind, e.batch_seq) for e in events] == [(FIRED, 3), (CLEARED, 7)]


def test_alert_event_names_what_breached_and_links_evidence() -> None:
    rule = drift_rule(severity="critical")
    evidence = {"report": "/tmp/r.html", "run_id": "abc", "run_url": "http://mlflow/#/runs/abc"}
    _, events = evaluate_alerts([rule], [point(1, share=0.75, evidence=evidence)], AlertState("churn"))
    (event,) = events
    assert (event.model, event.version, event.rule, event.severity) == ("churn", "1", "drift", "critical")
    assert event.observed == 0.75 and event.threshold == 0.3 and event.by == pytest.approx(0.45)
    assert event.alert_id == "churn:drift:1" and event.evidence == evidence
    assert event.window == "1 of the last 1 batch" and event.breaches == 1
    assert event.title == "[ALERT] churn v1: drift (critical)"
    assert type(event).from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_evaluation_is_idempotent_and_incremental() -> None:
    rules = [drift_rule(window=Window(2, 3), clear_after=2)]
    points = [point(i + 1, share=s) for i, s in enumerate([B, H, B, B, H, H, B, B, B])]
    full_state, full_events = evaluate_alerts(rules, points, AlertState("churn"))
    again_state, again = evaluate_alerts(rules, points, full_state)
    assert again == [] and again_state == full_state
    state, events = AlertState("churn"), []
    for p in points:  # one batch at a time, through JSON, as the monitor does
        state, new = evaluate_alerts(rules, [p], state)
        state = AlertState.from_dict(json.loads(json.dumps(state.to_dict())))
        events += new
    assert events == full_events and state == full_state


def test_a_new_serving_version_restarts_the_window() -> None:
    rule = drift_rule(window=Window(2, 3))
    points = [point(1, share=B), point(2, share=B, version="2")]
    _, events = evaluate_alerts([rule], points, AlertState("churn"))
    assert events == []
    _, events = evaluate_alerts([rule], [*points, point(3, share=B, version="2")], AlertState("churn"))
    assert [(e.kind, e.version) for e in events] == [(FIRED, "2")]


def test_rules_for_other_models_and_removed_rules_are_ignored() -> None:
    other = drift_rule(name="other", models=("fraud",))
    state, events = evaluate_alerts([other, drift_rule()], [point(1, share=B)], AlertState("churn"))
    assert [e.rule for e in events] == ["drift"] and set(state.rules) == {"drift"}
    state, _ = evaluate_alerts([], [point(2, share=B)], state)
    assert state.rules == {} and state.last_seq == 2


@settings(max_examples=150, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from([B, H, None]), max_size=40),
    m=st.integers(1, 3),
    extra=st.integers(0, 2),
    k=st.integers(1, 3),
    cooldown=st.integers(0, 4),
)
def test_state_machine_invariants(outcomes: list[float | None], m: int, extra: int, k: int, cooldown: int) -> None:
    rule = drift_rule(window=Window(m, m + extra), clear_after=k, cooldown=Cooldown(batches=cooldown))
    points = [point(i + 1, share=s) for i, s in enumerate(outcomes)]
    _, events = evaluate_alerts([rule], points, AlertState("churn"))
    kinds = [e.kind for e in events]
    # fired and cleared alternate, starting with fired: never two notifications for one open alert
    assert kinds == [FIRED, CLEARED] * (len(kinds) // 2) + [FIRED] * (len(kinds) % 2)
    fired = [e.batch_seq for e in events if e.kind == FIRED]
    for event in events:
        assert (outcomes[event.batch_seq - 1] == B) == (event.kind == FIRED)  # fires on a breach, clears on health
    for a, b in zip(fired, fired[1:], strict=False):
        assert b - a >= max(cooldown, k + 1)  # cooldown respected, and a clear needs k healthy batches first


# ------------------------------------------------------------------------------------------------- persistence


def test_state_persists_atomically_as_json(tmp_path: Path) -> None:
    state, _ = evaluate_alerts([drift_rule()], [point(1, share=B)], AlertState("churn"))
    path = save_state(tmp_path, state)
    assert path == tmp_path / "monitoring" / "churn.json" == state_path(tmp_path, "churn")
    assert json.loads(path.read_text())["rules"]["drift"]["status"] == "open"
    assert load_state(tmp_path, "churn") == state
    assert [p.name for p in path.parent.iterdir()] == ["churn.json"]  # no temp file left behind
    assert load_state(tmp_path, "fraud") == AlertState("fraud")
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="is corrupt"):
        load_state(tmp_path, "churn")
    with pytest.raises(InputError, match="not valid"):
        state_path(tmp_path, "../etc")


def test_model_lock_is_exclusive(tmp_path: Path) -> None:
    import multiprocessing

    from mlops_layer.errors import ConcurrencyError

    with model_lock(tmp_path, "churn"):
        ctx = multiprocessing.get_context("fork")
        queue: Any = ctx.Queue()
        proc = ctx.Process(target=_try_lock, args=(tmp_path, queue))
        proc.start()
        proc.join(10)
        assert queue.get(timeout=5) == "busy"
    with model_lock(tmp_path, "churn", timeout=0.1):
        pass
    with pytest.raises(ConcurrencyError), model_lock(tmp_path, "x"), model_lock(tmp_path, "x", timeout=0.1):
        pass


def _try_lock(root: Path, queue: Any) -> None:
    from mlops_layer.errors import ConcurrencyError

    try:
        with model_lock(root, "churn", timeout=0.2):
            queue.put("got it")
    except ConcurrencyError:
        queue.put("busy")


def test_load_alert_rules_from_the_policy_names_the_line(tmp_path: Path) -> None:
    from mlops_layer.monitoring.alerts import load_alert_rules

    policy = tmp_path / "policy.yaml"
    assert load_alert_rules(policy) == []  # no policy file: no rules
    policy.write_text(EXAMPLE)
    assert [r.name for r in load_alert_rules(policy)][:1] == ["data-drift"]
    policy.write_text("version: 1\nalerts:\n  - type: drift_share\n    max: 3\n")
    with pytest.raises(ConfigError, match=r"policy\.yaml:4: field 'alerts\[0\]\.max': must be at most 1"):
        load_alert_rules(policy)
    policy.write_text("version: 1\ntargets: {}\n")
    assert load_alert_rules(policy) == []
