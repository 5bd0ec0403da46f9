"""Bring a workspace registered before frozen snapshots up to date: ``mlops migrate``.

Versions registered before this layer froze their metrics (and, older still, their file digests) get one audited
``model.snapshot`` entry recording what the registry holds *now*. That is trust on first use, said so in the entry:
it never overrides what a registration already fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import MlopsError


@dataclass(frozen=True)
class MigrationReport:
    """What ``migrate`` recorded: one entry per version that lacked a snapshot, and what it could not do."""

    recorded: tuple[dict[str, Any], ...] = ()
    skipped: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"recorded": list(self.recorded), "skipped": list(self.skipped)}


def migrate(*, dry_run: bool = False, settings: Settings | None = None) -> MigrationReport:
    """Record a frozen metrics snapshot (and file digests, when missing) for every version registered without one.

    ``dry_run`` lists what would be recorded. Returns a :class:`MigrationReport`. Against a governing server the
    server does it (``POST /mlops/api/v1/migrate``): only an MLflow admin may, and the digests are the ones it computes
    from its own artifact store, recorded as its own (``artifacts_by: server``); a non-admin is refused (exit 1).
    """
    from mlops_layer.audit import actions
    from mlops_layer.audit.registrations import registration_records

    cfg = _wiring.resolve(settings)
    if (server := _wiring.governing_server(cfg)) is not None:
        # team mode: the server computes digests and metrics from its own stores and records them (admins only)
        body = server.migrate(dry_run=dry_run)
        return MigrationReport(
            tuple(dict(r) for r in body.get("recorded") or ()), tuple(str(s) for s in body.get("skipped") or ())
        )
    registry = _wiring.registry(cfg)
    recorded: list[dict[str, Any]] = []
    skipped: list[str] = []
    with _wiring.acting_trail(cfg) as trail:
        records = registration_records(trail.store.entries(action=[actions.MODEL_REGISTERED, actions.MODEL_SNAPSHOT]))
        for (model, version), record in sorted(records.items()):
            if record.metrics is not None and record.artifacts:
                continue
            try:
                info = registry.get_version(model, version)
                metrics = registry.run_metrics([info.run_id]).get(info.run_id, {}) if info.run_id else {}
                digests = registry.artifact_digests(info.source) if not record.artifacts else {}
            except MlopsError as exc:
                skipped.append(f"{model} v{version}: {exc.message}")
                continue
            details: dict[str, Any] = {"registration_seq": record.seq, "trust": "first use, at migration"}
            if record.metrics is None:
                details["metrics"] = metrics
            if digests:
                details["artifacts"] = digests
            item = {"model": model, "version": version, **{k: v for k, v in details.items() if k != "trust"}}
            if not dry_run:
                item["audit_seq"] = trail.append(
                    actions.MODEL_SNAPSHOT,
                    subject={"model": model, "version": version},
                    run_id=info.run_id,
                    details=details,
                )
            recorded.append(item)
    return MigrationReport(tuple(recorded), tuple(skipped))
