"""Faults and attacks on the SQLite trail: every tampering is caught and located; killed writers lose nothing."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_layer import signing
from mlops_layer.audit.checkpoints import (
    Checkpoint,
    append_checkpoint_file,
    make_checkpoint,
    read_checkpoint_file,
)
from mlops_layer.audit.entry import compute_entry_hash
from mlops_layer.audit.store import CHECKPOINTS, ENTRIES, AuditStore
from mlops_layer.audit.verify import VerifyReport, verify_rows, verify_trail

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cpkeys")
    auditor, mallory = d / "auditor.pem", d / "mallory.pem"
    signing.generate_key(auditor, "auditor", kind="ed25519")
    signing.generate_key(mallory, "mallory", kind="ed25519")
    allowed = d / "allowed_signers"
    allowed.write_text(signing.allowed_signers_line("auditor@example.com", signing.public_key(auditor)) + "\n")
    return {"auditor": auditor, "mallory": mallory, "allowed": allowed}


class Trail:
    """A SQLite trail with n entries, its checkpoint file, and raw SQL access that bypasses the triggers."""

    def __init__(self, tmp: Path, keys: dict[str, Path], n: int) -> None:
        self.db = tmp / "audit.db"
        self.cp_file = tmp / "checkpoints.jsonl"
        self.keys = keys
        self.store = AuditStore.open(f"sqlite:///{self.db}")
        for i in range(n):
            self.store.append(
                "model.registered", actor=f"user{i % 3}", subject={"model": "churn", "version": str(i + 1)}
            )

    def checkpoint(self, *, key: str = "auditor", to_file: bool = True, in_db: bool = True) -> Checkpoint:
        size, head = self.store.head()
        cp = make_checkpoint(size, head, datetime.now(timezone.utc), self.keys[key], self.keys["allowed"])
        if in_db:
            self.store.add_checkpoint(cp)
        if to_file:
            append_checkpoint_file(self.cp_file, cp)
        return cp

    def sql(self, *statements: str, params: tuple[object, ...] = ()) -> None:
        con = sqlite3.connect(self.db)
        for table in (ENTRIES, CHECKPOINTS):
            for op in ("update", "delete"):
                con.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        for stmt in statements:
            con.execute(stmt, params) if "?" in stmt else con.execute(stmt)
        con.commit()
        con.close()

    def row(self, seq: int) -> tuple[bytes, bytes, bytes]:
        con = sqlite3.connect(self.db)
        r = con.execute(f"SELECT prev_hash, entry_hash, body FROM {ENTRIES} WHERE seq = ?", (seq,)).fetchone()
        con.close()
        return bytes(r[0]), bytes(r[1]), bytes(r[2])

    def verify(self) -> VerifyReport:
        return verify_trail(self.store, checkpoint_file=self.cp_file, allowed_signers=self.keys["allowed"])


@pytest.fixture
def trail(tmp_path: Path, keys: dict[str, Path]) -> Trail:
    t = Trail(tmp_path, keys, 12)
    yield t
    t.store.close()


def kinds(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in report.problems]


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_intact_trail_verifies_with_checkpoint(trail: Trail) -> None:
    trail.checkpoint()
    report = trail.verify()
    assert report.ok, report.problems
    assert report.size == 12 and report.anchored == 12 and report.unanchored == 0
    assert [c.signer for c in report.checkpoints] == ["auditor@example.com"]  # db + file copy merged


def test_triggers_refuse_update_and_delete(trail: Trail) -> None:
    con = sqlite3.connect(trail.db)
    for stmt in (
        f"UPDATE {ENTRIES} SET action = 'x'",
        f"DELETE FROM {ENTRIES} WHERE seq = 3",
        f"DELETE FROM {ENTRIES}",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(stmt)
    con.close()


@pytest.mark.parametrize("where", ["start", "middle", "timestamp", "end"])
def test_flip_a_byte_in_a_body(trail: Trail, where: str) -> None:
    _, _, body = trail.row(5)
    index = {"start": 0, "middle": len(body) // 2, "timestamp": len(body) - 5, "end": len(body) - 1}[where]
    trail.sql(f"UPDATE {ENTRIES} SET body = ? WHERE seq = 5", params=(_flip(body, index),))
    report = trail.verify()
    assert not report.ok
    assert kinds(report)[0] == ("content_altered", 5)
    assert all(seq == 5 for _, seq in kinds(report))
    assert "entry 5" in report.problems[0].message


def test_flip_a_byte_in_prev_hash(trail: Trail) -> None:
    prev, _, _ = trail.row(7)
    trail.sql(f"UPDATE {ENTRIES} SET prev_hash = ? WHERE seq = 7", params=(_flip(prev, 10),))
    assert kinds(trail.verify()) == [("prev_hash_altered", 7)]


def test_flip_a_byte_in_entry_hash(trail: Trail) -> None:
    _, eh, _ = trail.row(7)
    trail.sql(f"UPDATE {ENTRIES} SET entry_hash = ? WHERE seq = 7", params=(_flip(eh, 31),))
    assert kinds(trail.verify()) == [("entry_hash_altered", 7)]


def test_flip_the_last_entry_hash(trail: Trail) -> None:
    _, eh, _ = trail.row(12)
    trail.sql(f"UPDATE {ENTRIES} SET entry_hash = ? WHERE seq = 12", params=(_flip(eh, 0),))
    assert kinds(trail.verify()) == [("content_altered", 12)]


def test_delete_an_entry(trail: Trail) -> None:
    trail.sql(f"DELETE FROM {ENTRIES} WHERE seq = 4")
    report = trail.verify()
    assert kinds(report) == [("missing", 4)]
    assert "entry 4 is missing" in report.problems[0].message


def test_swap_two_bodies(trail: Trail) -> None:
    _, _, b3 = trail.row(3)
    _, _, b8 = trail.row(8)
    trail.sql(f"UPDATE {ENTRIES} SET body = CASE seq WHEN 3 THEN ? ELSE ? END WHERE seq IN (3, 8)", params=(b8, b3))
    assert kinds(trail.verify()) == [("content_altered", 3), ("content_altered", 8)]


def test_swap_two_whole_entries(trail: Trail) -> None:
    trail.sql(
        f"UPDATE {ENTRIES} SET seq = -1 WHERE seq = 3",
        f"UPDATE {ENTRIES} SET seq = 3 WHERE seq = 8",
        f"UPDATE {ENTRIES} SET seq = 8 WHERE seq = -1",
    )
    report = trail.verify()
    assert not report.ok
    assert {seq for _, seq in kinds(report)} >= {3, 4, 8, 9}


def test_insert_an_entry(trail: Trail) -> None:
    """A forged entry slipped in after 6 and linked to 6: the UNIQUE prev_hash refuses the fork outright; relinking
    the successor as well (renumbering everything after) breaks every moved entry's hash."""
    _, eh6, body6 = trail.row(6)
    forged = body6.replace(b"user", b"evil")
    h = bytes.fromhex(compute_entry_hash(7, eh6.hex(), forged))
    trail.sql(
        f"UPDATE {ENTRIES} SET seq = seq + 1000 WHERE seq > 6",
        f"UPDATE {ENTRIES} SET seq = seq - 999 WHERE seq > 1000",
    )
    insert = f"INSERT INTO {ENTRIES} VALUES (7, ?, ?, ?, 'x', 'model.registered', 'churn')"
    con = sqlite3.connect(trail.db)
    with pytest.raises(sqlite3.IntegrityError, match="prev_hash"):
        con.execute(insert, (eh6, h, forged))  # a second child of entry 6: a fork
    con.execute(f"UPDATE {ENTRIES} SET prev_hash = ? WHERE seq = 8", (h,))
    con.execute(insert, (eh6, h, forged))
    con.commit()
    con.close()
    report = trail.verify()
    assert not report.ok
    assert [seq for _, seq in kinds(report)] == list(range(8, 14))  # every renumbered entry
    assert kinds(report)[0] == ("content_altered", 8)


