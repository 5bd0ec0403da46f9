"""Mergeable drift aggregates and Parquet streaming against the in-memory gate: same verdicts, stated error bounds."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_layer.drift import io as drift_io
from mlops_layer.drift.aggregate import BatchAggregate, check_chunks, check_parquet, reference_cell_grid
from mlops_layer.drift.config import ColumnRule, DriftConfig
from mlops_layer.drift.gate import check
from mlops_layer.drift.profile import NumericProfile, ReferenceProfile, build_profile
from mlops_layer.errors import InputError, NotFoundError

N = 120_000


def frame(n: int, seed: int, shift: float = 0.0, colors: list[float] | None = None) -> pd.DataFrame:
    """Columns of every shape the bound must hold for: normal, skewed, heavy-tailed, integer, categorical."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, size=n),
            "lognormal": rng.lognormal(shift / 2, 1.0, size=n),
            "student": rng.standard_t(2, size=n) + shift,  # heavy tails: batch values far outside the reference
            "counts": rng.poisson(4 + 2 * shift, size=n),  # integers: repeated values on grid points
            "uniform": rng.uniform(0, 1 + shift, size=n),
            "color": rng.choice(["red", "green", "blue"], size=n, p=colors or [0.5, 0.3, 0.2]),
        }
    )
    out.loc[out.index % 50 == 0, "normal"] = np.nan
    return out


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return build_profile(frame(N, 1))


def chunks(batch: pd.DataFrame, sizes: tuple[int, ...] = (7_001, 30_000, 1, 50_000)) -> list[pd.DataFrame]:
    """Uneven chunks (one of a single row) covering the batch."""
    out, start, i = [], 0, 0
    while start < len(batch):
        size = sizes[i % len(sizes)]
        out.append(batch.iloc[start : start + size])
        start += size
        i += 1
    return out


def streamed(profile: ReferenceProfile, batch: pd.DataFrame, cfg: DriftConfig | None = None) -> object:
    return check_chunks(profile, chunks(batch), list(batch.columns), cfg, exact_limit=0)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.1, 0.3, 1.0])
def test_scores_are_within_the_stated_bound_of_the_in_memory_gate(profile: ReferenceProfile, shift: float) -> None:
    batch = frame(N, 10 + int(shift * 100), shift, colors=[0.45, 0.3, 0.25] if shift else None)
    cfg = DriftConfig(small_n=0)
    exact = check(profile, batch, cfg)
    approx = check_chunks(profile, chunks(batch), list(batch.columns), cfg, exact_limit=0)
    assert approx.engine == "stream" and approx.n_current == exact.n_current == N
    assert approx.schema_problems == exact.schema_problems
    for e, a in zip(exact.columns, approx.columns, strict=True):
        assert e.name == a.name and e.score is not None and a.score is not None
        if e.kind == "categorical":  # counts are exact
            assert a.scores == e.scores and a.bound is None
            continue
        assert a.bounds["psi"] == 0.0 and a.scores["psi"] == pytest.approx(e.scores["psi"], rel=1e-9, abs=1e-12)
        assert a.scores["jensenshannon"] == pytest.approx(e.scores["jensenshannon"], rel=1e-9, abs=1e-12)
        bound = a.bounds["wasserstein"]
        assert abs(a.scores["wasserstein"] - e.scores["wasserstein"]) <= bound + 1e-9, (e.name, shift)
        assert bound < 0.01  # small against a threshold of 0.1
        if not a.near_threshold:
            assert a.drifted == e.drifted, e.name
    assert approx.drifted_columns == exact.drifted_columns or approx.near_threshold


