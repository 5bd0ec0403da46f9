"""Drift beyond one machine's memory: the in-memory gate, streaming and Spark local on 10M / 100M rows x 10 columns.

For each size, a Parquet folder (1M-row files, 10 float64 columns, f0 f2 f4 f6 f8 shifted by +0.5 sigma) is generated
in chunks under --workdir (kept between runs, never committed); the reference profile comes from 1M unshifted rows.
Each engine runs in its own subprocess, its whole process tree (Spark's JVM and Python workers included) sampled for
resident memory; a tree that passes --limit-gib is killed and recorded as "did not fit" instead of taking the run
down. Evidently's DataDriftPreset runs on 1M rows (what it can finish) for the ratio, in the same run.

Limits checked: every engine that finishes flags exactly the shifted columns; streaming's peak memory stays under
1 GiB and does not grow with the rows (100M vs 10M: within 1.5x).

Run: .venv/bin/python benchmarks/bench_drift_scale.py --rows 10000000,100000000 --workdir /tmp/drift_scale
     (default --rows 10000000; add --skip-spark / --skip-evidently to leave those out)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

COLS = 10
SHIFTED = [f"f{i}" for i in range(0, COLS, 2)]
FILE_ROWS = 1_000_000
GIB = 2**30


# -- data ----------------------------------------------------------------------------------------------------------
def make(n: int, seed: int, shift: float) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"f{i}": rng.standard_normal(n) + (shift if f"f{i}" in SHIFTED else 0.0) for i in range(COLS)}
    return pd.DataFrame(data)


def generate(folder: Path, rows: int) -> float:
    """Write ``rows`` rows as 1M-row Parquet files (one chunk in memory at a time); reuse a complete folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = folder / "_COMPLETE"
    if marker.exists() and marker.read_text() == str(rows):
        return 0.0
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    t0 = time.perf_counter()
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        table = pa.Table.from_pandas(make(n, 1000 + i, 0.5), preserve_index=False)
        pq.write_table(table, folder / f"part-{i:05d}.parquet", row_group_size=FILE_ROWS)
    marker.write_text(str(rows))
    return time.perf_counter() - t0


