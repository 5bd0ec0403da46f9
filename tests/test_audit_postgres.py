"""The audit trail on a real PostgreSQL server: locking, constraints, triggers, tampering, killed writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlops_layer import signing
from mlops_layer.audit.checkpoints import Checkpoint, make_checkpoint
from mlops_layer.audit.entry import GENESIS, compute_entry_hash
from mlops_layer.audit.store import CHECKPOINTS, ENTRIES, AuditStore
from mlops_layer.audit.verify import verify_trail

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[1]

WRITER = """
import sys
from mlops_layer.audit.store import AuditStore
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with AuditStore.open(url) as store:
    i = 0
    while count < 0 or i < count:
        e = store.append("test.concurrent", actor=name, details={"writer": name, "i": i})
        sys.stdout.write(f"{e.seq} {e.entry_hash}\\n")
        sys.stdout.flush()
        i += 1
"""


def _writer(url: str, name: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, name, str(count)], stdout=subprocess.PIPE, text=True, env=env
    )


def test_append_read_verify_on_postgres(pg_url: str) -> None:
    t0 = datetime(2025, 5, 1, tzinfo=timezone.utc)
    readings = iter([t0, t0 + timedelta(seconds=1), t0 - timedelta(days=1)])
    with AuditStore.open(pg_url, clock=lambda: next(readings)) as store:
        assert store.dialect == "postgresql" and store.head() == (0, GENESIS)
        a = store.append(
            "model.registered",
            actor="alice",
            subject={"model": "churn", "version": "1"},
            details={"auc": 0.93, "name": "caf\u0065\u0301 \U0001f680"},
        )
        b = store.append("alias.set", actor="bob", subject={"model": "churn", "alias": "champion", "version": "1"})
        c = store.append("alias.set", actor="bob", subject={"model": "churn", "alias": "champion", "version": "1"})
        assert (a.seq, b.seq, c.seq) == (1, 2, 3) and b.prev_hash == a.entry_hash
        assert c.timestamp == b.timestamp and c.clock == t0 - timedelta(days=1)
        assert store.get(1).details == {"auc": "0.93", "name": "caf\u00e9 \U0001f680"}
        assert [e.seq for e in store.entries(model="churn", action="alias.set")] == [2, 3]
        assert store.head() == (3, c.entry_hash)
        assert verify_trail(store).ok
    with AuditStore.open(pg_url.replace("postgresql+psycopg://", "postgresql://")) as again:  # schema already there
        assert again.head()[0] == 3


def test_triggers_refuse_update_delete_truncate(pg_url: str) -> None:
    import sqlalchemy.exc

    with AuditStore.open(pg_url) as store:
        e = store.append("x", actor="a")
        store.add_checkpoint(Checkpoint(1, e.entry_hash, "2025-01-01T00:00:00.000000Z", "unsigned"))
        for stmt in (
            f"UPDATE {ENTRIES} SET action = 'y'",
            f"DELETE FROM {ENTRIES}",
            f"TRUNCATE {ENTRIES}",
            f"UPDATE {CHECKPOINTS} SET size = 0",
            f"DELETE FROM {CHECKPOINTS}",
            f"TRUNCATE {CHECKPOINTS}",
        ):
            with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"), store.raw_connection() as conn:
                conn.exec_driver_sql(stmt)
        assert store.head()[0] == 1


def test_constraints_make_a_fork_impossible(pg_url: str) -> None:
    """Even a writer that skipped the lock cannot fork the chain: PK on seq, UNIQUE prev_hash."""
    import sqlalchemy.exc

    with AuditStore.open(pg_url) as store:
        first = store.append("x", actor="a")
        store.append("x", actor="a")
        body = b'{"action":"x","actor":"z","schema":1,"timestamp":"2025-01-01T00:00:00.000000Z"}'
        prev = bytes.fromhex(first.entry_hash)
        for seq in (2, 3):  # same seq as entry 2, or a second child of entry 1
            h = bytes.fromhex(compute_entry_hash(seq, first.entry_hash, body))
            with pytest.raises(sqlalchemy.exc.IntegrityError), store.raw_connection() as conn:
                conn.exec_driver_sql(
                    f"INSERT INTO {ENTRIES} VALUES (%s, %s, %s, %s, 'x', 'x', NULL)", (seq, prev, h, body)
                )


def test_tampering_by_a_table_owner_is_caught(pg_url: str, tmp_path: Path) -> None:
    """The owner can disable the triggers; verification still finds every change, and the signed checkpoint the
    truncation."""
    key, allowed = tmp_path / "k.pem", tmp_path / "allowed"
    allowed.write_text(signing.allowed_signers_line("auditor", signing.generate_key(key, "a", kind="ed25519")) + "\n")
    with AuditStore.open(pg_url) as store:
        for i in range(8):
            store.append("x", actor="a", details={"i": i})
        size, head = store.head()
        store.add_checkpoint(make_checkpoint(size, head, datetime.now(timezone.utc), key, allowed))
        assert verify_trail(store, allowed_signers=allowed).ok
        with store.raw_connection() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {ENTRIES} DISABLE TRIGGER USER")
            conn.exec_driver_sql(
                f"UPDATE {ENTRIES} SET body = overlay(body placing '\\x41'::bytea from 30 for 1) WHERE seq = 3"
            )
            conn.exec_driver_sql(f"DELETE FROM {ENTRIES} WHERE seq >= 7")
            conn.exec_driver_sql(f"ALTER TABLE {ENTRIES} ENABLE TRIGGER USER")
        report = verify_trail(store, allowed_signers=allowed)
        assert [(p.kind, p.seq) for p in report.problems] == [("content_altered", 3), ("truncated", 8)]


def test_concurrent_writers_make_one_contiguous_chain(pg_url: str) -> None:
    AuditStore.open(pg_url).close()
    procs = [_writer(pg_url, f"w{k}", 60) for k in range(4)]
    acknowledged: dict[int, str] = {}
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        for line in out.splitlines():
            seq, h = line.split()
            assert int(seq) not in acknowledged
            acknowledged[int(seq)] = h
    assert sorted(acknowledged) == list(range(1, 241))
    with AuditStore.open(pg_url) as store:
        assert verify_trail(store).ok
        writers = sorted((e.details["writer"], e.details["i"]) for e in store.entries())
        assert writers == sorted((f"w{k}", i) for k in range(4) for i in range(60))
        assert {seq: eh.hex() for seq, _, eh, _ in store.rows()} == acknowledged


def test_sigkill_writers_on_postgres(pg_url: str) -> None:
    AuditStore.open(pg_url).close()
    acknowledged: dict[int, str] = {}
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        procs = [_writer(pg_url, f"w{k}", -1) for k in range(2)]
        # kill them mid-write, once each has acknowledged a first append (start-up time varies with the load)
        firsts = [p.stdout.readline() if p.stdout is not None else "" for p in procs]
        time.sleep(0.3)
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p, first in zip(procs, firsts, strict=True):
            # read the rest through the same buffered stream readline used (communicate(timeout=...) reads the raw
            # pipe and would skip what readline had already buffered)
            out = p.stdout.read() if p.stdout is not None else ""
            p.wait(timeout=30)
            text = first + out
            # a line cut by the kill was never acknowledged: only whole lines count
            for line in text[: text.rfind("\n") + 1].splitlines():
                seq, h = line.split()
                assert acknowledged.setdefault(int(seq), h) == h
    with AuditStore.open(pg_url) as store:
        assert verify_trail(store).ok
        stored = {seq: eh.hex() for seq, _, eh, _ in store.rows()}
    assert all(stored.get(s) == h for s, h in acknowledged.items())
    assert sorted(stored) == list(range(1, len(stored) + 1)) and stored