def test_ks_statistic_and_p_value_ranges_contain_the_gates(profile: ReferenceProfile) -> None:
    cfg = DriftConfig(numeric_method="ks", small_n=0, correction="none")
    for shift in (0.0, 0.02, 0.3):
        batch = frame(40_000, 20, shift)
        exact = check(profile, batch, cfg)
        approx = streamed(profile, batch, cfg)
        for e, a in zip(exact.columns, approx.columns, strict=True):
            if e.kind == "categorical":
                continue
            assert abs(a.scores["ks"] - e.scores["ks"]) <= a.bounds["ks"] + 1e-12, (e.name, shift)
            assert e.p_value is not None and a.p_value is not None and a.bound is not None
            assert abs(a.p_value - e.p_value) <= a.bound + 1e-12
            if not a.near_threshold:
                assert a.drifted == e.drifted


def test_a_score_within_its_bound_of_the_threshold_is_marked(profile: ReferenceProfile) -> None:
    batch = frame(N, 30, 0.2)
    first = streamed(profile, batch)
    col = next(c for c in first.columns if c.name == "lognormal")  # type: ignore[attr-defined]
    assert col.bound and col.bound > 0
    # a threshold inside the bound: the verdict could go either way, and the result says so
    cfg = DriftConfig(columns={"lognormal": ColumnRule(threshold=col.score + col.bound / 2)})
    marked = streamed(profile, batch, cfg)
    again = next(c for c in marked.columns if c.name == "lognormal")  # type: ignore[attr-defined]
    assert again.near_threshold and "within the error bound" in (again.note or "")
    assert marked.near_threshold == ("lognormal",) and marked.approximate  # type: ignore[attr-defined]
    assert marked.to_dict()["near_threshold"] == ["lognormal"]  # type: ignore[attr-defined]
    # far from the threshold: not marked
    assert not first.near_threshold  # type: ignore[attr-defined]


def test_small_batches_stay_exact_and_identical(profile: ReferenceProfile) -> None:
    batch = frame(800, 40, 0.3)  # <= small_n: significance tests too; the aggregate keeps the values themselves
    exact = check(profile, batch)
    agg = check_chunks(profile, chunks(batch, (100, 250)), list(batch.columns))
    assert agg.significance_tested and not agg.approximate
    assert {**agg.to_dict(), "engine": "memory"} == exact.to_dict()


def test_merge_in_any_grouping_gives_the_same_result(profile: ReferenceProfile) -> None:
    batch = frame(90_000, 50, 0.1)
    parts = chunks(batch, (20_000, 13_000))
    cols = list(batch.columns)

    def agg_of(frames: list[pd.DataFrame]) -> BatchAggregate:
        a = BatchAggregate.start(profile, None, cols, exact_limit=10_000)
        for f in frames:
            a.update(f)
        return a

    left = agg_of(parts[:3]).merge(agg_of(parts[3:]))
    right = agg_of(parts[4:])
    right.merge(agg_of(parts[:4]))
    # through pickle, as Spark executors send theirs
    shipped = pickle.loads(pickle.dumps(agg_of(parts[:2]))).merge(pickle.loads(pickle.dumps(agg_of(parts[2:]))))
    results = [x.result().to_dict() for x in (left, right, shipped, agg_of(parts))]
    for r in results[1:]:
        for a, b in zip(results[0]["columns"], r["columns"], strict=True):
            assert a["scores"] == pytest.approx(b["scores"], rel=1e-9, abs=1e-12)
            assert a["drifted"] == b["drifted"]
        assert r["n_current"] == 90_000


def test_aggregate_size_does_not_grow_with_rows(profile: ReferenceProfile) -> None:
    cols = list(frame(1, 0).columns)
    small = BatchAggregate.start(profile, None, cols, exact_limit=0).update(frame(20_000, 60))
    big = BatchAggregate.start(profile, None, cols, exact_limit=0)
    for seed in range(10):
        big.update(frame(20_000, 61 + seed))
    assert big.n_rows == 200_000
    size_small, size_big = len(pickle.dumps(small)), len(pickle.dumps(big))
    assert size_big <= size_small * 1.05 and size_big < 1_000_000
    col = profile.columns["normal"]
    assert isinstance(col, NumericProfile)
    assert 2_000 < reference_cell_grid(col).size < 5_000


