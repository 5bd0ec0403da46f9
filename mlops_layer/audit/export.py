"""Export of the trail: JSON Lines (the exact stored records, verifiable offline) and an in-toto Statement v1.

The in-toto statement's subjects are the artifacts the entries name, with the digests the entries recorded: model
files listed in ``details["artifacts"]`` (``{path: sha256}``) and data from ``dvc_hashes`` (DVC's md5, plus a sha256
when ``details["data_sha256"]`` or a digest resolver supplies it). The predicate carries the entries themselves
(exact body text, so every hash can be recomputed) and the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mlops_layer.audit.checkpoints import Checkpoint
from mlops_layer.audit.entry import AuditEntry

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlops-layer.dev/attestation/audit-trail/v1"
FORMATS = ("jsonl", "in-toto")

# (path, md5) -> {"sha256": ...} extra digests, or None when the content is not at hand
DigestResolver = Callable[[str, str], "dict[str, str] | None"]

_HEX = re.compile(r"^[0-9a-f]+$")
_DIGEST_LEN = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


def jsonl_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """One line per entry: seq, prev_hash, entry_hash and the body exactly as hashed."""
    for entry in entries:
        yield json.dumps(entry.to_record(), ensure_ascii=False, separators=(",", ":")) + "\n"


def _parse_digest(value: Any) -> dict[str, str] | None:
    """``"sha256:hex"``, a bare hex (length decides md5/sha256), or ``{"sha256": hex}`` -> a DigestSet."""
    if isinstance(value, dict):
        out = {str(k).lower(): str(v).lower() for k, v in value.items() if isinstance(v, str) and _HEX.match(v.lower())}
        return out or None
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    alg, sep, hexpart = text.partition(":")
    if sep and alg in _DIGEST_LEN and len(hexpart) == _DIGEST_LEN[alg] and _HEX.match(hexpart):
        return {alg: hexpart}
    if text.endswith(".dir") and len(text) == 36 and _HEX.match(text[:32]):
        return {"dvc-dir-md5": text[:32]}
    for alg, length in _DIGEST_LEN.items():
        if len(text) == length and _HEX.match(text):
            return {alg: text}
    return None


def subjects(entries: Sequence[AuditEntry], resolve: DigestResolver | None = None) -> list[dict[str, Any]]:
    """in-toto subjects (name + DigestSet) for the model artifacts and data the entries name, each once."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}

    def add(name: str, digest: dict[str, str]) -> None:
        key = (name, tuple(sorted(digest.items())))
        found.setdefault(key, {"name": name, "digest": dict(sorted(digest.items()))})

    for entry in entries:
        details = entry.details
        prefix = f"{entry.model}/v{entry.version}/" if entry.model and entry.version else ""
        artifacts = details.get("artifacts")
        if isinstance(artifacts, dict):
            for path, value in artifacts.items():
                digest = _parse_digest(value)
                if digest:
                    add(f"model:{prefix}{path}", digest)
        raw_sha = details.get("data_sha256")
        data_sha: dict[str, Any] = raw_sha if isinstance(raw_sha, dict) else {}
        for path, value in entry.dvc_hashes.items():
            digest = _parse_digest(value)
            if not digest:
                continue
            extra = _parse_digest(f"sha256:{data_sha[path]}") if path in data_sha else None
            if extra:
                digest.update(extra)
            elif resolve is not None and "md5" in digest:
                digest.update(resolve(path, digest["md5"]) or {})
            add(f"data:{path}", digest)
    return list(found.values())


def in_toto_statement(
    entries: Sequence[AuditEntry],
    *,
    size: int,
    head: str,
    checkpoints: Sequence[Checkpoint] = (),
    filters: dict[str, Any] | None = None,
    resolve: DigestResolver | None = None,
) -> dict[str, Any]:
    """An in-toto Statement v1 attesting the listed entries of a trail of ``size`` entries ending in ``head``."""
    found = subjects(entries, resolve)
    if not found:
        # a Statement needs a subject: with no artifacts named, attest the trail's head itself
        found = [{"name": "mlops-audit-trail", "digest": {"sha256": head}}]
    return {
        "_type": STATEMENT_TYPE,
        "subject": found,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "trail": {
                "size": size,
                "head": head,
                "from_seq": entries[0].seq if entries else None,
                "to_seq": entries[-1].seq if entries else None,
                "count": len(entries),
                "filters": filters or {},
                "hash": "sha256(b'mlops-audit-entry/v1\\x00' || seq:u64be || prev_hash:32 bytes || body)",
            },
            "entries": [e.to_record() for e in entries],
            "checkpoints": [c.to_dict() for c in checkpoints],
        },
    }


def dvc_cache_resolver(root: Path) -> DigestResolver:
    """Find data content by md5 in the project's DVC cache (``.dvc/cache/files/md5/ab/cdef...``) or work tree.

    The md5 is recomputed before a sha256 is offered, so a stale work-tree file never lends its digest.
    """

    def resolve(path: str, md5: str) -> dict[str, str] | None:
        candidates = [root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:], root / path]
        for candidate in candidates:
            if not candidate.is_file():
                continue
            h_md5, h_sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
            with candidate.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h_md5.update(block)
                    h_sha.update(block)
            if h_md5.hexdigest() == md5:
                return {"sha256": h_sha.hexdigest()}
        return None

    return resolve
