"""Signed checkpoints: a signature over (size, head hash, time) of the trail, kept in the database and in git.

A checkpoint pins the chain's prefix: if the entry at ``size`` no longer has hash ``head``, the trail was rewritten or
truncated. Because the checkpoint file lives in git (history the database does not control) and the signature
needs a key the database never sees, neither a consistent rewrite nor a database restored from an older copy goes
unnoticed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlops_layer.audit.entry import GENESIS, canonical_bytes, format_timestamp, parse_timestamp
from mlops_layer.errors import InputError

NAMESPACE = "mlops-audit-checkpoint"
PAYLOAD_TYPE = "mlops-audit-checkpoint/v1"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the trail had ``size`` entries ending in ``head`` at ``time``.

    ``signer`` and ``key`` are informative only: verification trusts the signature and allowed_signers, not them.
    ``source`` says where it was read from (``db`` or ``file:LINE``).
    """

    size: int
    head: str
    time: str
    signature: str
    signer: str | None = None
    key: str | None = None
    source: str = ""

    def payload(self) -> bytes:
        return checkpoint_payload(self.size, self.head, self.time)

    @property
    def identity(self) -> tuple[int, str, str, str]:
        return (self.size, self.head, self.time, self.signature.strip())

    @property
    def timestamp(self) -> datetime:
        return parse_timestamp(self.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "head": self.head,
            "time": self.time,
            "signer": self.signer,
            "key": self.key,
            "signature": self.signature,
        }

    def to_line(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True)


def checkpoint_payload(size: int, head: str, time: str) -> bytes:
    """The exact signed bytes: canonical JSON of the type, size, head and time."""
    return canonical_bytes({"type": PAYLOAD_TYPE, "size": size, "head": head, "time": time})


def make_checkpoint(size: int, head: str, at: datetime, key_path: Path, allowed_signers: Path | None) -> Checkpoint:
    """Sign the trail's (size, head) at ``at`` with ``key_path``; name the signer when allowed_signers knows the key."""
    from mlops_layer import signing

    if size < 0 or (size == 0 and head != GENESIS):
        raise InputError(f"cannot checkpoint size {size} with head {head}")
    time = format_timestamp(at)
    signature = signing.sign(checkpoint_payload(size, head, time), key_path, NAMESPACE)
    key = signing.fingerprint(signing.signature_public_key(signature))
    signer: str | None = None
    if allowed_signers is not None and allowed_signers.is_file():
        try:
            signer = signing.verify(checkpoint_payload(size, head, time), signature, allowed_signers, NAMESPACE)
        except signing.SignatureError:
            signer = None
    return Checkpoint(size=size, head=head, time=time, signature=signature, signer=signer, key=key)


def verify_signature(cp: Checkpoint, allowed_signers: Path) -> str:
    """The principal that signed ``cp``; raises signing.SignatureError / UnknownSignerError / ConfigError."""
    from mlops_layer import signing

    # Validity windows are judged at the checkpoint's own time: a key retired later still vouches for old ones.
    return signing.verify(cp.payload(), cp.signature, allowed_signers, NAMESPACE, at=cp.timestamp)


def parse_checkpoint(data: Any, source: str) -> Checkpoint:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        size = data["size"]
        head = data["head"]
        time = data["time"]
        signature = data["signature"]
    except KeyError as exc:
        raise ValueError(f"missing field {exc.args[0]!r}") from None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be a non-negative integer, got {size!r}")
    if not isinstance(head, str) or len(head) != 64:
        raise ValueError(f"head must be a 64-hex-digit hash, got {head!r}")
    if not isinstance(time, str) or not isinstance(signature, str):
        raise ValueError("time and signature must be strings")
    parse_timestamp(time)
    return Checkpoint(
        size=size,
        head=head,
        time=time,
        signature=signature,
        signer=data.get("signer"),
        key=data.get("key"),
        source=source,
    )


@dataclass(frozen=True)
class CheckpointFile:
    """The checkpoints read from a JSONL file, and the lines that could not be read (reported, never ignored)."""

    path: Path
    checkpoints: tuple[Checkpoint, ...]
    errors: tuple[str, ...]


def read_checkpoint_file(path: Path) -> CheckpointFile:
    """Read a checkpoint JSONL file (absent file = no checkpoints); malformed lines are collected as errors."""
    if not path.is_file():
        return CheckpointFile(path, (), ())
    with path.open("r", encoding="utf-8") as fh:
        return _parse_lines(fh, path, path.name, str(path))


def parse_checkpoint_lines(data: bytes, path: Path, label: str) -> CheckpointFile:
    """Checkpoints from the bytes of a checkpoint file (e.g. as a commit holds it); ``label`` names the source."""
    return _parse_lines(data.decode("utf-8", "replace").splitlines(), path, label, label)


def _parse_lines(lines: Iterable[str], path: Path, label: str, where: str) -> CheckpointFile:
    """One checkpoint per non-blank line (named ``label:N``); malformed lines become errors naming ``where``."""
    checkpoints: list[Checkpoint] = []
    errors: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            checkpoints.append(parse_checkpoint(json.loads(line), f"{label}:{number}"))
        except (ValueError, TypeError) as exc:
            errors.append(f"{where} line {number}: not a checkpoint ({exc})")
    return CheckpointFile(path, tuple(checkpoints), tuple(errors))


def append_checkpoint_file(path: Path, checkpoint: Checkpoint) -> None:
    """Append one line, durably (fsync), creating the file and its folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(checkpoint.to_line() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def merge(*groups: Iterable[Checkpoint]) -> list[Checkpoint]:
    """All checkpoints, each (size, head, time, signature) once, ordered by size then time."""
    seen: dict[tuple[int, str, str, str], Checkpoint] = {}
    for group in groups:
        for cp in group:
            seen.setdefault(cp.identity, cp)
    return sorted(seen.values(), key=lambda c: (c.size, c.time))
