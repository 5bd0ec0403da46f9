"""Drift gate benchmark: 1,000,000 rows x 10 numeric columns, 5 shifted by 0.5 sigma, side by side with Evidently.

Prints, in one run: the gate's time vs Evidently's DataDriftPreset (default settings) on the same data and the ratio
(limit: >= 20x); which columns each flags (must be exactly the shifted ones); the gate's peak memory against the
batch size (limit: within 1.5x the batch); a 0.03 sigma shift at 1M rows (must not be drift, though a KS p-value
calls it drift); and the gate's time at 10k / 100k / 1M rows (linear growth).

Run: .venv/bin/python benchmarks/bench_drift.py [--skip-evidently]
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_layer.drift.gate import check
from mlops_layer.drift.profile import build_profile

ROWS = 1_000_000
COLS = 10
SHIFTED = [f"f{i}" for i in range(0, COLS, 2)]  # f0, f2, f4, f6, f8


def make(n: int, seed: int, shift: float, columns: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = np.empty((COLS, n))
    for i in range(COLS):
        data[i] = rng.normal(size=n)
        if f"f{i}" in columns:
            data[i] += shift
    # one float64 block, column-major like pandas' own storage: columns are contiguous
    return pd.DataFrame(data.T.copy(order="F"), columns=[f"f{i}" for i in range(COLS)])


def best_of(fn, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def rss_peak_reset() -> bool:
    try:
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def vm(field: str) -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss_child(profile: object) -> int | None:
    """Peak RSS growth of one check in a fresh process (a warm allocator would hide it), or None off Linux."""
    import json
    import subprocess
    import tempfile

    if not Path("/proc/self/clear_refs").exists():
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        fh.write(profile.to_json())  # type: ignore[attr-defined]
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", fh.name], capture_output=True, text=True, check=True
        ).stdout
    except subprocess.CalledProcessError:
        return None
    finally:
        os.unlink(fh.name)
    return int(json.loads(out.strip().splitlines()[-1])["extra"])


def _rss_child_main(profile_path: str) -> int:
    import json

    from mlops_layer.drift.profile import ReferenceProfile

    profile = ReferenceProfile.from_json(Path(profile_path).read_text())
    current = make(ROWS, 2, 0.5, SHIFTED)
    check(profile, current.iloc[:1000])  # imports and first-use allocations outside the measurement
    gc.collect()
    before = vm("VmRSS")
    if not rss_peak_reset():
        return 1
    check(profile, current)
    print(json.dumps({"extra": max(vm("VmHWM") - before, 0)}))
    return 0


def main() -> int:
    if "--rss-child" in sys.argv:
        return _rss_child_main(sys.argv[sys.argv.index("--rss-child") + 1])
    skip_evidently = "--skip-evidently" in sys.argv
    failures: list[str] = []
    print(f"data: {ROWS:,} rows x {COLS} float64 columns; shifted by 0.5 sigma: {', '.join(SHIFTED)}")
    reference = make(ROWS, 1, 0.0, [])
    current = make(ROWS, 2, 0.5, SHIFTED)
    batch_bytes = int(current.memory_usage(index=False).sum())

    t0 = time.perf_counter()
    profile = build_profile(reference)
    t_profile = time.perf_counter() - t0
    print(
        f"reference profile (once, at training time): {t_profile:.2f} s, {len(profile.to_json()) / 1024:.0f} KiB JSON"
    )

    check(profile, current)  # warm-up (imports, caches)
    t_gate = best_of(lambda: check(profile, current))
    result = check(profile, current)
    flagged = list(result.drifted_columns)
    print(
        f"gate on 1M rows: {t_gate:.2f} s (best of 3); flags {flagged}; share {result.share:.2f}; drift={result.drift}"
    )
    if flagged != SHIFTED:
        failures.append(f"gate flagged {flagged}, expected {SHIFTED}")
    scores = {c.name: round(c.score or 0.0, 3) for c in result.columns}
    print(f"  normalised Wasserstein per column: {scores}")

    # -- memory: what the gate allocates on top of the batch -----------------------------------------------------
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    check(profile, current)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    extra = peak - base
    ratio_mem = (batch_bytes + extra) / batch_bytes
    print(
        f"memory: batch {batch_bytes / 2**20:.1f} MiB; gate's peak extra allocation (tracemalloc) "
        f"{extra / 2**20:.1f} MiB -> batch + gate = {ratio_mem:.2f}x the batch (limit 1.5x)"
    )
    if ratio_mem > 1.5:
        failures.append(f"peak memory {ratio_mem:.2f}x the batch")
    rss_extra = rss_child(profile)
    if rss_extra is not None:
        print(
            f"  cross-check by RSS in a fresh process: peak resident grew {rss_extra / 2**20:.1f} MiB during the "
            f"check -> {(batch_bytes + rss_extra) / batch_bytes:.2f}x the batch"
        )

    # -- 0.03 sigma at 1M rows: effect size says no, p-values say yes ----------------------------------------------
    tiny = make(ROWS, 3, 0.03, [f"f{i}" for i in range(COLS)])
    tiny_result = check(profile, tiny)
    from scipy import stats as sps

    p_ks = sps.ks_2samp(reference["f0"].to_numpy()[:ROWS], tiny["f0"].to_numpy()).pvalue
    print(
        f"0.03 sigma shift on all columns at 1M rows: drift={tiny_result.drift}, drifted columns "
        f"{list(tiny_result.drifted_columns)}, max W1/std {max(c.score or 0 for c in tiny_result.columns):.3f} "
        f"(threshold 0.1); a two-sample KS test on f0 gives p = {p_ks:.1e}"
    )
    if tiny_result.drift or tiny_result.drifted_columns:
        failures.append("0.03 sigma shift at 1M rows called drift")
    del tiny

    # -- linear growth ------------------------------------------------------------------------------------------
    times = {}
    for n in (10_000, 100_000, 1_000_000):
        part = current.iloc[:n].copy()
        times[n] = best_of(lambda part=part: check(profile, part))
    per_row = {n: t / n * 1e9 for n, t in times.items()}
    print(
        "gate time by rows: "
        + ", ".join(f"{n:,}: {t:.3f} s ({per_row[n]:.0f} ns/row)" for n, t in times.items())
        + f"; 1M/100k = {times[1_000_000] / times[100_000]:.1f}x for 10x the rows"
    )
    if times[1_000_000] / times[100_000] > 15:
        failures.append("gate time grows faster than linearly between 100k and 1M rows")

    # -- Evidently, default DataDriftPreset, same data ---------------------------------------------------------------
    if not skip_evidently:
        os.environ.setdefault("DO_NOT_TRACK", "1")
        from evidently import Report
        from evidently.presets import DataDriftPreset

        t0 = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current, reference)
        t_ev = time.perf_counter() - t0
        ev_flags = []
        for metric in snapshot.dict()["metrics"]:
            cfg = metric.get("config") or {}
            if str(cfg.get("type", "")).endswith("ValueDrift") and metric["value"] >= (cfg.get("threshold") or 0.1):
                ev_flags.append(cfg["column"])
        ratio = t_ev / t_gate
        print(
            f"Evidently DataDriftPreset (defaults) on the same 1M rows: {t_ev:.1f} s; flags {sorted(ev_flags)}\n"
            f"RATIO gate vs Evidently: {ratio:.0f}x faster (limit >= 20x); "
            f"including building the profile: {t_ev / (t_gate + t_profile):.0f}x"
        )
        if ratio < 20:
            failures.append(f"gate only {ratio:.1f}x faster than Evidently")

    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("all drift benchmark limits met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