def test_truncate_below_the_last_checkpoint(trail: Trail) -> None:
    trail.checkpoint()
    trail.sql(f"DELETE FROM {ENTRIES} WHERE seq > 9")
    report = trail.verify()
    assert not report.ok
    assert {k for k, _ in kinds(report)} == {"truncated"}
    assert "entries 10..12 were removed" in report.problems[0].message


def test_truncate_above_the_last_checkpoint(trail: Trail) -> None:
    """Entries after the last checkpoint are exposed until the next one: the report says how many are uncovered,
    and the next checkpoint (in git) catches a truncation of everything it covered."""
    trail.checkpoint()  # size 12
    for i in range(3):
        trail.store.append("alias.set", actor="a", subject={"model": "churn", "alias": "champion", "version": str(i)})
    trail.sql(f"DELETE FROM {ENTRIES} WHERE seq > 13")  # remove 14, 15 (after the checkpoint)
    report = trail.verify()
    assert report.ok and report.anchored == 12 and report.unanchored == 1
    assert any("1 entries after the last valid checkpoint" in w for w in report.warnings)
    # had a checkpoint been taken at 15, the same truncation is caught
    ghost = Trail.__new__(Trail)
    ghost.__dict__.update(trail.__dict__)
    size, head = 15, "ab" * 32
    cp = make_checkpoint(size, head, datetime.now(timezone.utc), trail.keys["auditor"], trail.keys["allowed"])
    append_checkpoint_file(trail.cp_file, cp)
    assert ("truncated", 15) in kinds(trail.verify())


