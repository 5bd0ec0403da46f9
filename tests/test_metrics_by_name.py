"""Metrics by name (built-in, scikit-learn, module:function), the evaluation rule's parsing and verdicts, the
evaluation flow's reuse of audited results, and column roles (card and reference profile). Core only: fakes."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlops_layer import metrics
from mlops_layer.errors import ConfigError
from mlops_layer.governance.cards import parse_card
from mlops_layer.governance.evaluation import EvaluationOutcome, Holdout, VersionScores, evaluate_versions
from mlops_layer.governance.policy import Evaluation, EvaluationMetric, NoRegression, parse_policy, rule_name
from mlops_layer.governance.rules import Candidate, Holder, PromotionContext, evaluate_rule
from mlops_layer.monitoring.scoring import evaluate_batch, metric_names

RNG = np.random.default_rng(7)
Y = RNG.integers(0, 2, 400)
SCORE = np.clip(Y * 0.3 + RNG.random(400) * 0.7, 0, 1)
PRED = (SCORE > 0.5).astype(int)
PROBA = np.column_stack([1 - SCORE, SCORE])


def test_builtin_and_sklearn_names_know_their_direction_and_inputs() -> None:
    assert metrics.resolve("roc_auc").direction == "higher" and metrics.resolve("roc_auc").proba
    assert metrics.resolve("rmse").direction == "lower"
    balanced = metrics.resolve("balanced_accuracy")  # a scikit-learn name without its _score suffix
    assert (balanced.source, balanced.direction, balanced.proba) == ("sklearn", "higher", False)
    assert balanced.compute(Y, PRED) == pytest.approx(skm.balanced_accuracy_score(Y, PRED))
    mape = metrics.resolve("mean_absolute_percentage_error")
    assert mape.direction == "lower"
    ap = metrics.resolve("average_precision")
    assert ap.proba and ap.compute(Y, PRED, PROBA) == pytest.approx(skm.average_precision_score(Y, SCORE))
    brier = metrics.resolve("brier_score_loss")
    assert brier.direction == "lower" and brier.compute(Y, PRED, PROBA) == pytest.approx(skm.brier_score_loss(Y, SCORE))
    assert metrics.resolve("log_loss").compute(Y, PRED, PROBA) == pytest.approx(skm.log_loss(Y, PROBA), rel=1e-6)


def test_unknown_metric_lists_what_is_available() -> None:
    with pytest.raises(ConfigError) as err:
        metrics.resolve("acuracy")
    assert "unknown metric 'acuracy'" in err.value.message
    assert err.value.hint and "accuracy" in err.value.hint and "balanced_accuracy_score" in err.value.hint
    assert "module:function" in err.value.hint


def test_custom_module_function_metric(tmp_path: Path) -> None:
    (tmp_path / "team_metrics.py").write_text(
        textwrap.dedent(
            """\
            import numpy as np

            def cost(y_true, y_pred):
                return float(np.sum((y_true == 1) & (y_pred == 0)) * 5 + np.sum((y_true == 0) & (y_pred == 1)))
            cost.greater_is_better = False

            def no_direction(y_true, y_pred):
                return 0.0
            """
        )
    )
    try:
        spec = metrics.resolve("team_metrics:cost", root=tmp_path)
        assert (spec.source, spec.direction) == ("custom", "lower")
        fn = 5 * np.sum((Y == 1) & (PRED == 0)) + np.sum((Y == 0) & (PRED == 1))
        assert spec.compute(Y, PRED) == pytest.approx(fn)
        assert metrics.resolve("team_metrics:no_direction", root=tmp_path).direction is None
        with pytest.raises(ConfigError, match="has no function 'nope'"):
            metrics.resolve("team_metrics:nope", root=tmp_path)
        with pytest.raises(ConfigError, match="cannot import module 'absent_module'"):
            metrics.resolve("absent_module:f", root=tmp_path)
        # monitoring computes the same names
        assert metric_names(["team_metrics:cost", "train_accuracy", "f1"]) == ["f1", "team_metrics:cost"]
        got = evaluate_batch("classifier", Y, PRED, PROBA, classes=np.array([0, 1]), wanted=["team_metrics:cost"])
        assert got["team_metrics:cost"] == pytest.approx(fn)
    finally:
        sys.modules.pop("team_metrics", None)


def test_monitoring_computes_sklearn_names_and_regression() -> None:
    y = RNG.normal(size=300)
    p = y + RNG.normal(scale=0.3, size=300)
    got = evaluate_batch("regressor", y, p, None, classes=None, wanted=["rmse", "mae", "r2", "median_absolute_error"])
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert got["r2"] == pytest.approx(skm.r2_score(y, p))
    assert got["median_absolute_error"] == pytest.approx(skm.median_absolute_error(y, p))
    assert "accuracy" not in evaluate_batch("regressor", y, p, None, classes=None, wanted=["accuracy"])


# -- policy ----------------------------------------------------------------------------------------------------------


def policy(rules: str) -> str:
    return textwrap.dedent(
        """\
        version: 1
        roles: {alice@example.com: [model-risk]}
        targets:
          champion:
            rules:
        """
    ) + textwrap.indent(textwrap.dedent(rules), "      ")


def test_evaluation_rule_parses_with_directions_from_the_metric() -> None:
    parsed = parse_policy(
        policy(
            """\
            - type: evaluation
              data: data/holdout.csv
              target: churned
              metrics:
                roc_auc: {min: 0.8, max_regression: 0.01}
                rmse: {max: 0.5}
                mean_absolute_percentage_error: {max_regression: 0}
            - {type: no_regression, metric: r2}
            """
        ).encode(),
        "governance/policy.yaml",
    )
    rules = parsed.targets["champion"].rules
    ev = rules[0]
    assert isinstance(ev, Evaluation) and rule_name(ev) == "evaluation"
    assert (ev.data, ev.target) == ("data/holdout.csv", "churned")
    assert [(m.metric, m.direction, m.min, m.max, m.max_regression) for m in ev.metrics] == [
        ("roc_auc", "higher", 0.8, None, 0.01),
        ("rmse", "lower", None, 0.5, None),
        ("mean_absolute_percentage_error", "lower", None, None, 0.0),
    ]
    assert isinstance(rules[1], NoRegression) and rules[1].direction == "higher"  # direction: is optional now


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            "- type: evaluation\n  metrics:\n    roc_acu: {min: 0.8}\n",
            r"governance/policy.yaml:8: .*unknown metric 'roc_acu'",
        ),
        ("- type: evaluation\n  metrics:\n    roc_auc: {}\n", r"policy.yaml:8: .*needs min, max and/or max_regression"),
        ("- type: evaluation\n  metrics:\n    roc_auc: {mni: 1}\n", r"policy.yaml:8: .*unknown field 'mni'"),
        ("- {type: no_regression, metric: val_acc}\n", r"policy.yaml:6: .*direction must be given"),
        ("- type: evaluation\n  metrics:\n    f1: {max_regression: -1}\n", r"policy.yaml:8: .*"),
    ],
)
def test_evaluation_rule_errors_name_the_line(rules: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as err:
        parse_policy(policy(rules).encode(), "governance/policy.yaml")
    if "roc_acu" in rules:
        assert err.value.hint and "roc_auc" in err.value.hint


# -- rule verdicts ---------------------------------------------------------------------------------------------------

RULE = Evaluation(
    metrics=(
        EvaluationMetric("roc_auc", "higher", min=0.8, max_regression=0.01),
        EvaluationMetric("mae", "lower", max=1.0),
    ),
    data="data/holdout.csv",
)


def ctx(outcome: EvaluationOutcome | None, holder: str | None = "1") -> PromotionContext:
    return PromotionContext(
        candidate=Candidate(model="m", version="2", run_id="r2", metrics={"roc_auc": 0.99}),  # self-reported: ignored
        target="champion",
        holder=Holder(version=holder, metrics={"roc_auc": 0.1}) if holder else None,
        evaluations={rule_name(RULE): outcome} if outcome else {},
    )


def outcome(cand: Mapping[str, float], held: Mapping[str, float] | None) -> EvaluationOutcome:
    return EvaluationOutcome(
        data="data/holdout.csv",
        data_md5="abc123",
        target="y",
        rows=200,
        candidate=VersionScores("2", dict(cand), "sha256:c"),
        holder=VersionScores("1", dict(held), "sha256:h") if held is not None else None,
    )


def test_evaluation_verdicts_use_measured_values_only() -> None:
    ok = evaluate_rule(RULE, ctx(outcome({"roc_auc": 0.85, "mae": 0.3}, {"roc_auc": 0.855, "mae": 0.3})), None)  # type: ignore[arg-type]
    assert ok.passed and ok.observed["data_md5"] == "abc123" and ok.observed["holder"]["metrics"]["roc_auc"] == 0.855
    worse = evaluate_rule(RULE, ctx(outcome({"roc_auc": 0.85, "mae": 0.3}, {"roc_auc": 0.87, "mae": 0.3})), None)  # type: ignore[arg-type]
    assert not worse.passed and "regresses by 0.02 against v1" in worse.message and "md5 abc123" in worse.message
    low = evaluate_rule(RULE, ctx(outcome({"roc_auc": 0.7, "mae": 2.0}, None), holder=None), None)  # type: ignore[arg-type]
    assert not low.passed and "below the minimum 0.8" in low.message and "above the maximum 1" in low.message
    first = evaluate_rule(RULE, ctx(outcome({"roc_auc": 0.9, "mae": 0.2}, None), holder=None), None)  # type: ignore[arg-type]
    assert first.passed and "no other holder" in first.message
    missing = evaluate_rule(RULE, ctx(None), None)  # type: ignore[arg-type]
    assert not missing.passed  # the self-reported 0.99 never counts
    failed = evaluate_rule(RULE, ctx(EvaluationOutcome(data="x", error="holdout x: not tracked by DVC")), None)  # type: ignore[arg-type]
    assert not failed.passed and failed.message == "holdout x: not tracked by DVC"


# -- the evaluation flow: reuse from the audited entry ---------------------------------------------------------------


class FakePorts:
    def __init__(self) -> None:
        self.md5 = "md5-a"
        self.digests = {"1": "sha256:one", "2": "sha256:two"}
        self.entries: list[dict[str, Any]] = []
        self.loads: list[str] = []
        x = RNG.normal(size=200)
        self.frame = pd.DataFrame({"id": range(200), "x": x, "y": (x > 0).astype(int)})

    def holdout(self, path: str) -> Holdout:
        return Holdout(path, self.md5, self.frame)

    def model_digest(self, model: str, version: str) -> str:
        return self.digests[version]

    def load(self, model: str, version: str) -> Any:
        self.loads.append(version)
        flip = version == "1"

        class Scorer:
            def score(self, frame: Any) -> tuple[Any, Any, Any]:
                assert "y" not in frame.columns  # the target never reaches the model
                pred = ((frame["x"] > 0) != flip).astype(int).to_numpy()
                return pred, None, np.array([0, 1])

        return Scorer()

    def previous(self, model: str, version: str) -> Sequence[Mapping[str, Any]]:
        return [e for e in self.entries if e["version"] == version]

    def record(self, model: str, version: str, details: Mapping[str, Any]) -> int:
        self.entries.append({"version": version, **details, "seq": len(self.entries) + 1})
        return len(self.entries)

    def log_run(self, model: str, version: str, details: Mapping[str, Any]) -> str | None:
        return f"run-{version}-{len(self.entries)}"


def compute(names: Sequence[str], y: Any, p: Any, proba: Any, classes: Any) -> dict[str, float]:
    return metrics.compute_all(metrics.resolve_many(names), y, p, proba, classes)


def run(ports: FakePorts, names: Sequence[str] = ("accuracy",)) -> EvaluationOutcome:
    return evaluate_versions(
        ports, model="m", candidate="2", holder="1", data="data/h.csv", target="y", metrics=names, compute=compute
    )


def test_evaluation_is_reused_only_while_digest_md5_and_metric_set_are_unchanged() -> None:
    ports = FakePorts()
    first = run(ports)
    assert first.candidate and first.holder and first.data_md5 == "md5-a"
    assert first.candidate.metrics["accuracy"] == 1.0 and first.holder.metrics["accuracy"] == 0.0
    assert not first.candidate.reused and ports.loads == ["2", "1"] and len(ports.entries) == 2
    again = run(ports)
    assert again.candidate and again.candidate.reused and again.candidate.audit_seq == 1
    assert ports.loads == ["2", "1"]  # nothing predicted again
    run(ports, ("accuracy", "f1"))  # another metric set
    assert ports.loads == ["2", "1", "2", "1"]
    ports.md5 = "md5-b"  # new holdout data
    run(ports, ("accuracy", "f1"))
    assert ports.loads[-2:] == ["2", "1"]
    ports.digests["2"] = "sha256:changed"  # other model files
    changed = run(ports, ("accuracy", "f1"))
    assert ports.loads[-1] == "2" and changed.holder and changed.holder.reused


def test_evaluation_without_holdout_or_target_fails_with_a_reason() -> None:
    ports = FakePorts()
    missing = evaluate_versions(
        ports, model="m", candidate="2", holder=None, data=None, target="y", metrics=["f1"], compute=compute
    )
    assert missing.error and "no holdout named" in missing.error
    no_col = evaluate_versions(
        ports, model="m", candidate="2", holder=None, data="d.csv", target="label", metrics=["f1"], compute=compute
    )
    assert no_col.error and "no target column 'label'" in no_col.error and no_col.data_md5 == "md5-a"


# -- column roles ----------------------------------------------------------------------------------------------------

CARD = """\
business_owner: bob@example.com
intended_use: x
intended_users: [a]
prediction_consumption: batch
sla: {availability_percent: 99}
retraining: {method: manual, cadence: yearly}
approver_roles: [model-risk]
sensitivity: internal
code_shareable: false
"""


def test_card_columns_declare_roles_once() -> None:
    card = parse_card(
        (
            CARD
            + "columns:\n  id: customer_id\n  timestamp: ts\n  target: churned\n  features: {exclude: [notes]}\n"
            + "  task: classification\nevaluation: {data: data/holdout.csv}\n"
        ).encode(),
        "m.yaml",
        "m",
    )
    roles = card.columns
    assert roles.features(["customer_id", "ts", "a", "notes", "churned", "b"]) == ["a", "b"]
    assert roles.role_of("ts") == "timestamp" and roles.task == "classification"
    assert card.evaluation_data == "data/holdout.csv"
    with pytest.raises(ConfigError, match=r"m.yaml:11: .*'tagret'"):
        parse_card((CARD + "columns:\n  tagret: y\n").encode(), "m.yaml", "m")
    with pytest.raises(ConfigError, match="given two roles"):
        parse_card((CARD + "columns:\n  id: y\n  target: y\n").encode(), "m.yaml", "m")


def test_profile_carries_roles_and_the_gate_reads_them_without_settings() -> None:
    """The bug: a profile logged with predictions, read back by a config with no prediction column, made every batch
    fail with "column 'prediction' is in the reference but missing from the batch"."""
    from mlops_layer.drift.config import DriftConfig
    from mlops_layer.drift.gate import check
    from mlops_layer.drift.profile import ReferenceProfile, build_profile

    frame = pd.DataFrame({"a": RNG.normal(size=500), "b": RNG.normal(size=500)})
    profile = build_profile(frame.assign(prediction=(frame.a > 0).astype(int))).with_roles({"prediction": "prediction"})
    read_back = ReferenceProfile.from_dict(profile.to_dict())
    assert read_back.roles == {"a": "feature", "b": "feature", "prediction": "prediction"}
    assert read_back.prediction_column == "prediction" and read_back.features == ("a", "b")
    result = check(read_back, frame.sample(300, random_state=1), DriftConfig())
    assert result.schema_problems == () and result.passed
    # a profile written before roles were recorded: its 'prediction' column is read as the prediction
    legacy = profile.to_dict()
    legacy["meta"] = {}
    assert ReferenceProfile.from_dict(legacy).prediction_column == "prediction"


def test_alert_rules_take_the_same_names_and_their_directions() -> None:
    from mlops_layer.monitoring.alerts import parse_alert_rules

    rmse, bal = parse_alert_rules(
        [
            {"type": "metric_drop", "metric": "rmse", "max_drop": 1.0},
            {"type": "metric_threshold", "metric": "balanced_accuracy", "min": 0.7},
        ],
        source="policy.yaml",
    )
    assert rmse.direction == "lower" and bal.metric == "balanced_accuracy"
    with pytest.raises(ConfigError, match=r"alerts\[0\].metric': unknown metric 'rsme'") as err:
        parse_alert_rules([{"type": "metric_drop", "metric": "rsme", "max_drop": 1.0}], source="policy.yaml")
    assert err.value.hint and "rmse" in err.value.hint
