"""Stage `train`: fit the classifier inside a governed MLflow run (lineage captured), log model + drift profile.

With `train.parent` set, fine-tune that version instead: keep its trees and grow new ones on the new data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from sklearn.ensemble import RandomForestClassifier

from mlops_layer import api


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["train"]
    frame = pd.read_csv("data/prepared/train.csv")
    features, target = frame.drop(columns=["target"]), frame["target"]
    parent = str(params.get("parent") or "").strip() or None
    with api.governed_run("train", parent=parent) as run:
        if parent:
            model = api.load_model(parent)
            model.set_params(warm_start=True, n_estimators=model.n_estimators + int(params["finetune_estimators"]))
        else:
            model = RandomForestClassifier(
                n_estimators=int(params["n_estimators"]),
                max_depth=int(params["max_depth"]),
                min_samples_leaf=int(params["min_samples_leaf"]),
                random_state=int(params["seed"]),
                n_jobs=1,
            )
        model.fit(features, target)
        run.log_metrics({"train_accuracy": float(model.score(features, target))})
        model_uri = run.log_model(model, input_example=features.head(3))
        run.log_reference_profile(features, predictions=model.predict(features), data_path="data/prepared/train.csv")
    Path("artifacts").mkdir(exist_ok=True)
    Path("artifacts/train_run.json").write_text(
        json.dumps({"run_id": run.run_id, "model_uri": model_uri, "parent": parent}, indent=2) + "\n"
    )
    print(f"train: run {run.run_id} ({'fine-tuned from ' + parent if parent else 'from scratch'})")


if __name__ == "__main__":
    main()