def test_consistent_rewrite_is_caught_by_the_signed_checkpoint(trail: Trail) -> None:
    """The attacker rewrites entry 3 and recomputes every later hash, and deletes the database checkpoints."""
    trail.checkpoint()
    rows = list(trail.store.rows())
    new_rows = []
    prev = rows[0][1]
    for seq, _, _, body in rows:
        if seq == 3:
            body = body.replace(b'"user2"', b'"user0"')
        h = bytes.fromhex(compute_entry_hash(seq, prev.hex(), body))
        new_rows.append((prev, h, body, seq))
        prev = h
    trail.sql(f"DELETE FROM {CHECKPOINTS}")
    con = sqlite3.connect(trail.db)
    con.executemany(f"UPDATE {ENTRIES} SET prev_hash = ?, entry_hash = ?, body = ? WHERE seq = ?", new_rows)
    con.commit()
    con.close()
    scan_only = verify_rows(trail.store.rows())
    assert scan_only.ok  # the chain itself is consistent again...
    report = trail.verify()
    assert kinds(report) == [("checkpoint_mismatch", 12)]  # ...but not with what was signed and kept in git
    assert "rewritten" in report.problems[0].message


def test_checkpoint_with_a_bad_signature(trail: Trail) -> None:
    cp = trail.checkpoint(to_file=False, in_db=False)
    other = make_checkpoint(5, trail.store.get(5).entry_hash, datetime.now(timezone.utc), trail.keys["auditor"], None)
    forged = Checkpoint(cp.size, cp.head, cp.time, other.signature)  # a real signature, of something else
    append_checkpoint_file(trail.cp_file, forged)
    report = trail.verify()
    assert [k for k, _ in kinds(report)] == ["checkpoint_bad_signature"]
    assert "does not match the data" in report.problems[0].message


def test_checkpoint_signed_by_an_unknown_key(trail: Trail) -> None:
    trail.checkpoint(key="mallory")
    report = trail.verify()
    assert not report.ok
    assert {k for k, _ in kinds(report)} == {"checkpoint_untrusted"}
    assert "is not in" in report.problems[0].message


def test_checkpoints_without_allowed_signers_cannot_pass(trail: Trail, tmp_path: Path) -> None:
    trail.checkpoint()
    report = verify_trail(trail.store, checkpoint_file=trail.cp_file, allowed_signers=tmp_path / "none")
    assert not report.ok and {k for k, _ in kinds(report)} == {"checkpoint_unverifiable"}


def test_database_rolled_back_to_an_older_copy(trail: Trail, tmp_path: Path) -> None:
    trail.checkpoint()  # size 12, in db and file
    backup = tmp_path / "backup.db"
    with sqlite3.connect(trail.db) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    for i in range(5):
        trail.store.append("alias.set", actor="a", subject={"model": "churn", "alias": "champion", "version": str(i)})
    trail.checkpoint()  # size 18 (17 + the entries), kept in git's checkpoint file
    trail.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{trail.db}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, trail.db)
    trail.store = AuditStore.open(f"sqlite:///{trail.db}")
    report = trail.verify()
    assert report.size == 12
    assert kinds(report) == [("truncated", 17)]
    assert "restored from an older copy" in report.problems[0].message


def test_a_garbled_checkpoint_file_line_is_a_problem(trail: Trail) -> None:
    trail.checkpoint()
    with trail.cp_file.open("a") as fh:
        fh.write('{"size": "twelve"}\n')
    parsed = read_checkpoint_file(trail.cp_file)
    assert len(parsed.checkpoints) == 1 and "line 2" in parsed.errors[0]
    assert [k for k, _ in kinds(trail.verify())] == ["checkpoint_file"]


def test_timestamp_moved_backwards_by_a_consistent_rewrite(trail: Trail) -> None:
    _, _, body = trail.row(6)
    old = body[-29:-2]
    new_body = body[:-29] + b"2000" + old[4:] + b'"}'
    rows = list(trail.store.rows())
    prev = bytes(32)
    updates = []
    for seq, _, _, b in rows:
        b = new_body if seq == 6 else b
        h = bytes.fromhex(compute_entry_hash(seq, prev.hex(), b))
        updates.append((prev, h, b, seq))
        prev = h
    trail.sql()
    con = sqlite3.connect(trail.db)
    con.executemany(f"UPDATE {ENTRIES} SET prev_hash = ?, entry_hash = ?, body = ? WHERE seq = ?", updates)
    con.commit()
    con.close()
    assert kinds(trail.verify()) == [("timestamp_backwards", 6)]