def test_schema_problems_match_the_in_memory_gate(profile: ReferenceProfile) -> None:
    batch = frame(30_000, 70).drop(columns=["uniform"])
    batch["extra"] = 1.0
    batch["student"] = batch["student"].astype(object)
    batch.loc[batch.index[5:9], "student"] = "n/a"
    batch.loc[batch.index[: len(batch) // 4], "lognormal"] = np.nan
    batch.loc[batch.index[:2000], "color"] = "purple"
    batch.loc[batch.index[3], "normal"] = np.inf
    exact = check(profile, batch)
    approx = check_chunks(profile, chunks(batch), list(batch.columns), exact_limit=0)
    assert approx.schema_problems == exact.schema_problems
    text = " | ".join(approx.schema_problems)
    for expected in ("'uniform' is in the reference but missing", "'extra' is in the batch", "4 non-numeric", "null"):
        assert expected in text
    assert "purple" in text and "infinite" in text


def _write_parts(batch: pd.DataFrame, folder: Path, parts: int, row_group: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(batch) // parts)
    for i in range(parts):
        table = pa.Table.from_pandas(batch.iloc[i * size : (i + 1) * size], preserve_index=False)
        pq.write_table(table, folder / f"part-{i:03d}.parquet", row_group_size=row_group)
    (folder / "_SUCCESS").write_text("")  # what Spark leaves beside its output: skipped


def test_parquet_folder_streams_to_the_gates_verdict(profile: ReferenceProfile, tmp_path: Path) -> None:
    batch = frame(N, 80, 0.15, colors=[0.3, 0.3, 0.4])
    folder = tmp_path / "batch"
    _write_parts(batch, folder / "day=1", 3, 10_000)
    seen: list[tuple[int, int]] = []
    result = check_parquet(profile, folder, exact_limit=0, batch_rows=16_384, progress=lambda d, t: seen.append((d, t)))
    exact = check(profile, batch)
    assert result.engine == "stream" and result.n_current == N
    assert result.drifted_columns == exact.drifted_columns and result.drift == exact.drift
    assert seen[-1] == (N, N) and len(seen) >= N // 16_384  # one progress call per record batch
    source = drift_io.parquet_source(folder)
    assert source.n_rows == N and len(source.files) == 3
    biggest = max(len(f) for f in drift_io.iter_parquet_frames(source, ["normal"], batch_rows=16_384))
    assert biggest <= 16_384  # one bounded record batch at a time


def test_parquet_inputs_are_refused_clearly(profile: ReferenceProfile, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        check_parquet(profile, tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no Parquet file"):
        check_parquet(profile, empty)
    mixed = tmp_path / "mixed"
    _write_parts(frame(1_000, 1), mixed, 1, 1_000)
    pq.write_table(pa.table({"other": [1.0, 2.0]}), mixed / "part-999.parquet")
    with pytest.raises(InputError, match="part-999.parquet has columns other"):
        check_parquet(profile, mixed)
    bad = tmp_path / "bad" / "x.parquet"
    bad.parent.mkdir()
    bad.write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        check_parquet(profile, bad.parent)


def test_auto_engine_streams_folders_and_big_parquet_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "small.parquet"
    pq.write_table(pa.table({"x": np.arange(1000.0)}), small)
    (tmp_path / "dir").mkdir()
    assert drift_io.wants_streaming(tmp_path / "dir", "auto")
    assert not drift_io.wants_streaming(small, "auto")
    assert drift_io.wants_streaming(small, "stream") and not drift_io.wants_streaming(small, "memory")
    monkeypatch.setattr(drift_io, "STREAM_MIN_BYTES", 100)
    assert drift_io.wants_streaming(small, "auto")
    csv = tmp_path / "big.csv"
    csv.write_text("x\n" + "1\n" * 200)
    assert not drift_io.wants_streaming(csv, "auto")  # CSV is read in memory
