"""The audit trail through the facade: log, show, verify, checkpoint, export, reconcile and alias history."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from mlops_layer.audit.checkpoints import Checkpoint
    from mlops_layer.audit.entry import AuditEntry
    from mlops_layer.audit.history import AliasSpan
    from mlops_layer.audit.reconcile import ReconcileReport
    from mlops_layer.audit.store import AuditStore
    from mlops_layer.audit.verify import VerifyReport


@dataclass(frozen=True)
class AuditCheckpointResult:
    """A signed checkpoint just made: stored in the database, and appended to the checkpoint file if asked."""

    checkpoint: Checkpoint
    entry_seq: int
    appended_to: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.checkpoint.to_dict(),
            "entry_seq": self.entry_seq,
            "appended_to": str(self.appended_to) if self.appended_to else None,
        }


@dataclass(frozen=True)
class AuditExport:
    """An export: its format, how many entries, and where it went (``path``) or its text (``text``)."""

    format: str
    count: int
    size: int
    head: str
    path: Path | None
    text: str | None


@dataclass(frozen=True)
class HistoryReport:
    """``mlops history``: the alias spans of a model (one alias or all) and, with ``at``, who held it then."""

    model: str
    alias: str | None
    at: datetime | None
    holder: str | None
    spans: tuple[AliasSpan, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "at": self.at.isoformat() if self.at is not None else None,
            "holder": self.holder,
            "spans": [s.to_dict() for s in self.spans],
        }


def open_audit(*, settings: Settings | None = None) -> AuditStore:
    """Open the project's audit trail (``settings.audit_url``); an ``AuditStore``, usable as a context manager."""
    from mlops_layer.audit.store import AuditStore

    return AuditStore.open(_wiring.resolve(settings).audit_url)


def parse_time(text: str) -> datetime:
    """A UTC datetime from ISO 8601 (naive means UTC), ``now``, or an age such as ``7d``, ``12h``, ``30m``."""
    from mlops_layer.audit.entry import parse_when

    return parse_when(text)


def audit_log(
    *,
    model: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    settings: Settings | None = None,
) -> list[AuditEntry]:
    """Audit entries, oldest first, filtered by subject model, action and time; ``limit`` keeps the newest N."""
    from collections import deque

    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    cfg = _wiring.resolve(settings)
    with _wiring.audit_store(cfg) as trail:
        found = trail.entries(model=model, action=action, since=since)
        return list(deque(found, maxlen=limit)) if limit else list(found)


def audit_entry(seq: int, *, settings: Settings | None = None) -> AuditEntry:
    """One audit entry by sequence number (NotFoundError if absent)."""
    cfg = _wiring.resolve(settings)
    with _wiring.audit_store(cfg) as trail:
        return trail.get(seq)


def verify_audit(
    *,
    settings: Settings | None = None,
    checkpoint_file: Path | None = None,
    allowed_signers: Path | None = None,
    export_file: Path | None = None,
    deep: bool = False,
) -> VerifyReport:
    """Verify the trail offline: every hash and link, timestamps, and every signed checkpoint (db + file).

    ``export_file`` verifies a ``mlops audit export --format jsonl`` file instead of the database. Returns a
    ``VerifyReport`` (``ok`` False with every problem listed); never raises for a broken chain.
    """
    from mlops_layer.audit.checkpoints import read_checkpoint_file
    from mlops_layer.audit.verify import read_export, verify_rows, verify_trail

    cfg = _wiring.resolve(settings)
    cp_file = checkpoint_file or cfg.checkpoint_file
    signers = allowed_signers or cfg.allowed_signers
    if export_file is not None:
        export_file = Path(export_file)
        if not export_file.is_file():
            raise NotFoundError(f"export file {export_file} does not exist")
        cps = read_checkpoint_file(cp_file)
        return verify_rows(
            read_export(export_file),
            checkpoints=list(cps.checkpoints),
            checkpoint_errors=cps.errors,
            allowed_signers=signers if signers.exists() else None,
            deep_rows=read_export(export_file) if deep else None,
            source=str(export_file),
        )
    with _wiring.audit_store(cfg) as trail:
        return verify_trail(trail, checkpoint_file=cp_file, allowed_signers=signers, deep=deep)


def checkpoint_audit(
    *,
    key: Path | None = None,
    append_file: bool = False,
    settings: Settings | None = None,
) -> AuditCheckpointResult:
    """Sign the trail's (size, head, time), store it in the database and, with ``append_file``, in the checkpoint file.

    ``key``: an SSH private key (or a raw Ed25519 PEM key); default git's ``user.signingkey``. An
    ``audit.checkpoint`` entry is appended first, so the checkpoint covers its own record.
    """
    from datetime import timezone

    from mlops_layer import signing
    from mlops_layer.adapters.git import signing_key_file
    from mlops_layer.audit import actions
    from mlops_layer.audit.acting import ActingTrail
    from mlops_layer.audit.checkpoints import append_checkpoint_file, make_checkpoint

    cfg = _wiring.resolve(settings)
    key_path = Path(key) if key is not None else signing_key_file(cfg.root)
    if key_path is None:
        raise InputError(
            "no signing key for the checkpoint",
            hint="pass --key PATH (an SSH or Ed25519 private key), or set git config user.signingkey",
        )
    if not key_path.is_file():
        raise NotFoundError(f"signing key {key_path} does not exist", hint="pass --key PATH to a private key")
    fingerprint = signing.fingerprint(signing.public_key(key_path))
    with _wiring.audit_store(cfg) as store:
        trail = ActingTrail(store, cfg.actor)
        seq = trail.append(
            actions.CHECKPOINT,
            details={"key": fingerprint, "file": str(cfg.checkpoint_file) if append_file else None},
        )
        size, head = store.head()
        checkpoint = make_checkpoint(size, head, datetime.now(timezone.utc), key_path, cfg.allowed_signers)
        store.add_checkpoint(checkpoint)
    if append_file:
        append_checkpoint_file(cfg.checkpoint_file, checkpoint)
    return AuditCheckpointResult(checkpoint, seq, cfg.checkpoint_file if append_file else None)