def test_deep_verify_catches_a_tampered_query_column(trail: Trail) -> None:
    trail.sql(f"UPDATE {ENTRIES} SET model = 'other' WHERE seq = 2")
    assert trail.verify().ok  # the hashed chain is intact...
    deep = verify_trail(trail.store, checkpoint_file=trail.cp_file, allowed_signers=trail.keys["allowed"], deep=True)
    assert kinds(deep) == [("index_mismatch", 2)]  # ...but a filter could have hidden entry 2
    assert [e.seq for e in trail.store.entries(model="other")] == []  # and it is never forged into a view


WRITER = """
import sys
from mlops_layer.audit.store import AuditStore
store = AuditStore.open(sys.argv[1])
i = 0
while True:
    e = store.append("test.kill", actor=sys.argv[2], details={"i": i, "pad": "x" * 200})
    sys.stdout.write(f"{e.seq} {e.entry_hash}\\n")
    sys.stdout.flush()
    i += 1
"""


def test_sigkill_writers_in_a_loop_lose_no_acknowledged_entry(tmp_path: Path) -> None:
    """Three writers appending concurrently are SIGKILLed at random moments, round after round (~10 s)."""
    url = f"sqlite:///{tmp_path}/audit.db"
    AuditStore.open(url).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    acknowledged: dict[int, str] = {}
    rng = random.Random(1234)
    deadline = time.monotonic() + 10
    rounds = 0
    while time.monotonic() < deadline:
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, url, f"w{k}"], stdout=subprocess.PIPE, env=env, text=True)
            for k in range(3)
        ]
        # start-up takes 1-2 s or far more on a loaded machine: count from the first acknowledged append, then kill
        # at a random moment (the other writers may still be starting, mid-append or between appends)
        first = procs[0].stdout.readline() if procs[0].stdout is not None else ""
        time.sleep(rng.uniform(0.0, 1.0))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for k, p in enumerate(procs):
            # the rest through the same buffered stream readline used (communicate(timeout=...) reads the raw pipe)
            out = p.stdout.read() if p.stdout is not None else ""
            p.wait(timeout=30)
            assert p.returncode == -signal.SIGKILL
            text = (first if k == 0 else "") + out
            for line in text[: text.rfind("\n") + 1].splitlines():  # a line cut by the kill was never acknowledged
                seq, h = line.split()
                assert acknowledged.setdefault(int(seq), h) == h, f"seq {seq} acknowledged twice"
        rounds += 1
    assert rounds >= 3 and len(acknowledged) > 0
    with AuditStore.open(url) as store:
        report = verify_trail(store)
        assert report.ok, report.problems
        stored = {seq: eh.hex() for seq, _, eh, _ in store.rows()}
    lost = {s: h for s, h in acknowledged.items() if stored.get(s) != h}
    assert not lost, f"acknowledged entries lost or changed: {sorted(lost)[:5]}"
    assert sorted(stored) == list(range(1, len(stored) + 1))


# ------------------------------------------------------------------------------------------------ property test

TAMPERS = ("body", "prev", "entry", "delete", "swap", "truncate", "none")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(min_size=0, max_size=12), min_size=2, max_size=12),
    tamper=st.sampled_from(TAMPERS),
    data=st.data(),
)
def test_property_append_tamper_verify(
    keys: dict[str, Path], texts: list[str], tamper: str, data: st.DataObject
) -> None:
    """Any single tampering of a checkpointed trail is detected; an untouched one always verifies."""
    with AuditStore.open("sqlite://") as store:
        for i, text in enumerate(texts):
            store.append(
                "prop.test", actor=f"user-{text}", subject={"model": text or None}, details={"t": text, "i": i}
            )
        size, head = store.head()
        cp = make_checkpoint(size, head, datetime.now(timezone.utc), keys["auditor"], keys["allowed"])
        rows = list(store.rows())
    n = len(rows)
    k = data.draw(st.integers(0, n - 1), label="index")
    if tamper == "body":
        seq, ph, eh, body = rows[k]
        pos = data.draw(st.integers(0, len(body) - 1), label="byte")
        rows[k] = (seq, ph, eh, _flip(body, pos))
    elif tamper in ("prev", "entry"):
        seq, ph, eh, body = rows[k]
        pos = data.draw(st.integers(0, 31), label="byte")
        rows[k] = (seq, _flip(ph, pos), eh, body) if tamper == "prev" else (seq, ph, _flip(eh, pos), body)
    elif tamper == "delete":
        del rows[k]
    elif tamper == "swap":
        j = data.draw(st.integers(0, n - 1).filter(lambda x: x != k), label="other")
        rows[k], rows[j] = rows[j], rows[k]
    elif tamper == "truncate":
        rows = rows[:k]
    report = verify_rows(rows, checkpoints=[cp], allowed_signers=keys["allowed"])
    assert report.ok == (tamper == "none"), (tamper, k, report.problems)
