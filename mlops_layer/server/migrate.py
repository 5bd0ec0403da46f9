"""``mlops migrate`` in team mode: ``POST /mlops/api/v1/migrate``, done by the governing server, MLflow admins only.

Versions registered before the server computed file digests (or registered while their files were unreadable to it,
or before the app governed the registry at all, with no registration entry) cannot be promoted: nothing the server
computed binds their bytes. A migration reads their files from the server's own artifact store
(``stores.served_artifacts``) and their runs' metrics from its backend store, and appends one ``model.snapshot`` per
version, as the admin's principal, marked ``artifacts_by: server`` and ``trust: "first use, at migration"``. A
version without a registration entry is registered *by migration* (``registered_by_migration: true``). A snapshot
fills in what a registration lacked and never replaces what one fixed (``audit.registrations``). Versions whose files
the server cannot read are listed as skipped with the reason; nothing is recorded for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_layer.audit import actions
from mlops_layer.errors import MlopsError, PolicyViolation
from mlops_layer.server import stores
from mlops_layer.server.governing import ServerGovernance

TRUST = "first use, at migration"
WHAT = "migrate the registry's versions (record the digests and metrics they lack)"
LOCK = ("", "mlops-migrate")  # one migration at a time across workers and hosts (no model is named "")


def flag(value: Any) -> bool:
    return value is True or str(value or "").strip().lower() in ("1", "true", "yes")


def migrate(gov: ServerGovernance, user: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Record the snapshots every registered version lacks (``dry_run``: list them, append nothing).

    Returns ``{"recorded": [...], "skipped": [...]}``, the shape ``mlops migrate --json`` prints locally.
    """
    from mlops_layer.server.guard import is_admin

    dry_run = flag(params.get("dry_run"))
    if not is_admin(user):
        seq = gov.record_guard(user, WHAT, {}, allowed=False, reason=f"only an MLflow admin may {WHAT}")
        raise PolicyViolation(
            f"mlops: only an MLflow admin may run `mlops migrate` on the governing server: it records, on the "
            f"server's word, the file digests and metrics of versions registered without them (refusal audited as "
            f"#{seq})",
            hint="ask an MLflow admin of this server to run it",
        )
    principal = gov.principal(user)
    with gov.locks(*LOCK):
        recorded, skipped = _migrate(gov, user, principal, dry_run)
    if recorded and not dry_run:
        gov.checkpoint()
    return {"recorded": recorded, "skipped": skipped}


def _migrate(gov: ServerGovernance, user: str, principal: str, dry_run: bool) -> tuple[list[dict[str, Any]], list[str]]:
    from mlops_layer.audit.registrations import BY_MIGRATION, SERVER, registration_records
    from mlops_layer.governance.digests import migration_need
    from mlops_layer.server.identity import LoginStore

    records = registration_records(gov.store.entries(action=[actions.MODEL_REGISTERED, actions.MODEL_SNAPSHOT]))
    store = LoginStore(gov.store, user)
    commit = gov.snapshot().commit
    recorded: list[dict[str, Any]] = []
    skipped: list[str] = []
    for model in gov.registry.model_names():
        for info in gov.registry.versions(model):
            record = records.get((model, info.version))
            need_metrics, need_digests, problem = migration_need(record)
            if problem:
                skipped.append(f"{model} v{info.version}: {problem}")
                continue
            if not (need_metrics or need_digests):
                continue
            try:
                digests = _digests(gov, info.source) if need_digests else {}
                metrics = gov.registry.get_run(info.run_id).metrics if need_metrics and info.run_id else {}
            except MlopsError as exc:
                skipped.append(f"{model} v{info.version}: {exc.message}")
                continue
            except Exception as exc:  # noqa: BLE001 - any store failure: nothing recorded for this version
                skipped.append(f"{model} v{info.version}: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            details: dict[str, Any] = {
                "registration_seq": record.seq if record is not None else None,
                "trust": TRUST,
                "via": "server",
                "governance_commit": commit,
            }
            if record is None:
                # no registration entry: this snapshot stands for one (who registered it is not known)
                details.update({BY_MIGRATION: True, "source": info.source})
            if need_metrics:
                details["metrics"] = dict(metrics)
            if need_digests:
                details.update(artifacts=digests, artifacts_by=SERVER)
            item: dict[str, Any] = {
                "model": model,
                "version": info.version,
                **{k: v for k, v in details.items() if k not in ("trust", "via", "governance_commit")},
            }
            if not dry_run:
                entry = store.append(
                    actions.MODEL_SNAPSHOT,
                    actor=principal,
                    subject={"model": model, "version": info.version},
                    run_id=info.run_id,
                    details=details,
                )
                item["audit_seq"] = int(entry.seq)
            recorded.append(item)
    return recorded, skipped


def _digests(gov: ServerGovernance, source: str) -> dict[str, str]:
    from mlops_layer.errors import InputError

    if not source:
        raise InputError("the version names no source")
    digests: dict[str, str] = stores.served_artifacts(gov.registry).digests(source)
    return digests
