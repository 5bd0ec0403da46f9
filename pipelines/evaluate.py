"""Stage `evaluate`: score the trained model on the held-out set; metrics go to DVC (metrics.json) and MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from mlops_layer import api


def main() -> None:
    run = json.loads(Path("artifacts/train_run.json").read_text())
    frame = pd.read_csv("data/prepared/test.csv")
    features, target = frame.drop(columns=["target"]), frame["target"]
    model = api.load_model(run["model_uri"])
    proba = model.predict_proba(features)[:, 1]
    predicted = (proba >= 0.5).astype(int)
    metrics = {
        "accuracy": round(float(accuracy_score(target, predicted)), 6),
        "f1": round(float(f1_score(target, predicted)), 6),
        "roc_auc": round(float(roc_auc_score(target, proba)), 6),
    }
    api.log_run_metrics(run["run_id"], metrics)
    Path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
