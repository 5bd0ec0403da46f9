"""Any model, any metric, a gate that measures for itself — on real git, DVC and MLflow in a temporary project.

An XGBoost classifier, a LightGBM classifier, a custom ``mlflow.pyfunc.PythonModel`` and a scikit-learn regressor
are each trained in a governed run, registered, promoted through an ``evaluation`` rule that scores candidate and
holder on the same DVC-tracked holdout, and monitored with labels. The project is built once per module (one
``dvc repro``); each flavor's test trains its own two versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import git

from mlops_layer import api
from mlops_layer.audit import actions
from mlops_layer.audit.store import AuditStore
from mlops_layer.config import Settings

pytestmark = pytest.mark.slow

FEATURES = ["x1", "x2", "x3"]


def make_frame(n: int, seed: int, *, start: str = "2025-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    score = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2]
    return pd.DataFrame(
        {
            "row_id": np.arange(n),
            "event_time": pd.date_range(start, periods=n, freq="h").strftime("%Y-%m-%dT%H:%M:%S"),
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "label": (score + rng.normal(scale=0.7, size=n) > 0).astype(int),
            "amount": score * 10 + 50 + rng.normal(scale=2.0, size=n),
        }
    )


class LogisticPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A custom model: returns one probability column per class, named by the class."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        z = model_input[FEATURES].to_numpy() @ np.asarray(self.weights)
        p = 1 / (1 + np.exp(-z))
        return pd.DataFrame({"0": 1 - p, "1": p})


def card(target: str, task: str) -> str:
    return textwrap.dedent(
        f"""\
        business_owner: bob@example.com
        intended_use: Tests of any flavor.
        intended_users: [tests]
        prediction_consumption: batch
        sla: {{availability_percent: 99}}
        retraining: {{method: manual, cadence: yearly}}
        approver_roles: [model-risk]
        sensitivity: internal
        code_shareable: false
        columns:
          id: row_id
          timestamp: event_time
          target: {target}
          features: {{exclude: [{"amount" if target == "label" else "label"}]}}
          task: {task}
        evaluation: {{data: data/holdout.csv}}
        """
    )


# lineage_clean checks the commit only here: the DVC side (`dvc status`, the remote) has its own tests and costs seconds
CLASSIFIER_RULES = """\
        - {type: lineage_clean, require_data_in_remote: false, require_lock_up_to_date: false}
        - type: evaluation
          metrics:
            roc_auc: {min: 0.75, max_regression: 0.01}
            balanced_accuracy: {min: 0.6}
"""
REGRESSOR_RULES = """\
        - {type: lineage_clean, require_data_in_remote: false, require_lock_up_to_date: false}
        - type: evaluation
          target: amount
          metrics:
            rmse: {max: 8, max_regression: 0.05}
            mae: {max: 6}
            r2: {min: 0.5}
