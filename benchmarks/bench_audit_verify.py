"""Benchmark: `verify` of a 1,000,000-entry audit chain stored in SQLite, beside the raw SHA-256 limit.

The chain is generated in-process (canonical bodies from the real body builder, real hashes) and bulk-inserted into
a fresh SQLite trail; then the real verification path (`verify_trail`: read the rows, recompute every hash, check
links, timestamps and a signed checkpoint) is timed. The limit printed beside it is hashlib's SHA-256 over exactly
the bytes verification hashes (domain tag, seq, prev hash, body) already in memory: no database, no Python loop
logic. Target: >= 200,000 entries/s on one core.

Run: .venv/bin/python benchmarks/bench_audit_verify.py [--entries N]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import struct
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from mlops_layer import signing
from mlops_layer.audit import actions
from mlops_layer.audit.checkpoints import make_checkpoint
from mlops_layer.audit.entry import DOMAIN_TAG, GENESIS_DIGEST, build_body
from mlops_layer.audit.store import ENTRIES, AuditStore
from mlops_layer.audit.verify import verify_trail

TARGET = 200_000


def templates() -> list[bytes]:
    """Realistic bodies (registration, decisions, alias moves, drift, monitoring), timestamp left to fill in."""
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    common = {"actor": "alice@example.com", "timestamp": t0}
    bodies = [
        build_body(
            actions.MODEL_REGISTERED,
            subject={"model": "churn-classifier", "version": "17"},
            git_commit="3f2a9c1e5b7d4f60a8e2c9b1d3f5a7c9e1b3d5f7",
            dvc_hashes={"data/raw/customers.csv": "9e107d9d372bb6826bd81d3542a419d6", "data/prepared": "a1b2.dir"},
            run_id="0f8e2d1c3b4a59687766554433221100",
            details={"model_uri": "runs:/0f8e2d1c3b4a59687766554433221100/model", "stage": "train"},
            **common,
        ),
        build_body(
            actions.PROMOTION_DECIDED,
            subject={"model": "churn-classifier", "version": "17", "alias": "champion"},
            decision="allowed",
            reasons=["auc 0.91 >= 0.85", "2 approvals (risk, business)"],
            details={"policy_blob": "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"},
            **common,
        ),
        build_body(
            actions.ALIAS_SET,
            subject={"model": "churn-classifier", "version": "17", "alias": "champion"},
            details={"previous": "16", "via": "promote"},
            **common,
        ),
        build_body(
            actions.DRIFT_CHECKED,
            subject={"model": "churn-classifier", "version": "17"},
            decision="passed",
            details={"share_drifted": 0.125, "columns": 16, "psi_max": 0.08},
            **common,
        ),
    ]
    return [b[:-29] for b in bodies]  # drop '<27-char timestamp>"}'


def build_chain(path: Path, n: int) -> float:
    """Bulk-insert ``n`` chained entries into a fresh trail; returns the seconds it took."""
    AuditStore.open(f"sqlite:///{path}").close()
    heads = templates()
    sha = hashlib.sha256
    pack = struct.Struct(">Q").pack
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    started = time.perf_counter()
    prev = GENESIS_DIGEST
    batch: list[tuple[int, bytes, bytes, bytes, str, str, str]] = []
    for seq in range(1, n + 1):
        sec, us = divmod(seq, 1_000_000)
        minute, sec = divmod(sec, 60)
        ts = f"2025-01-01T00:{minute:02d}:{sec:02d}.{us:06d}Z"
        body = heads[seq % len(heads)] + ts.encode() + b'"}'
        digest = sha(DOMAIN_TAG + pack(seq) + prev + body).digest()
        batch.append((seq, prev, digest, body, ts, "bench", "churn-classifier"))
        prev = digest
        if len(batch) == 50_000:
            con.executemany(f"INSERT INTO {ENTRIES} VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
            batch = []
    con.executemany(f"INSERT INTO {ENTRIES} VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
    con.commit()
    con.close()
    return time.perf_counter() - started


def sha256_limit(path: Path, sample: int) -> tuple[float, float]:
    """Entries/s and MB/s of bare SHA-256 over the exact hashed inputs of ``sample`` stored entries, in memory."""
    pack = struct.Struct(">Q").pack
    con = sqlite3.connect(path)
    rows = con.execute(f"SELECT seq, prev_hash, body FROM {ENTRIES} ORDER BY seq LIMIT ?", (sample,)).fetchall()
    con.close()
    inputs = [DOMAIN_TAG + pack(s) + p + b for s, p, b in rows]
    nbytes = sum(map(len, inputs))
    sha = hashlib.sha256
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for data in inputs:
            sha(data).digest()
        best = min(best, time.perf_counter() - started)
    return len(inputs) / best, nbytes / best / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000, help="chain length (default 1,000,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-verify-") as tmp:
        tmpdir = Path(tmp)
        db = tmpdir / "audit.db"
        gen_s = build_chain(db, args.entries)
        print(f"generated {args.entries:,} entries in {gen_s:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
        key = tmpdir / "key"
        signers = tmpdir / "allowed_signers"
        pub = signing.generate_key(key, "bench", kind="ed25519")
        signers.write_text(signing.allowed_signers_line("auditor@example.com", pub) + "\n")
        with AuditStore.open(f"sqlite:///{db}") as store:
            size, head = store.head()
            cp = make_checkpoint(size, head, datetime.now(timezone.utc), key, signers)
            store.add_checkpoint(cp)
            verify_trail(store, allowed_signers=signers)  # warm the page cache, as a second run would find it
            best = float("inf")
            report = None
            for _ in range(2):
                started = time.perf_counter()
                report = verify_trail(store, allowed_signers=signers)
                best = min(best, time.perf_counter() - started)
        assert report is not None
        if not report.ok or report.size != args.entries or report.anchored != args.entries:
            print(f"FAILED: verify did not confirm the chain: {report.to_dict()['problems'][:3]}")
            return 1
        rate = args.entries / best
        limit, mbps = sha256_limit(db, min(args.entries, 200_000))
        print(f"verify: {args.entries:,} entries in {best:.2f} s = {rate:,.0f} entries/s (one core)")
        print(f"SHA-256 limit (bare hashlib over the same bytes, in memory): {limit:,.0f} entries/s ({mbps:.0f} MB/s)")
        print(
            f"verify / limit = {rate / limit:.0%}; target {TARGET:,} entries/s: {'met' if rate >= TARGET else 'MISSED'}"
        )
        return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
