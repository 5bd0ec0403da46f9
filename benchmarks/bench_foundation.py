"""Foundation benchmarks, side by side in one run.

1. `mlops --help` wall time (target < 0.3 s), beside a bare `python -c pass` start-up as the floor.
2. Governed registration (lineage capture + register + tags + audit) against a bare `mlflow.register_model` of the
   same run in the same store (target: at most 0.5 s more).

Run: .venv/bin/python benchmarks/bench_foundation.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["DVC_NO_ANALYTICS"] = "1"
BIN = Path(sys.executable).parent


def _time(cmd: list[str], n: int = 7) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def bench_help() -> None:
    floor = _time([sys.executable, "-c", "pass"])
    help_t = _time([str(BIN / "mlops"), "--help"])
    verdict = "OK" if help_t < 0.3 else "OVER TARGET"
    print(
        f"mlops --help: {help_t * 1000:.0f} ms (python start-up floor {floor * 1000:.0f} ms, "
        f"ratio {help_t / floor:.1f}x; target < 300 ms: {verdict})"
    )


def bench_registration(repeats: int = 5) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from mlops_layer import api

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        (root / "params.yaml").write_text("train:\n  C: 1.0\n")
        (root / "dvc.lock").write_text(
            "schema: '2.0'\nstages:\n  train:\n    cmd: python train.py\n    deps:\n"
            "    - path: data/train.csv\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef\n"
            "      size: 1234\n    params:\n      params.yaml:\n        train.C: 1.0\n"
        )
        env = {
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@x",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@x",
            "PATH": os.environ["PATH"],
        }
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        subprocess.run(["git", "commit", "-qm", "x"], cwd=root, check=True, env=env)
        cfg = api.settings(root)
        with api.governed_run("train", settings=cfg) as run:
            model_uri = run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
        api.register("warmup", run.run_id, model_uri=model_uri, settings=cfg)  # create tables, warm caches
        mlflow.register_model(model_uri, "warmup-bare")
        governed, bare = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            mlflow.register_model(model_uri, "bare")
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            api.register("governed", run.run_id, model_uri=model_uri, settings=cfg)
            governed.append(time.perf_counter() - t)
        g, b = statistics.median(governed), statistics.median(bare)
        verdict = "OK" if g - b <= 0.5 else "OVER TARGET"
        print(
            f"registration: governed {g * 1000:.0f} ms vs bare mlflow.register_model {b * 1000:.0f} ms "
            f"-> +{(g - b) * 1000:.0f} ms ({g / b:.1f}x; target <= +500 ms: {verdict})"
        )


if __name__ == "__main__":
    bench_help()
    bench_registration()