"""
MODELS = {"xgb": "classification", "lgbm": "classification", "custom": "classification", "ridge": "regression"}


def policy() -> str:
    sections = "".join(
        f"  {name}:\n    targets:\n      champion:\n        rules:\n"
        + textwrap.indent(REGRESSOR_RULES if task == "regression" else CLASSIFIER_RULES, "  ")
        for name, task in MODELS.items()
    )
    # as `mlops init` writes it: no drift: section; alert rules on the same metric names as the rules
    alerts = (
        "alerts:\n"
        "  - {name: rmse-ceiling, type: metric_threshold, metric: rmse, max: 8, models: [ridge]}\n"
        "  - {name: auc-drop, type: metric_drop, metric: roc_auc, max_drop: 0.1, models: [xgb, lgbm, custom]}\n"
    )
    return (
        "version: 1\nroles:\n  alice@example.com: [model-risk]\ntargets:\n  champion:\n    rules: []\nmodels:\n"
        + sections
        + alerts
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("flavors") / "proj"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "author@example.com")
    git(root, "config", "user.name", "Test Author")
    api.init(root)
    (root / "governance" / "policy.yaml").write_text(policy())
    (root / "governance" / "models").mkdir(exist_ok=True)
    for name, task in {**MODELS, "daily": "classification"}.items():
        target = "amount" if task == "regression" else "label"
        (root / "governance" / "models" / f"{name}.yaml").write_text(card(target, task))
    data = root / "data"
    data.mkdir()
    make_frame(600, 1).to_csv(data / "train.csv", index=False)
    make_frame(400, 2, start="2025-03-01").to_csv(data / "holdout.csv", index=False)
    (root / "params.yaml").write_text("train:\n  seed: 1\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: python -c \"print('trained in-process by the tests')\"\n"
        "    deps: [data/train.csv]\n    params: [train.seed]\n"
    )
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data/holdout.csv"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=root, check=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    yield api.settings(root)


def train(cfg: Settings, name: str, *, good: bool) -> tuple[str, str]:
    """Train one version; a bad one learns from shuffled labels. Its self-reported metric is always perfect."""
    import lightgbm
    import xgboost
    from sklearn.linear_model import Ridge

    frame = pd.read_csv(cfg.root / "data" / "train.csv")
    x = frame[FEATURES]
    rng = np.random.default_rng(3)
    y = frame["label"] if good else pd.Series(rng.permutation(frame["label"].to_numpy()))
    amount = frame["amount"] if good else pd.Series(rng.permutation(frame["amount"].to_numpy()))
    model: Any
    if name in ("xgb", "daily"):
        model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1).fit(x, y)
    elif name == "lgbm":
        model = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1, n_jobs=1).fit(x, y)
    elif name == "custom":
        model = LogisticPyfunc([1.5, -1.0, 0.5] if good else [-0.2, 0.1, 0.3])
    else:
        model = Ridge().fit(x, amount)
    with api.governed_run("train", settings=cfg) as run:
        run.log_metrics({"roc_auc": 1.0, "rmse": 0.0})  # self-reported: the evaluation rule never reads these
        uri = run.log_model(model, input_example=x.head(3))
        preds = model.predict(None, x) if name == "custom" else model.predict(x)
        if name == "custom":
            preds = (preds["1"] > 0.5).astype(int)
        run.log_reference_profile(x, predictions=np.asarray(preds), data_path="data/train.csv")
    reg = api.register(name, run.run_id, model_uri=uri, settings=cfg)
    return reg.version, uri


def evaluation_rule(result: Any) -> Any:
    decision = getattr(result, "decision", result)  # a PromotionResult (promote) or a Decision (check)
    return next(r for r in decision.rules if r.rule_type == "evaluation")


def evaluations(cfg: Settings, name: str) -> list[Any]:
    with AuditStore.open(cfg.audit_url) as trail:
        return list(trail.entries(model=name, action=actions.EVALUATION_RECORDED))


@pytest.mark.parametrize("name", list(MODELS))
def test_train_register_promote_with_independent_evaluation_and_monitor(project: Settings, name: str) -> None:
    cfg = project
    regression = MODELS[name] == "regression"
    holdout_md5 = yaml.safe_load((cfg.root / "data/holdout.csv.dvc").read_text())["outs"][0]["md5"]

    v1, _ = train(cfg, name, good=True)
    first = api.promote(name, v1, "champion", settings=cfg)
    rule = evaluation_rule(first)
    assert first.allowed, [r.message for r in first.decision.rules if not r.passed]
    assert rule.observed["data_md5"] == holdout_md5 and rule.observed["holder"] is None
    measured = rule.observed["candidate"]["metrics"]
    key = "rmse" if regression else "roc_auc"
    assert key in measured and measured[key] != (0.0 if regression else 1.0)  # measured, not the self-reported value
    run_id = rule.observed["candidate"]["run_id"]
    from mlops_layer.adapters.mlflow import MlflowRegistry

    registry = MlflowRegistry(cfg.tracking_uri)
    version = registry.get_version(name, v1)
    assert version.tags["mlops.evaluation.run_id"] == run_id != version.run_id  # a run of its own, linked by tag
    eval_run = registry.get_run(run_id)
    assert eval_run.metrics[key] == pytest.approx(measured[key])
    assert eval_run.tags["mlops.evaluation.data_md5"] == holdout_md5

    v2, _ = train(cfg, name, good=False)
    refused = api.promote(name, v2, "champion", settings=cfg)
    rule2 = evaluation_rule(refused)
    assert not refused.allowed and not rule2.passed
    assert rule2.observed["holder"]["version"] == v1 and rule2.observed["holder"]["reused"] is True
    assert f"against v{v1}" in rule2.message or "minimum" in rule2.message or "maximum" in rule2.message
    recorded = len(evaluations(cfg, name))
    again = api.check(name, v2, "champion", settings=cfg)
    assert evaluation_rule(again).observed["candidate"]["reused"] is True
    assert len(evaluations(cfg, name)) == recorded  # reused from the audited entries: nothing scored again

    batch = make_frame(300, 5, start="2025-06-01")
    path = cfg.root / f"batch-{name}.csv"
    batch.to_csv(path, index=False)
    result = api.monitor(f"{name}@champion", path, settings=cfg)  # labels, ids, timestamp: from the card
    assert result.labels == ("amount" if regression else "label")
    assert result.drift is not None and not result.drift.get("schema_problems")
    drift = api.drift_check(f"{name}@champion", path, settings=cfg, log=False)  # id, time, labels: not features
    assert drift.schema_problems == () and {c.name for c in drift.columns} == set(FEATURES)
    if regression:
        assert set(result.metrics) >= {"rmse", "mae", "r2"} and result.metrics["r2"] > 0.5
    else:
        assert result.metrics["roc_auc"] > 0.75
    # the baseline is what the layer measured on the holdout, not what the run logged about itself (1.0 / 0.0)
    assert result.promoted[key] == pytest.approx(measured[key])
    (assessment,) = result.assessments
    assert assessment.rule == ("rmse-ceiling" if regression else "auc-drop") and assessment.breached is False
    standalone = api.evaluate(name, v1, metrics=list(measured), settings=cfg)  # as the rule did: reused
    assert standalone.candidate is not None and standalone.candidate.reused
    assert standalone.candidate.metrics == pytest.approx(measured)


def test_a_model_logged_outside_the_layer_registers_without_lineage_and_lineage_clean_refuses(
    project: Settings,
) -> None:
    import xgboost
    from mlflow import MlflowClient

    cfg = project
    frame = pd.read_csv(cfg.root / "data" / "train.csv")
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=2, n_jobs=1).fit(frame[FEATURES], frame["label"])
    mlflow.set_tracking_uri(cfg.tracking_uri)
    # its own artifact folder: MLflow's default (./mlruns of the current directory) would land in the checkout
    experiment = MlflowClient(cfg.tracking_uri).create_experiment(
        "outside", artifact_location=(cfg.root / "outside-artifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.xgboost.log_model(model, name="model", pip_requirements=["xgboost"])
    reg = api.register("xgb", None, model_uri=info.model_uri, settings=cfg)
    assert reg.governed is False and reg.run_id == run.info.run_id
    assert any("no governed lineage" in w for w in reg.warnings)
    tags = MlflowClient(cfg.tracking_uri).get_model_version("xgb", reg.version).tags
    assert tags["mlops.lineage.governed"] == "false"
    decision = api.check("xgb", reg.version, "champion", settings=cfg)
    lineage = next(r for r in decision.rules if r.rule_type == "lineage_clean")
    assert not lineage.passed and "no governed lineage" in lineage.message
    loaded = api.load_model(f"xgb/{reg.version}", settings=cfg)  # native, sha256-checked
    assert loaded.predict_proba(frame[FEATURES].head(2)).shape == (2, 2)


def test_monitor_on_data_time_every_day_then_a_backfill(project: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mlops_layer.cli.main import app

    cfg = project
    version, _ = train(cfg, "daily", good=True)
    assert api.promote("daily", version, "champion", settings=cfg).allowed
    monkeypatch.chdir(cfg.root)
    three_days = make_frame(72, 8, start="2025-07-10").sample(frac=1.0, random_state=1)  # hourly rows, shuffled
    three_days.to_csv(cfg.root / "july.csv", index=False)
    out = CliRunner().invoke(app, ["monitor", "daily@champion", "--batch", "july.csv", "--every", "1d", "--json"])
    assert out.exit_code == 0, out.output
    days = json.loads(out.output)
    assert [d["time_range"]["start"][:10] for d in days] == ["2025-07-10", "2025-07-11", "2025-07-12"]
    assert [d["rows"] for d in days] == [24, 24, 24] and len({d["batch_sha256"] for d in days}) == 1
    assert [d["timestamp"] for d in days] == [d["time_range"]["end"] for d in days]  # placed at data time
    assert not any(d["backfill"] for d in days) and all("roc_auc" in d["metrics"] for d in days)
    make_frame(24, 9, start="2025-07-01").to_csv(cfg.root / "late.csv", index=False)
    late = CliRunner().invoke(app, ["monitor", "daily@champion", "--batch", "late.csv", "--json"])
    assert late.exit_code == 0, late.output
    body = json.loads(late.output)
    assert body["backfill"] is True and body["timestamp"] == "2025-07-01T23:00:00+00:00"
    with AuditStore.open(cfg.audit_url) as trail:
        batches = [e for e in trail.entries(model="daily", action=actions.MONITOR_BATCH)]
    assert [e.details["backfill"] for e in batches] == [False, False, False, True]
    bad = CliRunner().invoke(app, ["monitor", "daily@champion", "--batch", "late.csv", "--every", "daily"])
    assert bad.exit_code == 2 and "is not a period" in bad.output
