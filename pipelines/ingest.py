"""Export the bundled breast-cancer dataset (scikit-learn ships it: no download) into data/raw/ as CSV.

Run once, then `dvc add data/raw`. ``--shift SIGMA`` writes a drifted copy for drift/monitoring demos instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer


def dataset() -> pd.DataFrame:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


def shifted(
    frame: pd.DataFrame, columns: list[str], sigma: float, seed: int = 7, rows: int | None = None
) -> pd.DataFrame:
    """A batch whose ``columns`` moved by ``sigma`` standard deviations (labels kept)."""
    rng = np.random.default_rng(seed)
    out = frame.sample(n=rows or len(frame), replace=rows is not None and rows > len(frame), random_state=seed)
    out = out.reset_index(drop=True)
    for col in columns:
        out[col] = out[col] + sigma * frame[col].std() + rng.normal(0, 0.01 * frame[col].std(), len(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/raw/breast_cancer.csv")
    parser.add_argument("--shift", type=float, default=0.0, help="shift the first --columns by this many sigma")
    parser.add_argument("--columns", default="mean_radius,mean_texture,mean_perimeter,mean_area")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    frame = dataset()
    if args.shift:
        frame = shifted(frame, args.columns.split(","), args.shift, args.seed, args.rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(f"wrote {len(frame)} rows to {out}")


if __name__ == "__main__":
    main()
