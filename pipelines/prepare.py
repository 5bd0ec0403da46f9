"""Stage `prepare`: every CSV in data/raw -> data/prepared/{train,test}.csv (stratified split)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from sklearn.model_selection import train_test_split


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
    files = sorted(Path("data/raw").glob("*.csv"))
    if not files:
        raise SystemExit("data/raw has no CSV file: run `python pipelines/ingest.py && dvc add data/raw`")
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    train, test = train_test_split(
        frame, test_size=params["test_size"], random_state=params["seed"], stratify=frame["target"]
    )
    out = Path("data/prepared")
    out.mkdir(parents=True, exist_ok=True)
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    print(f"prepare: {len(train)} train rows, {len(test)} test rows from {len(files)} file(s)")


if __name__ == "__main__":
    main()
