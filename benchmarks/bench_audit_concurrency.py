"""Benchmark: 8 processes appending 500 audit entries each, concurrently, on SQLite and on PostgreSQL.

Checks what matters before printing any speed: contiguous sequence numbers 1..4000, one chain that verifies, every
acknowledged (seq, hash) stored unchanged, 500 entries per writer. Prints the concurrent throughput beside the
baseline measured in the same run: one process appending alone on the same backend.

SQLite runs WAL + synchronous=FULL (every append fsyncs); PostgreSQL is a throwaway 15 cluster with fsync on (or the
server in MLOPS_BENCH_PG_URL).

Run: .venv/bin/python benchmarks/bench_audit_concurrency.py [--writers 8] [--appends 500] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the throwaway PostgreSQL cluster helper lives with the test fixtures


def writer(url: str, name: str, count: int, ready: Any, go: Any, results: Any) -> None:
    from mlops_layer.audit.store import AuditStore

    acked: list[tuple[int, str]] = []
    with AuditStore.open(url) as store:
        store.head()  # connect before the start signal
        ready.put(name)
        go.wait()
        for i in range(count):
            e = store.append(
                "bench.concurrent",
                actor=name,
                subject={"model": "churn", "version": str(i % 7 + 1)},
                details={"writer": name, "i": i, "auc": 0.9},
            )
            acked.append((e.seq, e.entry_hash))
    results.put((name, acked))


def run(url: str, writers: int, appends: int) -> tuple[float, dict[str, list[tuple[int, str]]]]:
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=writer, args=(url, f"w{k}", appends, ready, go, results)) for k in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    started = time.perf_counter()
    go.set()
    acked = dict(results.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise SystemExit(f"writer {p.name} exited with {p.exitcode}")
    return elapsed, acked


def check(url: str, writers: int, appends: int, acked: dict[str, list[tuple[int, str]]]) -> list[str]:
    from mlops_layer.audit.store import AuditStore
    from mlops_layer.audit.verify import verify_trail

    problems: list[str] = []
    total = writers * appends
    with AuditStore.open(url) as store:
        report = verify_trail(store)
        stored = {seq: eh.hex() for seq, _, eh, _ in store.rows()}
        per_writer: dict[str, int] = {}
        for e in store.entries():
            per_writer[e.actor] = per_writer.get(e.actor, 0) + 1
    if not report.ok:
        problems.append(f"chain does not verify: {[p.message for p in report.problems[:3]]}")
    if sorted(stored) != list(range(1, total + 1)):
        problems.append(f"sequence numbers not contiguous 1..{total}: {len(stored)} rows")
    lost = [(s, h) for entries in acked.values() for s, h in entries if stored.get(s) != h]
    if lost:
        problems.append(f"{len(lost)} acknowledged entries lost or changed")
    if any(n != appends for n in per_writer.values()) or len(per_writer) != writers:
        problems.append(f"entries per writer: {per_writer}")
    return problems


def bench(backend: str, url_for: Any, writers: int, appends: int) -> bool:
    single_url = url_for("single")
    single_s, _ = run(single_url, 1, appends)
    url = url_for("concurrent")
    elapsed, acked = run(url, writers, appends)
    problems = check(url, writers, appends, acked)
    total = writers * appends
    base = appends / single_s
    rate = total / elapsed
    status = f"OK: contiguous 1..{total}, one chain, 0 lost" if not problems else "FAILED: " + "; ".join(problems)
    print(
        f"{backend}: {writers} writers x {appends} appends = {total} entries in {elapsed:.2f} s -> {rate:,.0f} appends/s"
    )
    print(f"{backend}: baseline 1 writer x {appends}: {base:,.0f} appends/s; concurrent/baseline = {rate / base:.2f}x")
    print(f"{backend}: {status}")
    return not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer processes (default 8)")
    parser.add_argument("--appends", type=int, default=500, help="appends per writer (default 500)")
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="run one backend only")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs")
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-audit-conc-") as tmp:
        if args.only in (None, "sqlite"):
            ok &= bench("sqlite", lambda n: f"sqlite:///{tmp}/{n}.db", args.writers, args.appends)
        if args.only in (None, "postgres"):
            from pg_fixtures import ThrowawayPostgres, create_database

            existing = os.environ.get("MLOPS_BENCH_PG_URL")
            server = None
            if existing:
                server_url = existing
            else:
                server = ThrowawayPostgres(fsync=True)
                server_url = server.start()
            try:
                ok &= bench("postgresql", lambda n: create_database(server_url), args.writers, args.appends)
            finally:
                if server is not None:
                    server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
