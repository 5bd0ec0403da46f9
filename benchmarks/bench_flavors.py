"""Monitoring any flavor: `api.monitor` on one 100,000-row labelled batch per model flavor vs bare `predict`.

Four models, each logged with its own MLflow flavor and registered through the layer: an XGBoost classifier, a
LightGBM classifier, a custom `mlflow.pyfunc.PythonModel` (logistic scores, one probability column per class) and a
scikit-learn regressor (Ridge). For each, on the same 100,000-row CSV (6 features, an id, a timestamp, a label and a
numeric target):
- `api.monitor` end to end (read, load the model sha256-verified, score, drift gate against the reference profile,
  metrics on labels, log to MLflow, audit, alert rules), in process, median of 3;
- the baseline: read the same CSV + the model's own `predict_proba` (classifiers) or `predict` (regressor), with the
  model already in memory — what any scoring job pays anyway.
The ratio printed is monitoring's cost over that baseline in the same run.

Run: .venv/bin/python benchmarks/bench_flavors.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
ROWS = 100_000
FEATURES = [f"f{i}" for i in range(6)]
FLAVORS = ("xgboost", "lightgbm", "pyfunc", "sklearn-regressor")


def frame(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    score = x @ np.array([1.2, -0.8, 0.5, 0.0, 0.3, -0.4])
    out = pd.DataFrame(x, columns=FEATURES)
    out.insert(0, "request_id", np.arange(rows))
    out.insert(1, "event_time", pd.date_range("2025-01-01", periods=rows, freq="s").strftime("%Y-%m-%dT%H:%M:%S"))
    out["label"] = (score + rng.normal(scale=0.7, size=rows) > 0).astype(int)
    out["amount"] = score * 10 + 50 + rng.normal(scale=2.0, size=rows)
    return out


def pyfunc_model() -> Any:
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    class LogisticScores(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            z = model_input[FEATURES].to_numpy() @ np.array([1.2, -0.8, 0.5, 0.0, 0.3, -0.4])
            p = 1 / (1 + np.exp(-z))
            return pd.DataFrame({"0": 1 - p, "1": p})

    return LogisticScores()


def card(target: str, task: str) -> str:
    return textwrap.dedent(
        f"""\
        business_owner: bench@example.com
        intended_use: benchmark
        intended_users: [bench]
        prediction_consumption: batch
        sla: {{availability_percent: 99}}
        retraining: {{method: manual, cadence: never}}
        approver_roles: [model-risk]
        sensitivity: internal
        code_shareable: false
        columns: {{id: request_id, timestamp: event_time, target: {target}, task: {task}}}
        """
    )


def setup(root: Path) -> dict[str, Any]:
    """Train and register one model per flavor (logged by the user with MLflow: no DVC pipeline needed)."""
    import lightgbm
    import xgboost
    from sklearn.linear_model import Ridge

    from mlops_layer import api
    from mlops_layer.drift.profile import build_profile
    from mlops_layer.lineage import PROFILE_ARTIFACT

    uri = f"sqlite:///{root}/mlflow.db"
    (root / "governance" / "models").mkdir(parents=True)
    (root / "governance" / "policy.yaml").write_text(
        "version: 1\nroles: {}\ntargets: {}\nalerts:\n"
        "  - {name: data-drift, type: drift_share, max: 0.3, window: {breaches: 2, of: 3}}\n"
    )
    (root / "mlops.yaml").write_text(f"tracking_uri: {uri}\nexperiment: bench\n")
    cfg = api.settings(root)
    train = frame(3000, 1)
    x = train[FEATURES]
    models: dict[str, Any] = {
        "xgboost": xgboost.XGBClassifier(n_estimators=100, max_depth=4, n_jobs=1).fit(x, train["label"]),
        "lightgbm": lightgbm.LGBMClassifier(n_estimators=100, num_leaves=15, verbose=-1, n_jobs=1).fit(
            x, train["label"]
        ),
        "pyfunc": pyfunc_model(),
        "sklearn-regressor": Ridge().fit(x, train["amount"]),
    }
    from mlops_layer.adapters.mlflow import MlflowTracking

    tracking = MlflowTracking(uri, uri)
    exp = tracking.ensure_experiment("bench", str(root / "mlartifacts"))
    for name, model in models.items():
        regression = name == "sklearn-regressor"
        (root / "governance" / "models" / f"{name}.yaml").write_text(
            card("amount" if regression else "label", "regression" if regression else "classification")
        )
        with tracking.run(exp, name, {}):
            model_uri = tracking.log_model(model, "model", input_example=x.head(3))
            preds = model.predict(None, x)["1"].gt(0.5).astype(int) if name == "pyfunc" else model.predict(x)
            profile = build_profile(x.assign(prediction=preds)).with_roles({"prediction": "prediction"})
            tracking.log_dict(profile.to_dict(), PROFILE_ARTIFACT)
        reg = api.register(name, None, model_uri=model_uri, settings=cfg)
        from mlops_layer.adapters.mlflow import MlflowRegistry

        MlflowRegistry(uri).set_alias(name, "champion", reg.version)
    frame(ROWS, 7).to_csv(root / "batch.csv", index=False)
    return models


def baseline(path: Path, model: Any, name: str) -> float:
    import pandas as pd

    start = time.perf_counter()
    data = pd.read_csv(path)
    if name == "pyfunc":
        model.predict(None, data[FEATURES])
    elif name == "sklearn-regressor":
        model.predict(data[FEATURES])
    else:
        model.predict_proba(data[FEATURES])
    return time.perf_counter() - start


def main() -> None:
    from mlops_layer import api

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        models = setup(root)
        print(f"setup (train, log and register 4 flavors, write {ROWS:,} rows): {time.perf_counter() - t:.1f} s")
        cfg = api.settings(root)
        batch = root / "batch.csv"
        print(f"{'flavor':<18} {'api.monitor':>12} {'bare predict':>13} {'ratio':>6}  breakdown (s)")
        for name in FLAVORS:
            samples, result = [], None
            for _ in range(3):
                t = time.perf_counter()
                result = api.monitor(f"{name}@champion", batch, settings=cfg)
                samples.append(time.perf_counter() - t)
            assert result is not None and result.rows == ROWS and result.metrics, result
            base = statistics.median(baseline(batch, models[name], name) for _ in range(3))
            warm = statistics.median(samples)
            parts = " · ".join(f"{k} {v:.2f}" for k, v in result.timings.items())
            print(f"{name:<18} {warm:>10.2f} s {base:>11.2f} s {warm / base:>5.1f}x  {parts}")
            metric = "r2" if name == "sklearn-regressor" else "roc_auc"
            print(
                f"{'':<18} {metric} {result.metrics.get(metric, float('nan')):.3f}, labels from the card: {result.labels}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
