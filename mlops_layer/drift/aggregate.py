"""Mergeable partial aggregates of a batch against a reference profile: drift checks chunk by chunk, or per partition.

A :class:`BatchAggregate` is updated with chunks of a batch (Arrow record batches as pandas frames, Spark partitions)
and merged with the aggregates of other chunks; :meth:`BatchAggregate.result` then gives the same
:class:`~mlops_layer.drift.result.DriftResult` as :func:`mlops_layer.drift.gate.check` on the whole batch. Memory is
bounded by the reference profile, never by the number of rows.

What each statistic keeps, per column:

- null, infinite and non-numeric counts; for categorical columns the count of each reference category, of the others
  and of never-seen values: all exact, so null rates, schema problems, Jensen-Shannon, PSI and chi-squared of
  categorical columns are exactly the in-memory gate's.
- numeric columns, while a column has at most ``exact_limit`` finite values (default 65,536; never below the
  config's ``small_n``, so small batches and their significance tests are always exact): the values themselves.
- beyond that, a fine histogram on the reference's grid: the reference's quantile function at ``grid_cells``
  (default 2,048) evenly spaced levels, as many evenly spaced values between its minimum and maximum, plus
  its stored quantiles and PSI bin edges. Per cell it keeps the count and the
  sum of distances to the cell's right edge; below the reference minimum and above its maximum, the count and the sum
  of distances to that extreme.

The error bound (``ColumnDrift.bound``), proven and checked by tests:

- PSI and Jensen-Shannon of numeric columns: exact (the PSI bin edges are grid points).
- Wasserstein (W1 / reference std): W1 is the area between the batch's CDF and the reference's. On a cell where the
  two cannot cross (the batch's CDF at the cell's left edge is at least the reference's at its right edge, or the
  other way round) the area is exactly the absolute value of the cell's signed area, which the counts and distance
  sums give exactly; the tails outside the reference's range are exact too. Only cells where the CDFs may cross are
  estimated (batch mass spread evenly across the cell), and each such cell's error is bounded by its width times the
  span of the two CDFs on it: ``bound = sum over crossing cells of max(estimate - |signed area|, span area -
  estimate) / std``. Typically 1e-4 to 1e-3 of a standard deviation (a threshold is 0.1).
- KS: the batch's CDF is exact at grid points, so ``D`` lies between the largest gap at grid points and the largest
  gap any cell allows; the score is the midpoint, the bound half the interval, and the p-value a range whose
  corrected ends decide whether the verdict is certain.

A column whose score lies within its bound of the threshold is marked ``near_threshold``: the in-memory gate could
decide it either way. Every other verdict equals the in-memory gate's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mlops_layer.drift import stats
from mlops_layer.drift.config import DriftConfig
from mlops_layer.drift.gate import (
    Assessment,
    CategoryCounts,
    Plan,
    numeric_chunk,
    numeric_chunk_problems,
    numeric_rates,
    numeric_unassessable,
    plan,
    score_numeric,
    verdict,
    wants_p_value,
)
from mlops_layer.drift.profile import NUMERIC, CategoricalProfile, NumericProfile, ReferenceProfile
from mlops_layer.drift.result import DriftResult
from mlops_layer.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

EXACT_LIMIT = 65_536
GRID_CELLS = 2048

FloatArray = NDArray[np.float64]


def reference_cell_grid(ref: NumericProfile, cells: int = GRID_CELLS) -> FloatArray:
    """The sorted, distinct grid points of a numeric column: its quantile function at ``cells + 1`` evenly spaced
    levels (cells of equal reference mass), ``cells + 1`` evenly spaced values between its minimum and maximum (so no
    cell is wide, even in a long tail), its stored quantiles (so the reference CDF is linear inside every cell) and
    its PSI bin edges (so PSI is exact)."""
    assert ref.min is not None and ref.max is not None
    u_grid, q_grid = stats.reference_grid(ref.levels, ref.quantiles, ref.min, ref.max)
    even_mass = np.interp(np.linspace(0.0, 1.0, cells + 1), u_grid, q_grid)
    even_width = np.linspace(ref.min, ref.max, cells + 1)
    points = (even_mass, even_width, q_grid, np.asarray(ref.bin_edges, dtype=np.float64))
    return np.unique(np.concatenate(points))


def reference_cdf_limits(x: FloatArray, ref: NumericProfile) -> tuple[FloatArray, FloatArray]:
    """The reference CDF's left limits F(x-) and values F(x): the exact inverse of its piecewise-linear quantile
    function, which jumps where that function is flat (repeated values) and is linear between its knots."""
    assert ref.min is not None and ref.max is not None
    u_grid, q_grid = stats.reference_grid(ref.levels, ref.quantiles, ref.min, ref.max)
    vals, first = np.unique(q_grid, return_index=True)
    last = q_grid.size - 1 - np.unique(q_grid[::-1], return_index=True)[1]
    lowest, highest = u_grid[first], u_grid[last]
    j = np.searchsorted(vals, x, side="right") - 1  # the largest distinct value <= x
    inside = (j >= 0) & (j < vals.size - 1)
    jc = np.clip(j, 0, vals.size - 1)
    jn = np.clip(j + 1, 0, vals.size - 1)
    span = np.where(inside, vals[jn] - vals[jc], 1.0)
    ramp = highest[jc] + (x - vals[jc]) / span * (lowest[jn] - highest[jc])
    on_knot = (j >= 0) & (x == vals[jc])
    value = np.where(j < 0, 0.0, np.where(on_knot, highest[jc], np.where(inside, ramp, 1.0)))
    left = np.where(on_knot, lowest[jc], value)
    return np.asarray(left, dtype=np.float64), np.asarray(value, dtype=np.float64)


@dataclass
class NumericAggregate:
    """Partial aggregate of one numeric column: counts, and either the finite values or the grid histogram."""

    n_rows: int = 0
    n_nan: int = 0
    n_inf: int = 0
    n_bad: int = 0
    bad_example: str | None = None
    wrong_dtype: str | None = None
    n_finite: int = 0
    exact: list[FloatArray] | None = field(default_factory=list)
    # histogram on the grid: cell 0 is x <= g[0], cell k is g[k-1] < x <= g[k], the last x > g[-1]
    counts: NDArray[np.int64] | None = None
    # per cell, the sum of (right edge - x); below g[0] of (g[0] - x); above g[-1] of (g[-1] - x) (so <= 0)
    offsets: FloatArray | None = None

    def update(self, series: pd.Series, grid: FloatArray | None, exact_limit: int) -> None:
        chunk = numeric_chunk(series)
        values = chunk.values
        self.n_rows += int(values.size)
        self.n_bad += chunk.n_bad
        if self.bad_example is None:
            self.bad_example = chunk.bad_example
        if self.wrong_dtype is None:
            self.wrong_dtype = chunk.wrong_dtype
        finite = np.isfinite(values)
        n_finite = int(np.count_nonzero(finite))
        if n_finite < values.size:
            n_nan = int(np.count_nonzero(np.isnan(values)))
            self.n_nan += n_nan
            self.n_inf += int(values.size) - n_finite - n_nan
            values = values[finite]
        self.add_finite(values, grid, exact_limit)

    def add_finite(self, values: FloatArray, grid: FloatArray | None, exact_limit: int) -> None:
        """Count finite values (kept as they are while the column has at most ``exact_limit`` of them)."""
        self.n_finite += int(values.size)
        if grid is None or not values.size:
            return
        if self.exact is not None:
            self.exact.append(np.array(values, dtype=np.float64))  # a copy: never a view into someone's buffer
            if self.n_finite <= exact_limit:
                return
            held, self.exact = np.concatenate(self.exact), None
            self._bin(np.sort(held), grid)
            return
        self._bin(np.sort(values), grid)

    def _bin(self, s: FloatArray, grid: FloatArray) -> None:
        """Add a sorted array to the grid histogram (one sort per chunk, then a search of the grid into it)."""
        m = grid.size
        if self.counts is None or self.offsets is None:
            self.counts = np.zeros(m + 1, dtype=np.int64)
            self.offsets = np.zeros(m + 1, dtype=np.float64)
        le = np.searchsorted(s, grid, side="right")  # count(x <= g[k])
        bounds = np.concatenate(([0], le, [s.size]))
        counts = np.diff(bounds)
        center = float(grid[m // 2])
        prefix = np.concatenate(([0.0], np.cumsum(s - center)))
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]  # per cell, sum of (x - center)
        right = np.append(grid, grid[-1]) - center
        self.counts += counts
        self.offsets += right * counts - sums

    def merge(self, other: NumericAggregate, grid: FloatArray | None, exact_limit: int) -> None:
        self.n_rows += other.n_rows
        self.n_nan += other.n_nan
        self.n_inf += other.n_inf
        self.n_bad += other.n_bad
        self.bad_example = self.bad_example or other.bad_example
        self.wrong_dtype = self.wrong_dtype or other.wrong_dtype
        if grid is None:
            self.n_finite += other.n_finite
            return
        if other.exact is not None:
            for part in other.exact:
                self.add_finite(part, grid, exact_limit)
            return
        if self.exact is not None:
            held = np.concatenate(self.exact) if self.exact else np.empty(0)
            self.exact = None
            if held.size:
                self._bin(np.sort(held), grid)
        assert other.counts is not None and other.offsets is not None
        if self.counts is None or self.offsets is None:
            self.counts, self.offsets = other.counts.copy(), other.offsets.copy()
        else:
            self.counts += other.counts
            self.offsets += other.offsets
        self.n_finite += other.n_finite

    def assess(
        self,
        name: str,
        ref: NumericProfile,
        grid: FloatArray | None,
        cfg: DriftConfig,
        want_p: bool,
        problems: list[str],
    ) -> Assessment:
        out = Assessment(name, NUMERIC)
        numeric_chunk_problems(name, self.wrong_dtype, self.n_bad, self.bad_example, problems)
        if self.n_rows:
            numeric_rates(name, ref, self.n_rows, self.n_nan, self.n_inf, cfg, problems)
        if numeric_unassessable(out, ref, self.n_finite, problems):
            return out
        assert grid is not None
        if self.exact is not None:
            score_numeric(out, ref, np.sort(np.concatenate(self.exact)), want_p)
            return out
        assert self.counts is not None and self.offsets is not None
        _score_histogram(out, ref, grid, self.counts, self.offsets, want_p)
        return out


def _score_histogram(
    out: Assessment,
    ref: NumericProfile,
    grid: FloatArray,
    counts: NDArray[np.int64],
    offsets: FloatArray,
    want_p: bool,
) -> None:
    """PSI and JS exactly, W1 and KS with their error bounds, from the grid histogram."""
    assert ref.min is not None and ref.max is not None
    n = int(counts.sum())
    m = grid.size
    cum = np.cumsum(counts[:-1])  # count(x <= g[k]), k = 0..m-1
    # PSI / JS: the bin edges are grid points, so the bins' counts are exact
    edges = np.asarray(ref.bin_edges, dtype=np.float64)
    at = np.searchsorted(grid, edges)
    bins = np.diff(np.concatenate(([0], cum[at], [n])))
    ref_p = np.asarray(ref.bin_proportions, dtype=np.float64)
    cur_p = bins / n
    out.scores["psi"] = stats.psi(ref_p, cur_p)
    out.scores["jensenshannon"] = stats.js_distance(ref_p, cur_p)
    out.bounds["psi"] = 0.0
    out.bounds["jensenshannon"] = 0.0

    c = cum / n  # batch CDF at grid points (right-continuous)
    r_left, r_right = reference_cdf_limits(grid, ref)
    # tails, exact: below the reference minimum the reference CDF is 0, above its maximum 1
    w1 = float(offsets[0] / n - offsets[m] / n)
    bound = 0.0
    if m > 1:
        width = np.diff(grid)
        lo = c[:-1]  # batch CDF on the open cell (a, b) lies in [lo, hi]
        p = counts[1:m] / n
        hi = lo + p
        ra, rb = r_right[:-1], r_left[1:]  # reference CDF rises linearly from ra to rb across the cell
        signed = lo * width + offsets[1:m] / n - width * (ra + rb) / 2
        crossing = (hi > ra) & (lo < rb)
        exact_area = np.abs(signed)
        w1 += float(exact_area[~crossing].sum())
        if crossing.any():
            wc, lc, hc, rac, rbc = width[crossing], lo[crossing], hi[crossing], ra[crossing], rb[crossing]
            # a cell without batch mass inside its open interval (none, or all on its right edge: repeated values)
            # has a flat batch CDF there, so its area is exact
            flat = (counts[1:m][crossing] == 0) | (offsets[1:m][crossing] <= 1e-12 * wc * counts[1:m][crossing])
            hc_est = np.where(flat, lc, hc)
            low = exact_area[crossing]
            high = wc * np.maximum(hc - rac, rbc - lc)
            d0, d1 = lc - rac, hc_est - rbc  # batch mass spread evenly: the gap is linear from d0 to d1
            same = d0 * d1 >= 0
            denom = np.where(same, 1.0, np.abs(d0) + np.abs(d1))
            est = np.where(same, wc * (np.abs(d0) + np.abs(d1)) / 2, wc * (d0 * d0 + d1 * d1) / (2 * denom))
            est = np.where(flat, est, np.clip(est, low, np.maximum(high, low)))
            w1 += float(est.sum())
            bound += float(np.where(flat, 0.0, np.maximum(est - low, high - est)).sum())
    out.scores["wasserstein"] = float(w1 / ref.scale)
    out.bounds["wasserstein"] = float(bound / ref.scale)
    if want_p:
        # the gate's KS reads the reference CDF through stats.reference_cdf (smoothed over repeated values); the
        # bound holds for any non-decreasing CDF, so use the same one and the bound is against the gate's D
        from scipy import stats as sps

        r_right = stats.reference_cdf(grid, ref.levels, ref.quantiles, ref.min, ref.max)
        gaps = np.abs(c - r_right)
        d_low = float(gaps.max()) if gaps.size else 0.0
        d_high = max(d_low, float(c[0]), float(r_right[0]), float(1.0 - c[-1]))
        if m > 1:
            lo, hi = c[:-1], c[:-1] + counts[1:m] / n
            d_high = max(d_high, float(np.max(np.maximum(hi - r_right[:-1], r_right[1:] - lo))))
        d_high = min(d_high, 1.0)
        d = (d_low + d_high) / 2
        n_ref = max(int(ref.n_valid), 1)
        n_eff = max(1, int(round(n * n_ref / (n + n_ref))))
        out.scores["ks"] = float(d)
        out.bounds["ks"] = float((d_high - d_low) / 2)
        out.p_value = float(sps.kstwo.sf(d, n_eff))
        out.p_range = (float(sps.kstwo.sf(d_high, n_eff)), float(sps.kstwo.sf(d_low, n_eff)))


@dataclass
class BatchAggregate:
    """The mergeable state of a drift check: row count and one aggregate per scored column.

    Build it with :meth:`start` (from the batch's column names), feed it chunks with :meth:`update`, combine partial
    aggregates with :meth:`merge`, and get the verdict with :meth:`result`. Picklable, so Spark executors can send
    theirs to the driver; a few KB per column whatever the number of rows.
    """

    profile: ReferenceProfile
    config: DriftConfig
    plan: Plan
    exact_limit: int
    grid_cells: int
    n_rows: int = 0
    numeric: dict[str, NumericAggregate] = field(default_factory=dict)
    categorical: dict[str, CategoryCounts] = field(default_factory=dict)
    _grids: dict[str, FloatArray | None] = field(default_factory=dict, repr=False)

    @classmethod
    def start(
        cls,
        profile: ReferenceProfile,
        config: DriftConfig | None,
        batch_columns: Sequence[str],
        *,
        exact_limit: int = EXACT_LIMIT,
        grid_cells: int = GRID_CELLS,
    ) -> BatchAggregate:
        cfg = config or DriftConfig()
        if grid_cells < 16:
            raise InputError(f"grid_cells must be at least 16, got {grid_cells}")
        the_plan = plan(profile, [str(c) for c in batch_columns], cfg)
        agg = cls(profile, cfg, the_plan, max(int(exact_limit), cfg.small_n), grid_cells)
        for name in the_plan.scored:
            col = profile.columns[name]
            if isinstance(col, NumericProfile):
                agg.numeric[name] = NumericAggregate()
            else:
                agg.categorical[name] = CategoryCounts.empty(col)
        return agg

    def grid(self, name: str) -> FloatArray | None:
        """The column's grid (None when the reference had no value), computed once per process."""
        if name not in self._grids:
            col = self.profile.columns[name]
            assert isinstance(col, NumericProfile)
            has_values = col.n_valid > 0 and col.min is not None and col.max is not None
            self._grids[name] = reference_cell_grid(col, self.grid_cells) if has_values else None
        return self._grids[name]

    def update(self, frame: pd.DataFrame) -> BatchAggregate:
        """Add one chunk (a pandas frame with the batch's columns); returns self."""
        self.n_rows += len(frame)
        if not len(frame):
            return self
        for name, agg in self.numeric.items():
            agg.update(frame[name], self.grid(name), self.exact_limit)
        for name, counts in self.categorical.items():
            ref = self.profile.columns[name]
            assert isinstance(ref, CategoricalProfile)
            counts.update(ref, frame[name])
        return self

    def merge(self, other: BatchAggregate) -> BatchAggregate:
        """Fold another partial aggregate of the same check into this one; returns self."""
        if other.plan.scored != self.plan.scored or other.grid_cells != self.grid_cells:
            raise InputError("cannot merge aggregates of different checks (columns or grids differ)")
        self.n_rows += other.n_rows
        for name, agg in self.numeric.items():
            agg.merge(other.numeric[name], self.grid(name), self.exact_limit)
        for name, counts in self.categorical.items():
            counts.merge(other.categorical[name])
        return self

    def result(self, *, engine: str = "stream") -> DriftResult:
        """The verdict from the merged aggregate (the in-memory gate's, up to the stated error bounds)."""
        if self.n_rows == 0:
            raise InputError("the batch has no rows", hint="an empty batch cannot be checked for drift")
        cfg = self.config
        small = self.n_rows <= cfg.small_n
        problems = list(self.plan.problems)
        assessments: list[Assessment] = []

        def assess(name: str) -> Assessment:
            col = self.profile.columns[name]
            want_p = wants_p_value(cfg, name, col.kind, small)
            if isinstance(col, NumericProfile):
                return self.numeric[name].assess(name, col, self.grid(name), cfg, want_p, problems)
            return self.categorical[name].assess(name, col, cfg, want_p, problems)

        for name in self.plan.columns:
            assessments.append(assess(name))
        problems.extend(self.plan.prediction_problems)
        if self.plan.prediction is not None:
            assessments.append(assess(self.plan.prediction))
        return verdict(self.profile, self.plan, assessments, cfg, self.n_rows, problems, engine=engine)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_grids"] = {}  # recomputed where needed: deterministic from the profile
        return state


def check_chunks(
    profile: ReferenceProfile,
    chunks: Iterable[pd.DataFrame],
    batch_columns: Sequence[str],
    config: DriftConfig | None = None,
    *,
    exact_limit: int = EXACT_LIMIT,
    grid_cells: int = GRID_CELLS,
    engine: str = "stream",
    progress: Any = None,
) -> DriftResult:
    """Check a batch given as chunks (e.g. Arrow record batches), holding one chunk at a time.

    ``progress(rows_done)`` is called after each chunk.
    """
    agg = BatchAggregate.start(profile, config, batch_columns, exact_limit=exact_limit, grid_cells=grid_cells)
    for chunk in chunks:
        agg.update(chunk)
        if progress is not None:
            progress(agg.n_rows)
    return agg.result(engine=engine)


def score_bound(result: DriftResult) -> float:
    """The largest error bound of any decided score in a result (0.0 when every score is exact)."""
    bounds = [c.bound for c in (*result.columns, *((result.prediction,) if result.prediction else ())) if c.bound]
    return max(bounds) if bounds else 0.0


__all__ = [
    "EXACT_LIMIT",
    "GRID_CELLS",
    "BatchAggregate",
    "NumericAggregate",
    "check_chunks",
    "check_parquet",
    "reference_cell_grid",
    "score_bound",
]


def check_parquet(
    profile: ReferenceProfile,
    path: str | Any,
    config: DriftConfig | None = None,
    *,
    exact_limit: int = EXACT_LIMIT,
    grid_cells: int = GRID_CELLS,
    batch_rows: int | None = None,
    progress: Any = None,
) -> DriftResult:
    """Stream a Parquet file or folder (a path or a :class:`~mlops_layer.drift.io.ParquetSource`) through the
    aggregates, one Arrow record batch at a time (bounded memory).

    Only the columns the check scores are read. ``progress(rows_done, rows_total)`` is called after each record batch.
    """
    from mlops_layer.drift.io import BATCH_ROWS, ParquetSource, iter_parquet_frames, parquet_source

    source = path if isinstance(path, ParquetSource) else parquet_source(path)
    agg = BatchAggregate.start(profile, config, source.columns, exact_limit=exact_limit, grid_cells=grid_cells)
    for frame in iter_parquet_frames(source, list(agg.plan.scored), batch_rows=batch_rows or BATCH_ROWS):
        agg.update(frame)
        if progress is not None:
            progress(agg.n_rows, source.n_rows)
    if not agg.plan.scored:
        agg.n_rows = source.n_rows  # nothing to read, but the row count is in the metadata
    return agg.result(engine="stream")