def export_audit(
    fmt: str = "jsonl",
    *,
    out: Path | None = None,
    model: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    settings: Settings | None = None,
) -> AuditExport:
    """Export the trail as ``jsonl`` (exact records; unfiltered it verifies offline with ``verify --export``) or
    ``in-toto`` (Statement v1: subjects = model artifacts and data with their digests; predicate = the entries).

    ``since``/``until`` archive a period: entries at or after ``since`` and before ``until`` (timestamps never go
    backwards in the trail, so a period is one contiguous run of entries). Written to ``out`` when given, else
    returned as ``text``.
    """
    import itertools

    from mlops_layer.audit.export import FORMATS, dvc_cache_resolver, in_toto_statement, jsonl_lines

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    cfg = _wiring.resolve(settings)
    with _wiring.audit_store(cfg) as trail:
        size, head = trail.head()
        entries: Iterator[AuditEntry] = trail.entries(model=model, action=action, since=since)
        if until is not None:
            entries = itertools.takewhile(lambda e: e.timestamp < until, entries)
        count = 0
        if fmt == "jsonl":
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("w", encoding="utf-8") as fh:
                    for line in jsonl_lines(entries):
                        fh.write(line)
                        count += 1
                return AuditExport(fmt, count, size, head, out, None)
            lines = list(jsonl_lines(entries))
            return AuditExport(fmt, len(lines), size, head, None, "".join(lines))
        chosen = list(entries)
        filters = {k: v for k, v in {"model": model, "action": action}.items() if v is not None}
        if since is not None:
            filters["since"] = since.isoformat()
        if until is not None:
            filters["until"] = until.isoformat()
        statement = in_toto_statement(
            chosen,
            size=size,
            head=head,
            checkpoints=trail.checkpoints(),
            filters=filters,
            resolve=dvc_cache_resolver(cfg.root),
        )
    text = json.dumps(statement, indent=2, ensure_ascii=False) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        return AuditExport(fmt, len(chosen), size, head, out, None)
    return AuditExport(fmt, len(chosen), size, head, None, text)


def reconcile_audit(
    *,
    settings: Settings | None = None,
    registry: Any = None,
    record_incident: bool = False,
) -> ReconcileReport:
    """Compare the registry's aliases and versions with what the trail says they should be.

    ``registry``: anything with ``model_names()``, ``get_aliases(model)``, ``list_versions(model)`` (default: the
    MLflow registry of the settings). With ``record_incident``, each finding is appended as ``reconcile.incident``.
    Returns a ``ReconcileReport`` (``ok`` False when there are findings).
    """
    from mlops_layer.audit.reconcile import reconcile, record_incidents

    cfg = _wiring.resolve(settings)
    if registry is None:
        registry = _wiring.registry(cfg)
    with _wiring.audit_store(cfg) as trail:
        report = reconcile(trail, registry)
        if cfg.git_tags and hasattr(registry, "versions"):
            from mlops_layer.api.lifecycle import tag_findings

            extra = tuple(tag_findings(cfg, registry))  # GTO's tags, compared with MLflow
            if extra:
                report = dataclasses.replace(report, ok=False, findings=(*report.findings, *extra))
        if record_incident and report.findings:
            entries = record_incidents(trail, report.findings, cfg.actor)
            report = dataclasses.replace(report, incident_seqs=tuple(e.seq for e in entries))
    return report


def history(
    name: str,
    *,
    alias: str | None = None,
    at: datetime | None = None,
    settings: Settings | None = None,
) -> HistoryReport:
    """Which version held each alias of ``name`` and when, answered from the trail alone (no registry needed).

    With ``at`` (an aware datetime) and ``alias``, ``holder`` is the version that held the alias at that moment.
    """
    from mlops_layer.audit.history import alias_history

    if at is not None and alias is None:
        raise InputError("--at needs --alias", hint="e.g. mlops history NAME --alias champion --at 2025-01-31")
    cfg = _wiring.resolve(settings)
    if (server := _wiring.governing_server(cfg)) is not None:  # team mode: the trail is the server's
        spans = server.history_spans(name, alias)
        holder = next((s.version for s in spans if s.holds_at(at)), None) if at is not None else None
        return HistoryReport(model=name, alias=alias, at=at, holder=holder, spans=tuple(spans))
    with _wiring.audit_store(cfg) as trail:
        if next(trail.entries(model=name), None) is None:
            raise NotFoundError(
                f"the audit trail has no entries for model {name!r}",
                hint="check the name (`mlops audit log` lists what the trail holds)",
            )
        spans = alias_history(trail, name, alias)
    holder = next((s.version for s in spans if s.holds_at(at)), None) if at is not None else None
    return HistoryReport(model=name, alias=alias, at=at, holder=holder, spans=tuple(spans))
