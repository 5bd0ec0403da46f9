"""What a version's first ``model.registered`` entry fixed: its file digests and its metrics snapshot.

The first registration of a version is the one that counts; a later entry claiming other digests is a conflict that
the gate ignores and ``mlops audit verify`` reports.
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
            if first is not None:
                raw = details.get("metrics")
                if first.metrics is None and isinstance(raw, dict):
                    first = replace(first, metrics={str(k): float(v) for k, v in raw.items()})
                if not first.artifacts and artifacts:
                    first = replace(first, artifacts=artifacts)
                out[key] = first
            continue
        if first is None:
            raw = details.get("metrics")
            metrics = {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else None
            trainer, registrant = details.get("trainer_proof"), details.get("registrant_proof")
            out[key] = RegistrationRecord(
                e.seq,
                e.actor,
                artifacts,
                metrics,
                trainer_proof=dict(trainer) if isinstance(trainer, dict) else None,
                registrant_proof=dict(registrant) if isinstance(registrant, dict) else None,
                digests_not_computed=str(details["artifacts_not_computed"])
                if details.get("artifacts_not_computed")
                else None,
                claim_problem=str(details["artifacts_claim_problem"])
                if details.get("artifacts_claim_problem")
                else None,
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
