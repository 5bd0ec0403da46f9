"""What a version's first ``model.registered`` entry fixed: its file digests and its metrics snapshot.

The first registration of a version is the one that counts; a later entry claiming other digests is a conflict that
the gate ignores and ``mlops audit verify`` reports.

A ``model.snapshot`` (``mlops migrate``) only fills in what the registration lacked, never overrides what it fixed.
Digests the governing server computed in such a snapshot (``artifacts_by: server``) count as the server's: they lift
a registration's "not computed". A version with no registration entry at all (registered before the layer governed
the registry) is registered *by migration* by a snapshot marked ``registered_by_migration``: trust on first use, said
so in the record; a real registration entry recorded later supersedes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class RegistrationRecord:
    """What the first ``model.registered`` entry of a version fixed: file digests and the metrics snapshot."""

    seq: int
    actor: str
    artifacts: dict[str, str]
    metrics: dict[str, float] | None
    conflicts: tuple[int, ...] = ()
    trainer_proof: dict[str, Any] | None = None  # signed identity statements (policy `identity: signed`)
    registrant_proof: dict[str, Any] | None = None
    # through the governing server: why it computed no digests, and how the registrant's claim differed from them
    digests_not_computed: str | None = None
    claim_problem: str | None = None
    artifacts_by: str | None = None  # "server": the governing server computed ``artifacts`` from its own store
    by_migration: bool = False  # no registration entry: a migration snapshot stands for it (trust on first use)
    snapshot_seq: int | None = None  # the model.snapshot entry that filled something in (or stands for the record)


SERVER = "server"
BY_MIGRATION = "registered_by_migration"  # the marker of a snapshot standing for a missing registration


def _metrics(raw: Any) -> dict[str, float] | None:
    return {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else None


def _snapshot(first: RegistrationRecord | None, e: Any, artifacts: dict[str, str]) -> RegistrationRecord | None:
    """``first`` with what the snapshot ``e`` fills in (never what it fixed); a marked snapshot of a version without
    a registration stands for one."""
    details = e.details or {}
    by_server = details.get("artifacts_by") == SERVER and bool(artifacts)
    if first is None:
        if details.get(BY_MIGRATION) is not True:
            return None
        return RegistrationRecord(
            e.seq,
            e.actor,
            artifacts,
            _metrics(details.get("metrics")),
            artifacts_by=SERVER if by_server else None,
            by_migration=True,
            snapshot_seq=e.seq,
        )
    metrics = _metrics(details.get("metrics"))
    if first.metrics is None and metrics is not None:
        first = replace(first, metrics=metrics, snapshot_seq=e.seq)
    if not first.artifacts and artifacts:
        first = replace(first, artifacts=artifacts, artifacts_by=SERVER if by_server else None, snapshot_seq=e.seq)
        if by_server:  # the server read the files now: its "not computed" at registration no longer holds
            first = replace(first, digests_not_computed=None)
    return first


def registration_records(entries: Iterable[Any]) -> dict[tuple[str, str], RegistrationRecord]:
    """(model, version) -> the first registration; later entries claiming other digests are listed as conflicts."""
    out: dict[tuple[str, str], RegistrationRecord] = {}
    for e in entries:
        model, version = e.subject.get("model"), e.subject.get("version")
        if not model or not version:
            continue
        details = e.details or {}
        artifacts = {str(k): str(v) for k, v in (details.get("artifacts") or {}).items()}
        key = (str(model), str(version))
        first = out.get(key)
        if e.action == "model.snapshot":
            # a migration fills in what an old registration lacked; it never overrides what one fixed
            filled = _snapshot(first, e, artifacts)
            if filled is not None:
                out[key] = filled
            continue
        if first is None or first.by_migration:
            # the first registration entry; one recorded after a migration stood in for it supersedes the stand-in
            trainer, registrant = details.get("trainer_proof"), details.get("registrant_proof")
            out[key] = RegistrationRecord(
                e.seq,
                e.actor,
                artifacts,
                _metrics(details.get("metrics")),
                trainer_proof=dict(trainer) if isinstance(trainer, dict) else None,
                registrant_proof=dict(registrant) if isinstance(registrant, dict) else None,
                digests_not_computed=str(details["artifacts_not_computed"])
                if details.get("artifacts_not_computed")
                else None,
                claim_problem=str(details["artifacts_claim_problem"])
                if details.get("artifacts_claim_problem")
                else None,
                artifacts_by=str(details["artifacts_by"]) if details.get("artifacts_by") and artifacts else None,
            )
        elif artifacts != first.artifacts:
            out[key] = replace(first, conflicts=(*first.conflicts, e.seq))
    return out


def conflicting_registrations(entries: Iterable[Any]) -> list[tuple[int, str]]:
    """(seq, message) for every registration entry that claims other digests than the version's first one."""
    out: list[tuple[int, str]] = []
    for (model, version), record in registration_records(entries).items():
        for seq in record.conflicts:
            out.append(
                (
                    seq,
                    f"entry {seq} re-registers {model} v{version} with other file digests than entry {record.seq}: "
                    "the first registration fixes a version's bytes; this claim is ignored",
                )
            )
    return sorted(out)
