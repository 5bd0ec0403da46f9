"""Offline verification of the trail: recompute every hash, follow every link, check every signed checkpoint.

Verification needs only the stored rows (or an export), the checkpoints (database and the checkpoint file in git)
and ``allowed_signers``. It never trusts a stored hash it can recompute, never re-serialises a body, and lists every
problem with the entry it concerns instead of stopping at the first.
"""

from __future__ import annotations

import gc
import hashlib
import json
import struct
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.audit.checkpoints import Checkpoint, CheckpointFile, verify_signature
from mlops_layer.audit.entry import (
    BODY_KEYS,
    DOMAIN_TAG,
    GENESIS,
    GENESIS_DIGEST,
    SCHEMA_VERSION,
    TIMESTAMP_KEY,
    canonical_bytes,
    entry_digest,
)

# (seq, prev_hash, entry_hash, body) with the hashes as 32 raw bytes
if TYPE_CHECKING:
    from mlops_layer.audit.store import AuditStore

Row = tuple[int, bytes, bytes, bytes]


@dataclass(frozen=True)
class Problem:
    """One thing that broke: which entry (or checkpoint), what kind, and a sentence for people."""

    kind: str
    message: str
    seq: int | None = None
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "checkpoint": self.checkpoint, "message": self.message}


@dataclass(frozen=True)
class CheckpointResult:
    """How one checkpoint fared: who signed it (when the signature verifies) and whether the chain matches it."""

    checkpoint: Checkpoint
    signer: str | None
    ok: bool
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "source": cp.source,
            "size": cp.size,
            "head": cp.head,
            "time": cp.time,
            "signer": self.signer,
            "ok": self.ok,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``mlops audit verify``: intact or not, and every problem found."""

    ok: bool
    size: int
    head: str
    problems: tuple[Problem, ...]
    checkpoints: tuple[CheckpointResult, ...] = ()
    anchored: int = 0
    warnings: tuple[str, ...] = ()
    source: str = ""
    deep: bool = False
    elapsed_s: float = 0.0

    @property
    def unanchored(self) -> int:
        """Entries after the newest valid checkpoint: their removal could only be caught by a later checkpoint."""
        return max(self.size - self.anchored, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "size": self.size,
            "head": self.head,
            "anchored": self.anchored,
            "unanchored": self.unanchored,
            "deep": self.deep,
            "problems": [p.to_dict() for p in self.problems],
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "warnings": list(self.warnings),
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass
class ChainScan:
    """What one pass over the rows found (raw facts; :func:`explain` turns them into problems)."""

    size: int = 0
    head: str = GENESIS
    hashes_at: dict[int, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def scan_chain(rows: Iterable[Row], watch: Iterable[int] = ()) -> ChainScan:
    """Walk the rows in order; record the entry hash at each seq in ``watch`` (checkpoint sizes).

    The loop does only what integrity needs (one SHA-256, two comparisons, a timestamp slice) and leaves explaining a
    mismatch to :func:`_explain`, which only looks at the rows that broke.
    """
    sha256 = hashlib.sha256
    pack = struct.Struct(">Q").pack
    tag = DOMAIN_TAG
    ts_key = TIMESTAMP_KEY
    watched = frozenset(watch)
    hashes_at: dict[int, str] = {}
    expected = 1
    prev = GENESIS_DIGEST
    prev_ts = b""
    flags: list[tuple[str, int, Any]] = []
    watch_next = -1
    next_prev_of: dict[int, bytes] = {}
    for seq, ph, eh, body in rows:
        if seq == watch_next:
            next_prev_of[seq - 1] = ph
        if seq != expected:
            flags.append(("gap", seq, expected))
        if ph != prev:
            flags.append(("link", seq, (ph, prev)))
        try:
            calc = sha256(tag + pack(seq) + ph + body).digest()
        except (TypeError, struct.error):
            # a value stored with another type (SQLite lets a BLOB become TEXT): judge its bytes, not its type
            seq, ph, eh, body = _coerce(seq, ph, eh, body)
            calc = _digest_or_none(seq, ph, body) or b""
        if calc != eh:
            # an entry that fails its own hash says nothing trustworthy about time: keep it out of the order check
            flags.append(("self", seq, (ph, eh, calc, prev, body)))
            watch_next = seq + 1
        elif body.startswith(ts_key, -42):
            ts = body[-29:-2]
            if ts < prev_ts:
                flags.append(("ts", seq, (ts, prev_ts)))
            else:
                prev_ts = ts
        else:
            flags.append(("nots", seq, None))
        if seq in watched:
            hashes_at[seq] = eh.hex()
        prev = eh
        expected = seq + 1
    size = expected - 1
    scan = ChainScan(size=size, head=prev.hex() if size else GENESIS, hashes_at=hashes_at)
    scan.problems = _explain(flags, next_prev_of)
    return scan


def _coerce(seq: Any, ph: Any, eh: Any, body: Any) -> Row:
    def as_bytes(value: Any) -> bytes:
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
        return bytes(value) if value is not None else b""

    return int(seq), as_bytes(ph), as_bytes(eh), as_bytes(body)


def _explain(flags: list[tuple[str, int, Any]], next_prev_of: dict[int, bytes]) -> list[Problem]:
    problems: list[Problem] = []
    explained_links: set[int] = set()
    gaps = {seq for kind, seq, _ in flags if kind == "gap"}
    for kind, seq, data in flags:
        if kind == "gap":
            expected = int(data)
            if seq > expected:
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                problems.append(
                    Problem(
                        "missing",
                        f"entry {missing} is missing: the entry after {expected - 1} is {seq}",
                        seq=expected,
                    )
                )
            else:
                problems.append(
                    Problem("out_of_order", f"entry {seq} appears after entry {expected - 1} (out of order)", seq=seq)
                )
            explained_links.add(seq)
        elif kind == "self":
            ph, eh, calc, expected_prev, body = data
            if not calc or len(ph) != 32:
                problems.append(
                    Problem("malformed", f"entry {seq}: prev_hash {ph.hex()!r} is not a 32-byte hash", seq=seq)
                )
                continue
            if ph != expected_prev and _digest_or_none(seq, expected_prev, body) == eh:
                problems.append(
                    Problem(
                        "prev_hash_altered",
                        f"entry {seq}: its prev_hash was changed (stored {ph.hex()[:16]}…, the chain needs "
                        f"{expected_prev.hex()[:16]}…)",
                        seq=seq,
                    )
                )
                explained_links.add(seq)
            elif next_prev_of.get(seq) == calc:
                problems.append(
                    Problem(
                        "entry_hash_altered",
                        f"entry {seq}: its stored entry_hash was changed (stored {eh.hex()[:16]}…, its content "
                        f"hashes to {calc.hex()[:16]}…, which the next entry still links to)",
                        seq=seq,
                    )
                )
                explained_links.add(seq + 1)
            elif seq in gaps:
                problems.append(
                    Problem(
                        "content_altered",
                        f"entry {seq}: its hash does not match its content (entries renumbered, swapped or inserted)",
                        seq=seq,
                    )
                )
            else:
                problems.append(
                    Problem(
                        "content_altered",
                        f"entry {seq}: its content was altered after writing (it hashes to {calc.hex()[:16]}…, "
                        f"the stored hash is {eh.hex()[:16]}…)",
                        seq=seq,
                    )
                )
        elif kind == "nots":
            problems.append(Problem("malformed", f"entry {seq}: the body does not end with a timestamp", seq=seq))
        elif kind == "ts":
            ts, prev_ts = data
            problems.append(
                Problem(
                    "timestamp_backwards",
                    f"entry {seq}: timestamp {ts.decode(errors='replace')} is earlier than a previous entry's "
                    f"{prev_ts.decode(errors='replace')}",
                    seq=seq,
                )
            )
    for kind, seq, data in flags:
        if kind == "link" and seq not in explained_links:
            ph, prev = data
            problems.append(
                Problem(
                    "broken_link",
                    f"entry {seq}: prev_hash {ph.hex()[:16]}… does not match entry {seq - 1}'s hash "
                    f"{prev.hex()[:16]}… (an entry before it was removed, inserted, swapped or its hash changed)",
                    seq=seq,
                )
            )
    problems.sort(key=lambda p: (p.seq or 0, p.kind))
    return problems


def _digest_or_none(seq: int, prev: bytes, body: bytes) -> bytes | None:
    try:
        return entry_digest(seq, prev, body)
    except (ValueError, OverflowError):
        return None


def check_checkpoints(
    checkpoints: Sequence[Checkpoint],
    scan: ChainScan,
    allowed_signers: Path | None,
    signers_at: Callable[[Checkpoint], Path | None] | None = None,
) -> tuple[list[CheckpointResult], list[Problem], int]:
    """Verify each checkpoint's signature and that the chain still has ``head`` at ``size``.

    Returns the per-checkpoint results, the problems, and the largest size a valid checkpoint anchors.
    """
    from mlops_layer import signing
    from mlops_layer.errors import ConfigError

    results: list[CheckpointResult] = []
    problems: list[Problem] = []
    anchored = 0
    for cp in checkpoints:
        where = cp.source or "checkpoint"
        label = f"checkpoint {where} (size {cp.size}, {cp.time})"
        signer: str | None = None
        problem: str | None = None
        kind = ""
        trusted = signers_at(cp) if signers_at is not None else allowed_signers
        if trusted is None and signers_at is not None:
            kind, problem = "checkpoint_untrusted", f"{label}: no allowed_signers was committed at its time"
        elif trusted is None:
            kind, problem = "checkpoint_unverifiable", f"{label}: no allowed_signers file to check its signature"
        else:
            try:
                signer = verify_signature(cp, trusted)
            except signing.UnknownSignerError as exc:
                kind, problem = "checkpoint_untrusted", f"{label}: {exc.message}"
            except signing.SignatureError as exc:
                kind, problem = "checkpoint_bad_signature", f"{label}: {exc.message}"
            except ConfigError as exc:
                kind, problem = "checkpoint_unverifiable", f"{label}: {exc.message}"
        if problem is None:
            if cp.size > scan.size:
                kind = "truncated"
                problem = (
                    f"{label} signed by {signer} covers {cp.size} entries but the trail has {scan.size}: "
                    f"entries {scan.size + 1}..{cp.size} were removed (truncated, or the database was restored "
                    "from an older copy)"
                )
            else:
                actual = GENESIS if cp.size == 0 else scan.hashes_at.get(cp.size)
                if actual != cp.head:
                    kind = "checkpoint_mismatch"
                    problem = (
                        f"{label} signed by {signer}: entry {cp.size} should have hash {cp.head[:16]}… but has "
                        f"{(actual or 'none')[:16]}… (the chain was rewritten up to there)"
                    )
        ok = problem is None
        if ok:
            anchored = max(anchored, cp.size)
        else:
            problems.append(Problem(kind, str(problem), seq=cp.size or None, checkpoint=where))
        results.append(CheckpointResult(cp, signer, ok, problem))
    return results, problems, anchored


def deep_check(rows: Iterable[Row], index: Iterable[tuple[int, str, str, str | None]] | None = None) -> list[Problem]:
    """Parse every body: a JSON object in RFC 8785 form, known schema, NFC strings; query columns match it."""
    problems: list[Problem] = []
    idx = iter(index) if index is not None else None
    for seq, _ph, _eh, body in rows:
        try:
            data = json.loads(body)
        except ValueError as exc:
            problems.append(Problem("malformed", f"entry {seq}: body is not JSON ({exc})", seq=seq))
            _skip(idx)
            continue
        if not isinstance(data, dict):
            problems.append(Problem("malformed", f"entry {seq}: body is not a JSON object", seq=seq))
            _skip(idx)
            continue
        if data.get("schema") != SCHEMA_VERSION:
            problems.append(Problem("malformed", f"entry {seq}: unknown schema {data.get('schema')!r}", seq=seq))
        unknown = sorted(set(data) - set(BODY_KEYS))
        missing = [k for k in ("action", "actor", "timestamp") if k not in data]
        if unknown or missing:
            problems.append(
                Problem("malformed", f"entry {seq}: unknown keys {unknown} / missing keys {missing}", seq=seq)
            )
        try:
            canonical = canonical_bytes(data) == body
        except ValueError:
            canonical = False
        if not canonical:
            problems.append(Problem("not_canonical", f"entry {seq}: body is not in RFC 8785 canonical form", seq=seq))
        bad = next((s for s in _strings(data) if not unicodedata.is_normalized("NFC", s)), None)
        if bad is not None:
            problems.append(Problem("not_nfc", f"entry {seq}: string {bad[:40]!r} is not NFC-normalised", seq=seq))
        if idx is not None:
            row = next(idx, None)
            subject = data.get("subject") if isinstance(data.get("subject"), dict) else {}
            want = (seq, data.get("timestamp"), data.get("action"), (subject or {}).get("model"))
            if row is None or tuple(row) != want:
                problems.append(
                    Problem(
                        "index_mismatch",
                        f"entry {seq}: query columns {row!r} disagree with the hashed body {want!r} "
                        "(filters such as `audit log --model` could hide it)",
                        seq=seq,
                    )
                )
    return problems


def _skip(it: Iterator[Any] | None) -> None:
    if it is not None:
        next(it, None)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def read_export(path: Path) -> Iterator[Row]:
    """Rows from a ``mlops audit export --format jsonl`` file (the body is the exact hashed text)."""
    from mlops_layer.errors import InputError

    with path.open("r", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                yield (
                    int(rec["seq"]),
                    bytes.fromhex(rec["prev_hash"]),
                    bytes.fromhex(rec["entry_hash"]),
                    rec["body"].encode("utf-8"),
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise InputError(
                    f"{path} line {number}: not an audit export record ({exc})",
                    hint="export with `mlops audit export --format jsonl`",
                ) from None


def verify_rows(
    rows: Iterable[Row],
    *,
    checkpoints: Sequence[Checkpoint] = (),
    checkpoint_errors: Sequence[str] = (),
    allowed_signers: Path | None = None,
    deep_rows: Iterable[Row] | None = None,
    index: Iterable[tuple[int, str, str, str | None]] | None = None,
    source: str = "",
    max_unanchored: int | None = None,
    signers_at: Callable[[Checkpoint], Path | None] | None = None,
) -> VerifyReport:
    """Verify a chain given as rows, against checkpoints; ``deep_rows`` (a second pass) adds per-body checks."""
    import time

    started = time.perf_counter()
    # Millions of short-lived row tuples would trigger the cyclic GC thousands of times for nothing: none of them
    # can form a cycle. Pause it for the scan (about 10% faster) and restore whatever the caller had.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        scan = scan_chain(rows, watch=[cp.size for cp in checkpoints])
    finally:
        if gc_was_enabled:
            gc.enable()
    problems = list(scan.problems)
    problems.extend(Problem("checkpoint_file", msg) for msg in checkpoint_errors)
    results, cp_problems, anchored = check_checkpoints(checkpoints, scan, allowed_signers, signers_at)
    problems.extend(cp_problems)
    if deep_rows is not None:
        problems.extend(deep_check(deep_rows, index))
    warnings: list[str] = []
    truncated = any(p.kind == "truncated" for p in problems)
    if max_unanchored is not None and scan.size - anchored > max_unanchored and not truncated:
        problems.append(
            Problem(
                "unanchored",
                f"entries {anchored + 1}..{scan.size} follow the newest valid checkpoint (size {anchored}); at most "
                f"{max_unanchored} may (audit.max_unanchored): entries after it could have been truncated or "
                "rewritten unseen",
                seq=anchored + 1,
            )
        )
    if not checkpoints:
        warnings.append(
            "no signed checkpoint: a consistent rewrite or truncation of the whole trail would not be detected "
            "(run `mlops audit checkpoint --append-file` and commit the checkpoint file)"
        )
    elif scan.size > anchored and not truncated:
        warnings.append(
            f"{scan.size - anchored} entries after the last valid checkpoint (size {anchored}) are not yet covered "
            "by a signed checkpoint"
        )
    return VerifyReport(
        ok=not problems,
        size=scan.size,
        head=scan.head,
        problems=tuple(problems),
        checkpoints=tuple(results),
        anchored=anchored,
        warnings=tuple(warnings),
        source=source,
        deep=deep_rows is not None,
        elapsed_s=time.perf_counter() - started,
    )


def verify_trail(
    store: AuditStore,
    *,
    checkpoint_file: Path | None = None,
    allowed_signers: Path | None = None,
    deep: bool = False,
    file_checkpoints: CheckpointFile | None = None,
    extra: Sequence[Checkpoint] = (),
    max_unanchored: int | None = None,
    signers_at: Callable[[Checkpoint], Path | None] | None = None,
) -> VerifyReport:
    """Verify the trail in ``store`` up to its current head, against its own checkpoints and the checkpoint file.

    ``file_checkpoints`` (already read, e.g. from a commit) wins over reading ``checkpoint_file``; ``extra`` are
    checkpoints an auditor kept (``--expect``): each must still be a prefix of the trail.
    """
    from mlops_layer.audit.checkpoints import merge, read_checkpoint_file

    size, _ = store.head()
    file_cps = file_checkpoints
    if file_cps is None and checkpoint_file is not None:
        file_cps = read_checkpoint_file(checkpoint_file)
    checkpoints = merge(store.checkpoints(), file_cps.checkpoints if file_cps else (), extra)
    signers = allowed_signers if allowed_signers is not None and allowed_signers.exists() else None
    return verify_rows(
        store.rows(upto_seq=size),
        checkpoints=checkpoints,
        checkpoint_errors=file_cps.errors if file_cps else (),
        allowed_signers=signers,
        deep_rows=store.rows(upto_seq=size) if deep else None,
        index=store.index_rows() if deep else None,
        source=repr(store),
        max_unanchored=max_unanchored,
        signers_at=signers_at,
    )