# -- one engine, in a child process ----------------------------------------------------------------------------------
def child(engine: str, data: str, profile_path: str) -> int:
    from mlops_layer.drift.profile import ReferenceProfile

    profile = ReferenceProfile.from_json(Path(profile_path).read_text())
    out: dict[str, Any] = {"engine": engine}
    t0 = time.perf_counter()
    if engine == "memory":
        import pandas as pd

        from mlops_layer.drift.gate import check

        frame = pd.read_parquet(data)
        out["read_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = check(profile, frame)
        out["check_s"] = time.perf_counter() - t1
    elif engine == "stream":
        from mlops_layer.drift.aggregate import check_parquet

        result = check_parquet(profile, data)
    elif engine == "spark":
        from mlops_layer.adapters import spark as spark_adapter

        session = spark_adapter.session(os.environ.get("BENCH_SPARK_MASTER", "local[2]"))
        out["startup_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = spark_adapter.check(profile, data, spark=session)
        out["check_s"] = time.perf_counter() - t1
    else:
        raise SystemExit(f"unknown engine {engine}")
    out["total_s"] = time.perf_counter() - t0
    out["drifted"] = list(result.drifted_columns)
    out["max_bound"] = max((c.bound or 0.0) for c in result.columns)
    out["near_threshold"] = list(result.near_threshold)
    out["n_rows"] = result.n_current
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def run_engine(engine: str, data: Path, profile_path: Path, limit: int, timeout: float) -> dict[str, Any]:
    """Run one engine in a subprocess; sample its process tree's RSS every 0.1 s; kill it past ``limit`` bytes."""
    import psutil

    cmd = [sys.executable, __file__, "--child", engine, str(data), str(profile_path)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    peak = 0
    killed = None
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        elapsed = time.perf_counter() - t0
        if peak > limit or elapsed > timeout:
            killed = f"RSS over {limit / GIB:.0f} GiB" if peak > limit else f"over {timeout:.0f} s"
            for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            break
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"engine": engine, "wall_s": wall, "peak_rss": peak}
    if killed:
        row["status"] = f"did not fit ({killed})"
        return row
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        row["status"] = f"failed (exit {proc.returncode}: {tail[:160]})"
        return row
    row.update(json.loads(lines[-1][len("RESULT ") :]))
    row["status"] = "ok"
    return row


def evidently_child(rows: int, profile_path: str) -> int:
    """Evidently's DataDriftPreset (defaults) and the in-memory gate on the same ``rows`` rows, in one process."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import Report
    from evidently.presets import DataDriftPreset

    from mlops_layer.drift.gate import check
    from mlops_layer.drift.profile import ReferenceProfile

    profile = ReferenceProfile.from_json(Path(profile_path).read_text())
    reference, current = make(rows, 1, 0.0), make(rows, 2, 0.5)
    t0 = time.perf_counter()
    gate = check(profile, current)
    t_gate = time.perf_counter() - t0
    t0 = time.perf_counter()
    Report([DataDriftPreset()]).run(current, reference)
    t_ev = time.perf_counter() - t0
    print(
        "RESULT "
        + json.dumps({"rows": rows, "evidently_s": t_ev, "gate_s": t_gate, "gate": list(gate.drifted_columns)})
    )
    return 0


# -- the run -----------------------------------------------------------------------------------------------------------
def fmt_row(n: int, r: dict[str, Any]) -> str:
    mem = f"{r['peak_rss'] / GIB:.2f} GiB"
    if r["status"] != "ok":
        return f"  {n:>12,} rows  {r['engine']:<7} {r['status']}; peak RSS before that {mem}, {r['wall_s']:.1f} s"
    extra = ", ".join(f"{k} {r[k]:.1f} s" for k in ("read_s", "check_s", "startup_s") if k in r)
    rate = r["total_s"] / (n / 1e6)
    return (
        f"  {n:>12,} rows  {r['engine']:<7} {r['total_s']:8.1f} s ({rate:.2f} s per 1M rows; {extra}) "
        f"peak RSS {mem}; flags {r['drifted']}; max bound {r['max_bound']:.1e}"
    )


def main() -> int:
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        return child(sys.argv[i + 1], sys.argv[i + 2], sys.argv[i + 3])
    if "--evidently-child" in sys.argv:
        i = sys.argv.index("--evidently-child")
        return evidently_child(int(sys.argv[i + 1]), sys.argv[i + 2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000000", help="comma-separated batch sizes")
    parser.add_argument("--workdir", default="/tmp/drift_scale", help="where the Parquet data goes (kept)")
    parser.add_argument("--limit-gib", type=float, default=12.0, help="memory limit of each engine's process tree")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before an engine is stopped")
    parser.add_argument("--engines", default="memory,stream,spark")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--evidently-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    engines = [e for e in args.engines.split(",") if not (args.skip_spark and e == "spark")]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    limit = int(args.limit_gib * GIB)
    failures: list[str] = []

    from mlops_layer.drift.profile import build_profile

    profile_path = work / "profile.json"
    profile_path.write_text(build_profile(make(1_000_000, 1, 0.0)).to_json())
    print(
        f"data: {COLS} float64 columns, {', '.join(SHIFTED)} shifted by +0.5 sigma; Parquet files of {FILE_ROWS:,} "
        f"rows under {work}; reference profile from 1,000,000 rows; memory limit {args.limit_gib:g} GiB per engine; "
        f"{os.cpu_count()} cores (shared)",
        flush=True,
    )
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for n in sizes:
        folder = work / f"rows_{n}"
        took = generate(folder, n)
        size = sum(f.stat().st_size for f in folder.glob("part-*.parquet"))
        print(
            f"{n:,} rows: {size / GIB:.2f} GiB of Parquet ({f'generated in {took:.0f} s' if took else 'reused'})",
            flush=True,
        )
        results[n] = {}
        for engine in engines:
            row = run_engine(engine, folder, profile_path, limit, args.timeout)
            results[n][engine] = row
            print(fmt_row(n, row), flush=True)
            if row["status"] == "ok" and row["drifted"] != SHIFTED:
                failures.append(f"{engine} at {n:,} rows flagged {row['drifted']}")
    stream = [results[n]["stream"] for n in sizes if results[n].get("stream", {}).get("status") == "ok"]
    for row in stream:
        if row["peak_rss"] > GIB:
            failures.append(f"streaming peak RSS {row['peak_rss'] / GIB:.2f} GiB over 1 GiB")
    if len(stream) >= 2:
        growth = stream[-1]["peak_rss"] / stream[0]["peak_rss"]
        print(f"streaming peak RSS, largest vs smallest batch: {growth:.2f}x for {sizes[-1] / sizes[0]:.0f}x the rows")
        if growth > 1.5:
            failures.append(f"streaming memory grew {growth:.2f}x with the rows")
    if not args.skip_evidently:
        cmd = [sys.executable, __file__, "--evidently-child", str(args.evidently_rows), str(profile_path)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if not lines:
            failures.append("Evidently run failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:200])
        else:
            ev = json.loads(lines[-1][len("RESULT ") :])
            per_m = ev["evidently_s"] / (ev["rows"] / 1e6)
            print(
                f"Evidently DataDriftPreset on {ev['rows']:,} rows (in memory, defaults): {ev['evidently_s']:.1f} s = "
                f"{per_m:.1f} s per 1M rows; the in-memory gate on the same rows {ev['gate_s']:.2f} s "
                f"({ev['evidently_s'] / ev['gate_s']:.0f}x)"
            )
            for n in sizes:
                for engine, row in results[n].items():
                    if row["status"] == "ok":
                        rate = row["total_s"] / (n / 1e6)
                        print(f"  RATIO {engine} at {n:,} rows vs Evidently per 1M rows: {per_m / rate:.0f}x faster")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("all drift scale limits met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
