"""Vectorised drift statistics on sorted numpy arrays and frequency vectors (no pandas).

Numeric columns are compared through the reference's quantile function, so a check never needs the raw training
data: PSI on the reference's quantile bins, Wasserstein-1 as the mean gap between quantile functions, and a KS test
against the reference CDF. Categorical columns use frequency vectors: Jensen-Shannon distance, PSI, chi-squared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

_CHUNK = 1 << 16  # bounded temporaries: W1/KS work on 64k-row slices of the sorted column


def split_finite(values: FloatArray) -> tuple[FloatArray, int, int]:
    """(sorted finite values, number of NaN, number of +-inf). The input is never modified."""
    finite = np.isfinite(values)
    n_finite = int(np.count_nonzero(finite))
    if n_finite == values.size:
        return np.sort(values, kind="quicksort"), 0, 0
    n_nan = int(np.count_nonzero(np.isnan(values)))
    kept = values[finite]
    kept.sort(kind="quicksort")
    return kept, n_nan, values.size - n_finite - n_nan


def midpoint_levels(k: int) -> FloatArray:
    """The levels (i + 0.5) / k: k evenly spaced quantiles."""
    return (np.arange(k, dtype=np.float64) + 0.5) / k


TAIL_LEVELS = (1e-4, 1e-3)


def profile_levels(k: int) -> FloatArray:
    """The levels at which a profile stores the quantile function: k midpoints plus a few tail levels each side.

    The tail levels keep heavy tails (incomes, latencies) from being smeared between the outermost midpoint and the
    extreme value, which would bias both W1 and the reference rebuilt for reports.
    """
    mid = midpoint_levels(k)
    low = [t for t in TAIL_LEVELS if t < mid[0]]
    return np.concatenate((low, mid, [1.0 - t for t in reversed(low)]))


def sorted_quantiles(s: FloatArray, levels: FloatArray) -> FloatArray:
    """Linear-interpolated quantiles (numpy's default method) of an already sorted array."""
    n = s.size
    if n == 0:
        return np.full(levels.shape, np.nan)
    pos = levels * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    return np.asarray(s[lo] + frac * (s[hi] - s[lo]), dtype=np.float64)


def quantile_bin_edges(s: FloatArray, bins: int) -> FloatArray:
    """Interior edges of ``bins`` equal-frequency bins (fewer when values repeat)."""
    if s.size == 0 or bins < 2:
        return np.empty(0)
    edges = sorted_quantiles(s, np.arange(1, bins, dtype=np.float64) / bins)
    return np.unique(edges)


def bin_counts(s: FloatArray, edges: FloatArray) -> NDArray[np.int64]:
    """Counts of a sorted array in the bins (-inf, e1], (e1, e2], ..., (e_last, inf)."""
    cum = np.searchsorted(s, edges, side="right")
    return np.diff(np.concatenate(([0], cum, [s.size]))).astype(np.int64)


def fill_zeros(p: FloatArray) -> FloatArray:
    """Replace empty cells the way Evidently does, so PSI stays finite and comparable with its reports."""
    out = np.array(p, dtype=np.float64)
    nonzero = out[out > 0]
    if nonzero.size == 0:
        return np.full_like(out, 1.0 / max(out.size, 1))
    smallest = float(nonzero.min())
    out[out == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return out


def psi(ref: FloatArray, cur: FloatArray) -> float:
    """Population stability index of two proportion vectors over the same cells."""
    r, c = fill_zeros(ref), fill_zeros(cur)
    return float(np.sum((r - c) * np.log(r / c)))


def js_distance(ref: FloatArray, cur: FloatArray) -> float:
    """Jensen-Shannon distance (natural log, like scipy's default) of two non-negative vectors."""
    p = np.asarray(ref, dtype=np.float64)
    q = np.asarray(cur, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(math.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def reference_grid(
    levels: Sequence[float], quantiles: Sequence[float], lo: float, hi: float
) -> tuple[FloatArray, FloatArray]:
    """(levels, values) of the reference quantile function, anchored at (0, min) and (1, max)."""
    u = np.concatenate(([0.0], np.asarray(levels, dtype=np.float64), [1.0]))
    v = np.concatenate(([lo], np.asarray(quantiles, dtype=np.float64), [hi]))
    return u, np.maximum.accumulate(v)  # guard against rounding making the function non-monotone


def _gap_integral(c: FloatArray, q: FloatArray, edges: FloatArray) -> float:
    """Sum over intervals [edges[i], edges[i+1]] of the integral of |c[i] - Q(u)|, Q linear from q[i] to q[i+1].

    With m the interval's mean of Q and h half its rise: the gap averages |c - m| when c is outside Q's range there,
    and ((c - m)^2 + h^2) / (2h) when Q crosses c (two triangles).
    """
    half = np.abs(np.diff(q))
    half *= 0.5
    gap = q[:-1] + q[1:]
    gap *= 0.5
    gap -= c
    np.abs(gap, out=gap)
    crossing = gap < half
    if crossing.any():
        g, h = gap[crossing], half[crossing]
        gap[crossing] = (g * g + h * h) / (2 * h)
    gap *= np.diff(edges)
    return float(gap.sum())  # not np.dot: BLAS threads cost more than they save here


def wasserstein_to_quantiles(
    s: FloatArray, levels: Sequence[float], quantiles: Sequence[float], lo: float, hi: float
) -> float:
    """W1 between a sorted sample and a reference given by its quantile function, integrated exactly.

    W1 = integral over u in [0, 1] of |Q_cur(u) - Q_ref(u)|. Q_cur is the sample's step function (s[j] on
    [j/n, (j+1)/n)), Q_ref the piecewise-linear interpolation of the stored quantiles; the interval edges are split
    at the reference's knots so Q_ref is linear on every piece and each piece has a closed form. Exact for any n
    (a midpoint rule would be badly off for a handful of rows); processed in slices to bound memory.
    """
    n = s.size
    if n == 0:
        return math.nan
    u_grid, q_grid = reference_grid(levels, quantiles, lo, hi)
    knots = u_grid[1:-1]
    total = 0.0
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        left = np.arange(start, stop, dtype=np.float64) / n
        c = s[start:stop]
        # reference knots falling inside this slice's intervals split them
        inner = knots[(knots > left[0]) & (knots < stop / n)]
        if inner.size:
            pos = np.searchsorted(left, inner, side="right")
            left = np.insert(left, pos, inner)
            c = np.insert(c, pos, c[pos - 1])
        edges = np.append(left, stop / n)
        total += _gap_integral(c, np.interp(edges, u_grid, q_grid), edges)
    return total


def reference_cdf(
    x: FloatArray, levels: Sequence[float], quantiles: Sequence[float], lo: float, hi: float
) -> FloatArray:
    """The reference CDF (inverse of its piecewise-linear quantile function), right-continuous at ties."""
    u_grid, q_grid = reference_grid(levels, quantiles, lo, hi)
    # np.interp needs increasing x: keep the highest level of each repeated value (right-continuous CDF)
    rev_vals, rev_idx = np.unique(q_grid[::-1], return_index=True)
    cdf_levels = u_grid[::-1][rev_idx]
    if rev_vals.size == 1:
        return np.where(x < rev_vals[0], 0.0, 1.0)
    return np.asarray(np.interp(x, rev_vals, cdf_levels, left=0.0, right=1.0), dtype=np.float64)


def ks_against_quantiles(
    s: FloatArray, levels: Sequence[float], quantiles: Sequence[float], lo: float, hi: float, n_reference: int
) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic of a sorted sample against the reference CDF, and its p-value.

    The p-value uses the two-sample effective size n*m/(n+m), since the reference is itself a sample.
    """
    from scipy import stats as sps

    n = s.size
    if n == 0:
        return math.nan, 1.0
    d = 0.0
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        f = reference_cdf(s[start:stop], levels, quantiles, lo, hi)
        j = np.arange(start, stop, dtype=np.float64)
        d = max(d, float(np.max((j + 1) / n - f)), float(np.max(f - j / n)))
    m = max(int(n_reference), 1)
    n_eff = max(1, int(round(n * m / (n + m)))) if n_reference > 0 else n
    return d, float(sps.kstwo.sf(d, n_eff))


def chi2_two_sample(ref_props: FloatArray, n_reference: int, cur_counts: FloatArray) -> float:
    """p-value of a chi-squared test of homogeneity between reference proportions and current counts.

    Cells expected to hold fewer than 5 rows are pooled so the test's approximation holds.
    """
    from scipy import stats as sps

    ref = np.asarray(ref_props, dtype=np.float64) * max(n_reference, 1)
    cur = np.asarray(cur_counts, dtype=np.float64)
    n_cur = cur.sum()
    if n_cur <= 0 or ref.sum() <= 0:
        return 1.0
    expected_cur = (ref + cur) / (ref.sum() + n_cur) * n_cur
    small = expected_cur < 5
    if small.any():
        ref = np.append(ref[~small], ref[small].sum())
        cur = np.append(cur[~small], cur[small].sum())
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    if ref.size < 2:
        return 1.0
    _, p, _, _ = sps.chi2_contingency(np.vstack([ref, cur]), correction=False)
    return float(p)


def adjust_p_values(p_values: Sequence[float], method: str) -> list[float]:
    """Benjamini-Hochberg (``bh``) or Holm (``holm``) adjusted p-values; ``none`` returns them unchanged."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0 or method == "none":
        return [float(v) for v in p]
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1)) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r}")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(v) for v in out]
