"""The audit trail through the facade: log, show, verify, checkpoint, export, reconcile and alias history."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import ConfigError, InputError, MlopsError, NotFoundError

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
    if (server := _wiring.governing_server(cfg)) is not None:  # team mode: the trail is the server's
        entries: list[AuditEntry] = server.audit_entries(
            model=model, action=action, since=since.isoformat() if since is not None else None, limit=limit
        )
        return entries
    with _wiring.audit_store(cfg) as trail:
        found = trail.entries(model=model, action=action, since=since)
        return list(deque(found, maxlen=limit)) if limit else list(found)


def audit_entry(seq: int, *, settings: Settings | None = None) -> AuditEntry:
    """One audit entry by sequence number (NotFoundError if absent)."""
    cfg = _wiring.resolve(settings)
    if (server := _wiring.governing_server(cfg)) is not None:  # team mode: the trail is the server's
        entry: AuditEntry = server.audit_entry(seq)
        return entry
    with _wiring.audit_store(cfg) as trail:
        return trail.get(seq)


def verify_audit(
    *,
    settings: Settings | None = None,
    checkpoint_file: Path | None = None,
    allowed_signers: Path | None = None,
    export_file: Path | None = None,
    deep: bool = False,
    expect: Path | None = None,
    no_git: bool = False,
) -> VerifyReport:
    """Verify the trail offline: every hash and link, timestamps, and every signed checkpoint (db + file).

    Checkpoint signatures are checked against the committed ``allowed_signers`` and the checkpoint file is read from
    the governance ref (HEAD or ``governance_ref``), unless ``no_git`` (no repository at hand) or explicit paths are
    given. Entries after the newest valid checkpoint beyond ``audit.max_unanchored`` (0 when a checkpoint key is
    configured), decisions whose governance blobs are not in git history and re-registrations that claim other
    digests are problems. ``expect``: a checkpoint kept earlier must still be a prefix of the trail.
    ``export_file`` verifies a ``mlops audit export --format jsonl`` file instead of the database. Returns a
    ``VerifyReport`` (``ok`` False with every problem listed); never raises for a broken chain.
    """
    from mlops_layer.api._trust import (
        committed_checkpoints,
        committed_settings,
        committed_signers,
        governance_problems,
        read_expected_checkpoint,
        registration_problems,
        signers_of_their_time,
    )
    from mlops_layer.audit.checkpoints import read_checkpoint_file
    from mlops_layer.audit.verify import read_export, verify_rows, verify_trail

    cfg = _wiring.resolve(settings)
    if export_file is None and (server := _wiring.governing_server(cfg)) is not None:
        # team mode: the server verifies its trail against its own signers and checkpoints
        given = [
            o
            for o, v in (
                ("--checkpoints", checkpoint_file),
                ("--allowed-signers", allowed_signers),
                ("--expect", expect),
            )
            if v is not None
        ]
        if given:
            raise InputError(
                f"{', '.join(given)} cannot apply to the governing server's trail (the server verifies it)",
                hint="drop them, or verify an export offline: mlops audit verify --export FILE.jsonl",
            )
        report: VerifyReport = server.verify_report(deep=deep)
        return report
    extra = [read_expected_checkpoint(Path(expect))] if expect is not None else []
    warnings: list[str] = []
    safe = cfg
    cp_data = read_checkpoint_file(checkpoint_file) if checkpoint_file is not None else None
    signers = allowed_signers
    signers_at = None
    limit = cfg.max_unanchored
    if limit is None and cfg.checkpoint_key is not None:
        limit = 0
    if not no_git:
        try:
            safe, notes = committed_settings(cfg)
        except ConfigError as exc:
            raise ConfigError(
                exc.message, hint="commit governance/, or pass --no-git where the repository is not at hand"
            ) from None
        warnings.extend(notes)
        limit = safe.max_unanchored
        if signers is None:
            signers, notes = committed_signers(cfg, safe)
            warnings.extend(notes)
            signers_at = signers_of_their_time(cfg, safe) if signers is not None else None
        if cp_data is None:
            cp_data, notes = committed_checkpoints(cfg, safe)
            warnings.extend(notes)
    if signers is None and no_git:
        signers = cfg.allowed_signers
    if cp_data is None:
        cp_data = read_checkpoint_file(cfg.checkpoint_file)
    if export_file is not None:
        export_file = Path(export_file)
        if not export_file.is_file():
            raise NotFoundError(f"export file {export_file} does not exist")
        report = verify_rows(
            read_export(export_file),
            checkpoints=[*cp_data.checkpoints, *extra],
            checkpoint_errors=cp_data.errors,
            allowed_signers=signers if signers is not None and signers.exists() else None,
            deep_rows=read_export(export_file) if deep else None,
            source=str(export_file),
            max_unanchored=limit,
        )
        more: list[Any] = []
    else:
        with _wiring.audit_store(cfg) as trail:
            report = verify_trail(
                trail,
                allowed_signers=signers,
                deep=deep,
                file_checkpoints=cp_data,
                extra=extra,
                max_unanchored=limit,
                signers_at=signers_at,
            )
            more = registration_problems(trail)
            if not no_git:
                more.extend(governance_problems(trail, cfg, safe))
    problems = (*report.problems, *more)
    return dataclasses.replace(report, problems=problems, ok=not problems, warnings=(*warnings, *report.warnings))


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
        store.appended = 0  # anchored by this checkpoint: no automatic one on close
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
    if (server := _wiring.governing_server(cfg)) is not None:  # team mode: the server exports its trail
        times = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
        got = server.audit_export(format=fmt, model=model, action=action, **times)
        return _exported(got, out)
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


def _exported(got: dict[str, Any], out: Path | None) -> AuditExport:
    """The governing server's export, written to ``out`` when given (as a local export would be)."""
    text, count, size, head = str(got["text"]), int(got["count"]), int(got["size"]), str(got["head"])
    if out is None:
        return AuditExport(str(got["format"]), count, size, head, None, text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return AuditExport(str(got["format"]), count, size, head, out, None)


def reconcile_audit(
    *,
    settings: Settings | None = None,
    registry: Any = None,
    record_incident: bool = False,
    key_path: Path | str | None = None,
) -> ReconcileReport:
    """Compare the registry's aliases and versions with what the trail says they should be.

    ``registry``: anything with ``model_names()``, ``get_aliases(model)``, ``list_versions(model)`` (default: the
    MLflow registry of the settings). With ``record_incident``, each finding is appended as ``reconcile.incident``;
    with ``key_path`` (a key the committed allowed_signers trusts for a principal holding a role in the policy) each
    incident is signed, and only a signed incident lets promotion resume from an out-of-band alias move. Run metrics
    changed after registration are findings too. Returns a ``ReconcileReport`` (``ok`` False when there are findings).
    """
    from mlops_layer.audit.reconcile import reconcile, record_incidents

    cfg = _wiring.resolve(settings)
    if registry is None and (server := _wiring.governing_server(cfg)) is not None:  # team mode: the server's trail
        if record_incident:
            raise InputError(
                "--record-incident needs the trail itself: the governing server refuses out-of-band alias moves at "
                "the registry, so its findings are a worker killed mid-promotion (recovered here) or an admin's change",
                hint="run `mlops audit reconcile` without --record-incident; an admin records incidents on the "
                "server's host with its settings",
            )
        report: ReconcileReport = server.reconcile_report()
        return report
    sign = _incident_signer(cfg, Path(key_path).expanduser()) if record_incident and key_path else None
    if registry is None:
        registry = _wiring.registry(cfg)
    with _wiring.audit_store(cfg) as trail:
        report = reconcile(trail, registry)
        if cfg.git_tags and hasattr(registry, "versions"):
            from mlops_layer.api.lifecycle import tag_findings

            extra = tuple(tag_findings(cfg, registry))  # GTO's tags, compared with MLflow
            if extra:
                report = dataclasses.replace(report, ok=False, findings=(*report.findings, *extra))
        if hasattr(registry, "run_metrics"):
            more = _metric_findings(trail, registry)
            if more:
                report = dataclasses.replace(report, ok=False, findings=(*report.findings, *more))
        if record_incident and report.findings:
            entries = record_incidents(trail, report.findings, cfg.actor, sign)
            report = dataclasses.replace(report, incident_seqs=tuple(e.seq for e in entries))
    return report


def _incident_signer(cfg: Settings, key: Path) -> Callable[[dict[str, Any]], tuple[dict[str, Any], str]]:
    """Sign incident statements as the principal the committed signers trust ``key`` for (who must hold a role)."""
    import rfc8785

    from mlops_layer import signing
    from mlops_layer.api._trust import governance_files
    from mlops_layer.errors import ApprovalError
    from mlops_layer.governance.approvals import NAMESPACE, format_time, utc_now
    from mlops_layer.governance.identity import principal_for_key

    files = governance_files(cfg)
    principal = principal_for_key(files.allowed_signers, key, NAMESPACE)
    if not files.policy.roles_of(principal):
        raise ApprovalError(
            f"{principal} holds no role in the committed policy: an incident must be acknowledged by an approver"
        )

    def sign(statement: dict[str, Any]) -> tuple[dict[str, Any], str]:
        signed = {**statement, "signer": principal, "timestamp": format_time(utc_now())}
        return signed, signing.sign(bytes(rfc8785.dumps(signed)), key, NAMESPACE)

    return sign


def _metric_findings(trail: Any, registry: Any) -> list[Any]:
    """Registered versions whose run metrics were changed after the snapshot was frozen."""
    from mlops_layer.audit import actions
    from mlops_layer.audit.reconcile import metric_findings
    from mlops_layer.audit.registrations import registration_records

    records = registration_records(trail.entries(action=[actions.MODEL_REGISTERED, actions.MODEL_SNAPSHOT]))
    frozen = {key: r.metrics for key, r in records.items() if r.metrics is not None}
    runs: dict[tuple[str, str], str] = {}
    for model, version in frozen:
        try:
            run_id = registry.get_version(model, version).run_id
        except MlopsError:
            continue  # a missing version is reported by reconcile itself
        if run_id:
            runs[(model, version)] = run_id
    live_by_run = registry.run_metrics(list(runs.values())) if runs else {}
    live = {key: live_by_run.get(run_id, {}) for key, run_id in runs.items()}
    return metric_findings(frozen, live)


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
