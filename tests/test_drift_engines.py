"""`mlops drift --engine …` and `api.drift_check(engine=…)` on files and Parquet folders (ad hoc mode, no MLflow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops_layer import api
from mlops_layer.cli.main import app
from mlops_layer.errors import InputError

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
    ref = tmp_path / "ref.parquet"
    frame(50_000, 1).to_parquet(ref, index=False)
    batch = frame(150_000, 2, shift=0.3)
    whole = tmp_path / "batch.parquet"
    batch.to_parquet(whole, index=False)
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(3):
        batch.iloc[i * 50_000 : (i + 1) * 50_000].to_parquet(folder / f"part-{i}.parquet", index=False)
    return {"ref": ref, "whole": whole, "folder": folder}


def drift(*args: str) -> tuple[int, dict[str, object]]:
    out = runner.invoke(app, ["drift", *args, "--exclude", "id", "--json"])
    assert out.exit_code in (0, 1), out.output
    return out.exit_code, json.loads(out.stdout)


def test_a_folder_streams_and_agrees_with_the_in_memory_check(files: dict[str, Path]) -> None:
    code_mem, mem = drift("--reference", str(files["ref"]), "--current", str(files["whole"]))
    code_stream, stream = drift("--reference", str(files["ref"]), "--current", str(files["folder"]))
    assert mem["engine"] == "memory" and stream["engine"] == "stream"  # auto: a folder streams, a small file not
    assert code_mem == code_stream == 1 and stream["n_current"] == 150_000
    drifted = [[c["name"] for c in r["columns"] if c["drifted"]] for r in (mem, stream)]  # type: ignore[attr-defined]
    assert drifted[0] == drifted[1] == ["age", "score"]
    bounds = {c["name"]: c["bound"] for c in stream["columns"]}  # type: ignore[attr-defined]
    assert bounds["segment"] is None and 0 < bounds["age"] < 0.01  # categorical exact; numeric within a bound
    assert "3 Parquet files" in str(stream["current"])
    # the same file forced through the stream engine
    _, forced = drift("--reference", str(files["ref"]), "--current", str(files["whole"]), "--engine", "stream")
    assert forced["engine"] == "stream" and forced["columns"] == stream["columns"]


def test_engine_choices_are_checked(files: dict[str, Path]) -> None:
    out = runner.invoke(
        app,
        ["drift", "--reference", str(files["ref"]), "--current", str(files["folder"]), "--report", "r.html"],
    )
    assert out.exit_code == 2 and "needs the batch in memory" in out.output
    out = runner.invoke(
        app, ["drift", "--reference", str(files["ref"]), "--current", str(files["whole"]), "--engine", "gpu"]
    )
    assert out.exit_code == 2 and "unknown drift engine 'gpu'" in out.output
    out = runner.invoke(
        app, ["drift", "--reference", str(files["ref"]), "--current", str(files["folder"]), "--engine", "memory"]
    )
    assert out.exit_code == 2 and "--engine stream" in out.output  # a folder is never read into memory
    with pytest.raises(InputError, match="reads a Parquet file or folder"):
        api.drift_check(None, frame(10, 1), reference=files["ref"], engine="stream")


def test_api_streams_with_progress_in_rows(files: dict[str, Path]) -> None:
    seen: list[tuple[str, int | None, int | None]] = []
    result = api.drift_check(
        None, files["folder"], reference=files["ref"], exclude=["id"], progress=lambda m, d, t: seen.append((m, d, t))
    )
    assert result.engine == "stream" and result.drifted_columns == ("age", "score")
    rows = [(d, t) for m, d, t in seen if m.startswith("streaming")]
    assert rows[-1] == (150_000, 150_000) and len(rows) >= 3
