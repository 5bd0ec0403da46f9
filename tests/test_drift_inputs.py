"""Drift checks from files, ad hoc (no MLflow): readers, bad inputs, the CLI's exit codes and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops_layer import api
from mlops_layer.cli.main import app
from mlops_layer.drift.io import read_table
from mlops_layer.errors import InputError, NotFoundError

runner = CliRunner()


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "age": rng.normal(40, 10, size=n) + 10 * shift,
            "income": rng.lognormal(10, 0.5, size=n),
            "score": rng.normal(size=n) + shift,
            "segment": rng.choice(["a", "b", "c"], size=n),
        }
    )


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)
    paths = {
        "ref": tmp_path / "ref.csv",
        "same": tmp_path / "same.csv",
        "shifted": tmp_path / "shifted.parquet",
    }
    frame(5_000, 1).to_csv(paths["ref"], index=False)
    frame(3_000, 2).to_csv(paths["same"], index=False)
    frame(3_000, 3, shift=0.5).to_parquet(paths["shifted"], index=False)
    return paths


def test_readers_refuse_bad_files_clearly(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="batch file .*nope.csv does not exist"):
        read_table(tmp_path / "nope.csv")
    xlsx = tmp_path / "batch.xlsx"
    xlsx.write_bytes(b"PK\x03\x04 not a table we read")
    with pytest.raises(InputError, match=r"batch.xlsx is not a CSV or Parquet file \(suffix '.xlsx'\)") as exc:
        read_table(xlsx)
    assert "export the batch as .csv or .parquet" in str(exc.value)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.csv is empty"):
        read_table(empty)
    header = tmp_path / "header.csv"
    header.write_text("a,b\n")
    with pytest.raises(InputError, match="header.csv has no rows"):
        read_table(header)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="not readable as CSV"):
        read_table(binary)
    fake = tmp_path / "fake.parquet"
    fake.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_table(fake)
    # a Parquet file without the suffix is recognised by its magic bytes
    real = tmp_path / "batch.data"
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(real)
    assert list(read_table(real)["a"]) == [1.0, 2.0]


def test_ad_hoc_check_of_two_files(files: dict[str, Path]) -> None:
    same = api.drift_check(None, files["same"], reference=files["ref"], exclude=["id"])
    assert same.passed and same.model is None and same.n_reference == 5_000 and same.n_current == 3_000
    assert same.reference is not None and same.reference.startswith("ref.csv sha256:")
    shifted = api.drift_check(None, files["shifted"], reference=files["ref"], exclude=["id"])
    assert shifted.drifted_columns == ("age", "score") and shifted.drift and not shifted.passed
    only = api.drift_check(None, files["shifted"], reference=files["ref"], columns=["income", "segment"])
    assert [c.name for c in only.columns] == ["income", "segment"] and only.passed
    with_id = api.drift_check(None, files["same"], reference=files["ref"])
    assert "id" in [c.name for c in with_id.columns]  # ids are features unless excluded: say so in --exclude


def test_ad_hoc_check_needs_no_mlflow(files: dict[str, Path]) -> None:
    code = (
        "import json, sys; from mlops_layer import api; "
        f"r = api.drift_check(None, {str(files['shifted'])!r}, reference={str(files['ref'])!r}, exclude=['id']); "
        "print(json.dumps({'drift': r.drift, 'mlflow': 'mlflow' in sys.modules, 'evidently': 'evidently' in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=files["ref"].parent
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"drift": True, "mlflow": False, "evidently": False}
    assert not (files["ref"].parent / "mlflow.db").exists()


def test_cli_json_and_exit_codes(files: dict[str, Path]) -> None:
    ok = runner.invoke(
        app, ["drift", "--reference", str(files["ref"]), "--current", str(files["same"]), "--exclude", "id", "--json"]
    )
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.stdout)
    assert {"drift", "share", "columns", "schema_problems"} <= set(body)
    assert set(body["columns"][0]) >= {"name", "method", "score", "threshold", "drifted"}
    assert body["drift"] is False and body["schema_problems"] == []
    bad = runner.invoke(app, ["drift", "-r", str(files["ref"]), "-c", str(files["shifted"]), "--exclude", "id"])
    assert bad.exit_code == 1
    assert "FAILED" in bad.stdout and "age" in bad.stdout and "wasserstein" in bad.stdout
    subset = runner.invoke(
        app, ["drift", "-r", str(files["ref"]), "-c", str(files["shifted"]), "--columns", "income,segment", "--json"]
    )
    assert subset.exit_code == 0 and [c["name"] for c in json.loads(subset.stdout)["columns"]] == ["income", "segment"]


def test_cli_bad_inputs(files: dict[str, Path], tmp_path: Path) -> None:
    nope = runner.invoke(app, ["drift", "-r", str(files["ref"]), "-c", str(tmp_path / "missing.csv")])
    assert nope.exit_code == 2 and "does not exist" in nope.output
    text = tmp_path / "batch.txt"
    text.write_text("age,score\n1,2\n")
    wrong = runner.invoke(app, ["drift", "-r", str(files["ref"]), "-c", str(text)])
    assert wrong.exit_code == 2 and "is not a CSV or Parquet file" in wrong.output
    header = tmp_path / "header.csv"
    header.write_text("id,age,income,score,segment\n")
    empty = runner.invoke(app, ["drift", "-r", str(files["ref"]), "-c", str(header)])
    assert empty.exit_code == 2 and "has no rows" in empty.output
    neither = runner.invoke(app, ["drift", "-c", str(files["same"])])
    assert neither.exit_code == 2 and "name a model version or give a reference file" in neither.output


def test_one_row_batch_file(files: dict[str, Path], tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    frame(1, 9).to_csv(one, index=False)
    result = runner.invoke(app, ["drift", "-r", str(files["ref"]), "-c", str(one), "--exclude", "id", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["n_current"] == 1 and body["significance_tested"] and body["passed"]


def test_non_numeric_value_in_numeric_column_file(files: dict[str, Path], tmp_path: Path) -> None:
    data = frame(200, 4).astype({"income": object})
    data.loc[3, "income"] = "unknown"
    path = tmp_path / "typo.csv"
    data.to_csv(path, index=False)
    result = runner.invoke(app, ["drift", "-r", str(files["ref"]), "-c", str(path), "--exclude", "id"])
    assert result.exit_code == 1
    assert "'income' is numeric in the reference but has 1 non-numeric value(s)" in result.stdout
    assert "'unknown'" in result.stdout


def test_mixed_types_in_reference_file(files: dict[str, Path], tmp_path: Path) -> None:
    data = frame(100, 5).astype({"age": object})
    data.loc[0, "age"] = "forty"
    path = tmp_path / "mixed.csv"
    data.to_csv(path, index=False)
    result = runner.invoke(app, ["drift", "-r", str(path), "-c", str(files["same"]), "--exclude", "id"])
    assert result.exit_code == 2 and "column 'age' mixes numbers and text" in result.output


def test_nan_and_inf_in_files(files: dict[str, Path], tmp_path: Path) -> None:
    data = frame(2_000, 6)
    data.loc[:4, "score"] = np.inf
    data.loc[5:20, "income"] = np.nan
    path = tmp_path / "inf.csv"
    data.to_csv(path, index=False)  # written as "inf" and empty cells; pandas reads them back as inf / NaN
    result = api.drift_check(None, path, reference=files["ref"], exclude=["id"])
    assert result.schema_problems == ("column 'score' has 5 infinite value(s) in the batch; the reference had none",)
    assert {c.name for c in result.columns if c.score is not None} == {"age", "income", "score", "segment"}
