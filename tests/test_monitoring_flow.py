"""The monitoring flow on fakes (pure core): order of effects, bad input, alerts once, failed notifications audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_layer.errors import InputError
from mlops_layer.monitoring.alerts import AlertEvent, AlertRule, Window
from mlops_layer.monitoring.monitor import BatchInput, Predictions, run_batch
from mlops_layer.monitoring.notifiers import DeliveryResult
from mlops_layer.monitoring.state import load_state

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)


class FakeModel:
    feature_names = ("a", "b")

    def predict(self, features: Any) -> Predictions:
        score = 1 / (1 + np.exp(-features["a"].to_numpy()))
        return Predictions((score >= 0.5).astype(int), np.column_stack([1 - score, score]), np.array([0, 1]))


@dataclass
class FakeDrift:
    share: float
    drift: bool = False
    schema_problems: tuple[str, ...] = ()
    drifted_columns: tuple[str, ...] = ()
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"share": self.share, "prediction": {"score": 0.05}}


@dataclass
class FakeTracking:
    calls: list[dict[str, Any]] = field(default_factory=list)
    attached: list[tuple[str, str, int]] = field(default_factory=list)

    def log_batch(self, **kw: Any) -> tuple[str, str]:
        self.calls.append(kw)
        run_id = kw["run_id"] or f"run-v{kw['version']}"
        return run_id, f"runs:/{run_id}"

    def attach(self, run_id: str, path: Path, seq: int) -> None:
        self.attached.append((run_id, path.name, seq))


@dataclass
class FakeTrail:
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def append(self, action: str, **kw: Any) -> int:
        self.entries.append((action, kw))
        return len(self.entries)

    def actions(self) -> list[str]:
        return [a for a, _ in self.entries]


class Notifications:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.sent: list[AlertEvent] = []

    def __call__(self, events: Sequence[AlertEvent]) -> list[DeliveryResult]:
        self.sent.extend(events)
        return [
            DeliveryResult(
                "webhook",
                "http://h/x",
                self.ok,
                "d1",
                3,
                500,
                None if self.ok else "HTTP 500",
                alert_id=e.alert_id,
                queued=not self.ok,
            )
            for e in events
        ]


def frame(n: int = 200, shift: float = 0.0, labels: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    a = rng.normal(shift, 1, n)
    out = pd.DataFrame({"a": a, "b": rng.normal(0, 1, n), "id": np.arange(n)})
    if labels:
        out["y"] = (a + rng.normal(0, 0.5, n) > 0).astype(int)
    return out


def batch(tmp_path: Path, data: pd.DataFrame, seq: int = 0, *, labels: str | None = "y", **kw: Any) -> BatchInput:
    return BatchInput(
        model="churn",
        alias="champion",
        version=kw.pop("version", "1"),
        batch_path=tmp_path / f"b{seq}.csv",
        frame=data,
        labels=labels,
        promoted={"accuracy": 0.9, "roc_auc": 0.95},
        experiment="monitoring/churn",
        timestamp=T0 + timedelta(hours=seq),
        batch_sha256="f" * 64,
        **kw,
    )


def monitor(tmp_path: Path, inp: BatchInput, *, share: float = 0.0, rules: Sequence[AlertRule] = (), **kw: Any) -> Any:
    drift = kw.pop("drift", FakeDrift(share, drift=share >= 0.5))
    return run_batch(
        inp,
        model=kw.pop("model", FakeModel()),
        drift=lambda features, predictions: drift,
        tracking=kw.pop("tracking", FakeTracking()),
        trail=kw.pop("trail", FakeTrail()),
        notify=kw.pop("notify", Notifications()),
        rules=rules,
        state_dir=tmp_path / "state",
        **kw,
    )


DRIFT = AlertRule(name="drift", type="drift_share", max=0.3, window=Window(2, 3), clear_after=2)
ACC = AlertRule(name="acc-floor", type="metric_threshold", metric="accuracy", min=0.8)


def test_one_batch_is_scored_logged_audited(tmp_path: Path) -> None:
    tracking, trail = FakeTracking(), FakeTrail()
    result = monitor(tmp_path, batch(tmp_path, frame()), share=0.1, rules=[DRIFT, ACC], tracking=tracking, trail=trail)
    assert result.seq == 1 and result.version == "1" and result.rows == 200
    assert 0.8 < result.metrics["accuracy"] <= 1 and "roc_auc" in result.metrics
    assert result.prediction["prediction.count"] == 200
    assert result.drift_share == 0.1 and result.events == () and result.run_id == "run-v1"
    (call,) = tracking.calls
    assert call["seq"] == 1 and call["timestamp"] == T0 and call["metrics"]["drift.share"] == 0.1
    assert call["metrics"]["accuracy"] == result.metrics["accuracy"]
    assert call["metrics"]["signal.prediction_drift"] == 0.05
    assert trail.actions() == ["monitor.batch"]
    details = trail.entries[0][1]["details"]
    assert details["seq"] == 1 and details["batch_sha256"] == "f" * 64 and details["breaches"] == []
    assert [a.breached for a in result.assessments] == [False, False]
    assert load_state(tmp_path / "state", "churn").runs == {"1": "run-v1"}


def test_drifting_batches_fire_once_notify_and_clear(tmp_path: Path) -> None:
    trail, notes = FakeTrail(), Notifications()
    shares = [0.1, 0.6, 0.7, 0.8, 0.9, 0.1, 0.1, 0.1]
    results = [
        monitor(tmp_path, batch(tmp_path, frame(), i), share=s, rules=[DRIFT], trail=trail, notify=notes)
        for i, s in enumerate(shares)
    ]
    assert [(r.seq, [e.kind for e in r.events]) for r in results if r.events] == [(3, ["fired"]), (7, ["cleared"])]
    fired = results[2].events[0]
    assert fired.observed == 0.7 and fired.threshold == 0.3 and fired.evidence["run_id"] == "run-v1"
    assert fired.evidence["step"] == "3"
    assert [e.kind for e in notes.sent] == ["fired", "cleared"]
    assert trail.actions().count("monitor.batch") == 8
    assert trail.actions().count("alert.fired") == 1 and trail.actions().count("alert.cleared") == 1
    assert results[3].open_alerts == ("drift",) and results[-1].open_alerts == ()
    # the fired alert is audited right after its batch, before anyone is notified
    i = trail.actions().index("alert.fired")
    assert trail.actions()[i - 1] == "monitor.batch" and trail.entries[i][1]["details"]["alert_id"] == fired.alert_id


def test_failed_notification_is_audited_and_the_command_finishes(tmp_path: Path) -> None:
    trail = FakeTrail()
    result = monitor(
        tmp_path,
        batch(tmp_path, frame()),
        share=0.9,
        rules=[AlertRule(name="d", type="drift_share", max=0.3)],
        trail=trail,
        notify=Notifications(ok=False),
    )
    assert [e.kind for e in result.events] == ["fired"] and len(result.failed_deliveries) == 1
    assert trail.actions() == ["monitor.batch", "alert.fired", "notification.failed"]
    assert trail.entries[-1][1]["decision"] == "queued"
    assert trail.entries[-1][1]["details"]["target"] == "http://h/…"  # the URL token is not audited


def test_labels_missing_and_metric_rules_without_labels(tmp_path: Path) -> None:
    trail = FakeTrail()
    with pytest.raises(InputError, match="labels column 'label' is not in batch b0.csv") as info:
        monitor(tmp_path, batch(tmp_path, frame(), labels="label"), rules=[ACC], trail=trail)
    assert "columns: a, b, id, y" in info.value.message and trail.entries == []
    unlabelled = monitor(tmp_path, batch(tmp_path, frame(labels=False), labels=None), rules=[ACC])
    assert unlabelled.metrics == {} and unlabelled.assessments[0].breached is None
    assert any("no --labels" in w for w in unlabelled.warnings)


def test_changed_schema_is_refused_and_audited(tmp_path: Path) -> None:
    trail = FakeTrail()
    renamed = frame().rename(columns={"b": "b_renamed"})
    with pytest.raises(InputError, match=r"1 feature column\(s\) missing: b"):
        monitor(tmp_path, batch(tmp_path, renamed), trail=trail)
    assert trail.actions() == ["monitor.batch"] and trail.entries[0][1]["decision"] == "rejected"
    drift = FakeDrift(0.0, schema_problems=("column 'a': dtype changed from float to string",))
    with pytest.raises(InputError, match="does not match the reference schema.*dtype changed"):
        monitor(tmp_path, batch(tmp_path, frame()), trail=trail, drift=drift)
    assert trail.actions() == ["monitor.batch", "monitor.batch"]
    assert load_state(tmp_path / "state", "churn").last_seq == 0  # a refused batch is not a point in time
    told: list[list[str]] = []

    def rejected(problems: Sequence[str]) -> list[DeliveryResult]:
        told.append(list(problems))
        return [DeliveryResult("webhook", "http://h/x", False, "d2", 2, 500, "HTTP 500", queued=True)]

    with pytest.raises(InputError):
        monitor(tmp_path, batch(tmp_path, frame()), trail=trail, drift=drift, notify_rejected=rejected)
    assert told == [["column 'a': dtype changed from float to string"]]
    assert trail.actions()[-2:] == ["monitor.batch", "notification.failed"]


def test_unlabelled_rows_are_left_out_of_the_metrics(tmp_path: Path) -> None:
    data = frame()
    data.loc[:49, "y"] = np.nan
    result = monitor(tmp_path, batch(tmp_path, data), rules=[ACC])
    assert any("50 row(s) without a label" in w for w in result.warnings)
    assert "accuracy" in result.metrics


def test_a_new_version_gets_its_own_monitoring_run(tmp_path: Path) -> None:
    tracking = FakeTracking()
    monitor(tmp_path, batch(tmp_path, frame(), 0), tracking=tracking)
    monitor(tmp_path, batch(tmp_path, frame(), 1), tracking=tracking)
    monitor(tmp_path, batch(tmp_path, frame(), 2, version="2"), tracking=tracking)
    assert [(c["version"], c["run_id"], c["seq"]) for c in tracking.calls] == [
        ("1", None, 1),
        ("1", "run-v1", 2),
        ("2", None, 3),
    ]


def test_metric_drop_from_promoted_value(tmp_path: Path) -> None:
    rule = AlertRule(name="acc-drop", type="metric_drop", metric="accuracy", max_drop=0.02)
    result = monitor(tmp_path, batch(tmp_path, frame(shift=0.0)), rules=[rule])
    (a,) = result.assessments
    assert a.breached == (result.metrics["accuracy"] < 0.88) and a.threshold == pytest.approx(0.88)


def test_evidently_report_is_written_when_an_alert_fires_and_becomes_its_evidence(tmp_path: Path) -> None:
    tracking, written = FakeTracking(), []

    def report(seq: int) -> str:
        written.append(seq)
        return str(tmp_path / f"r{seq}.html")

    rule = AlertRule(name="d", type="drift_share", max=0.3)
    for i, share in enumerate([0.1, 0.9, 0.9]):
        result = monitor(
            tmp_path, batch(tmp_path, frame(), i), share=share, rules=[rule], tracking=tracking, report=report
        )
        if i == 1:
            assert result.events[0].evidence["report"] == str(tmp_path / "r2.html") and result.report.endswith(
                "r2.html"
            )
    assert written == [2] and tracking.attached == [("run-v1", "r2.html", 2)]  # only when it fired
    always = monitor(
        tmp_path, batch(tmp_path, frame(), 9), share=0.0, tracking=tracking, report=report, report_always=True
    )
    assert always.report is not None and written == [2, 4]


def test_a_failing_report_warns_and_monitoring_goes_on(tmp_path: Path) -> None:
    def report(seq: int) -> str:
        raise InputError("no column could be compared")

    rule = AlertRule(name="d", type="drift_share", max=0.3)
    result = monitor(tmp_path, batch(tmp_path, frame()), share=0.9, rules=[rule], report=report)
    assert [e.kind for e in result.events] == ["fired"] and "report" not in result.events[0].evidence
    assert any("could not be written" in w for w in result.warnings)


def test_two_monitors_of_one_model_at_once_lose_nothing(tmp_path: Path) -> None:
    import threading

    tracking, trail, results = FakeTracking(), FakeTrail(), []
    rule = AlertRule(name="d", type="drift_share", max=0.3, window=Window(2, 2))

    def one(i: int) -> None:
        results.append(
            monitor(tmp_path, batch(tmp_path, frame(), i), share=0.9, rules=[rule], tracking=tracking, trail=trail)
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.seq for r in results) == [1, 2, 3, 4]
    assert sum(len(r.events) for r in results) == 1  # fired once, at the second batch, whoever ran it
    assert load_state(tmp_path / "state", "churn").last_seq == 4
