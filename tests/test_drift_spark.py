"""The drift aggregates on Spark (PySpark local mode, real JVM) against the in-memory gate on the same data.

One SparkSession for the module and small data: Spark's start-up is the cost here, not the check.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_layer.adapters import spark as spark_adapter
from mlops_layer.drift.config import DriftConfig
from mlops_layer.drift.gate import check
from mlops_layer.drift.profile import ReferenceProfile, build_profile
from mlops_layer.errors import NotFoundError

N = 60_000


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "age": rng.normal(40 + 12 * shift, 12, size=n),
            "income": rng.lognormal(10, 0.8, size=n),
            "visits": rng.poisson(3 + 3 * shift, size=n).astype("int64"),
            "score": rng.uniform(0, 1, size=n),
            "plan": rng.choice(["basic", "plus", "pro"], size=n, p=[0.6, 0.3, 0.1] if not shift else [0.3, 0.3, 0.4]),
        }
    )
    out.loc[out.index % 97 == 0, "income"] = np.nan
    return out


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    session = spark_adapter.session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return build_profile(frame(N, 1))


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    batch = frame(N, 2, shift=0.5)  # age, visits and plan drift; income and score do not
    folder = tmp_path_factory.mktemp("spark") / "batch"
    folder.mkdir()
    for i in range(3):
        batch.iloc[i * N // 3 : (i + 1) * N // 3].to_parquet(folder / f"part-{i}.parquet", index=False)
    return batch, folder


def test_spark_verdict_equals_the_in_memory_gate(
    spark: object, profile: ReferenceProfile, batch_dir: tuple[pd.DataFrame, Path]
) -> None:
    batch, folder = batch_dir
    cfg = DriftConfig(drift_share=0.5)
    exact = check(profile, batch, cfg)
    # exact_limit 0: every numeric column goes through the grid histogram, merged across 3 partitions
    result = spark_adapter.check(profile, folder, cfg, spark=spark, exact_limit=0)
    assert result.engine == "spark" and result.n_current == N
    assert result.drifted_columns == exact.drifted_columns == ("age", "visits", "plan")
    assert result.drift == exact.drift and result.passed == exact.passed
    for e, s in zip(exact.columns, result.columns, strict=True):
        assert e.score is not None and s.score is not None
        assert abs(s.score - e.score) <= (s.bound or 0.0) + 1e-9, e.name
        assert not s.near_threshold
    assert result.approximate


def test_spark_reads_tables_and_frames_and_reports_schema_problems(
    spark: object, profile: ReferenceProfile, batch_dir: tuple[pd.DataFrame, Path]
) -> None:
    batch, folder = batch_dir
    df = spark.read.parquet(str(folder)).drop("score").repartition(4)  # type: ignore[attr-defined]
    df.createOrReplaceTempView("scoring_log")
    by_table = spark_adapter.check(profile, "scoring_log", spark=spark)
    by_frame = spark_adapter.check(profile, df)
    exact = check(profile, batch.drop(columns=["score"]))
    for result in (by_table, by_frame):
        assert result.schema_problems == exact.schema_problems
        assert "'score' is in the reference but missing" in result.schema_problems[0]
        assert result.drifted_columns == exact.drifted_columns and not result.passed
    with pytest.raises(NotFoundError, match="neither a path nor a table"):
        spark_adapter.check(profile, "no_such_table", spark=spark)


def test_master_comes_from_the_usual_spark_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SPARK_MASTER", "SPARK_CONF_DIR", "SPARK_HOME", "PYSPARK_SUBMIT_ARGS"):
        monkeypatch.delenv(var, raising=False)
    assert spark_adapter.resolve_master() == "local[2]"
    (tmp_path / "spark-defaults.conf").write_text("# comment\nspark.master   spark://head:7077\n")
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert spark_adapter.resolve_master() == "spark://head:7077"
    monkeypatch.setenv("SPARK_MASTER", "yarn")
    assert spark_adapter.resolve_master() == "yarn"
    assert spark_adapter.resolve_master("local[1]") == "local[1]"


def test_cli_and_api_run_the_spark_engine(
    spark: object, profile: ReferenceProfile, batch_dir: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from mlops_layer import api
    from mlops_layer.cli.main import app

    batch, folder = batch_dir
    ref = tmp_path / "ref.parquet"
    frame(N, 1).to_parquet(ref, index=False)
    out = CliRunner().invoke(
        app, ["drift", "--reference", str(ref), "--current", str(folder), "--engine", "spark", "--json"]
    )
    assert out.exit_code == 1, out.output  # drift: the check failed, as the in-memory gate says
    body = json.loads(out.stdout)
    exact = check(build_profile(frame(N, 1)), batch)
    assert body["engine"] == "spark" and body["n_current"] == N
    assert [c["name"] for c in body["columns"] if c["drifted"]] == list(exact.drifted_columns)
    # a Spark DataFrame given to the api goes to Spark on its own (engine auto)
    df = spark.read.parquet(str(folder))  # type: ignore[attr-defined]
    result = api.drift_check(None, df, reference=profile)
    assert result.engine == "spark" and result.drifted_columns == exact.drifted_columns
