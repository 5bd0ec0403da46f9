"""Status: registered models, their versions and aliases, open alerts, waiting approvals and the trail's head."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlops_layer import tags
from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import MlopsError


@dataclass(frozen=True)
class VersionStatus:
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    git_commit: str | None
    created: str | None
    decision: dict[str, str]
    drift: str | None


@dataclass(frozen=True)
class ModelStatus:
    name: str
    aliases: dict[str, str]
    versions: tuple[VersionStatus, ...]
    open_alerts: tuple[str, ...] = ()
    pending_approvals: tuple[str, ...] = ()  # "v3 -> @champion approved by alice@example.com", not yet promoted
    ungoverned_aliases: tuple[str, ...] = ()  # "@champion -> v3 (the trail says v2)": moved outside governance


@dataclass(frozen=True)
class StatusReport:
    tracking_uri: str
    models: tuple[ModelStatus, ...]
    audit: dict[str, Any]


def pending_approvals(cfg: Settings, model: str, aliases: dict[str, str]) -> tuple[str, ...]:
    """Signed approvals in the trail for a version that does not hold the approved alias yet."""
    from datetime import datetime, timezone

    from mlops_layer.audit import actions
    from mlops_layer.governance.rules_approvals import DEFAULT_APPROVAL_AGE_DAYS

    pending: dict[tuple[str, str], dict[str, datetime]] = {}
    try:
        with _wiring.audit_store(cfg) as trail:
            for entry in trail.entries(model=model):
                key = (str(entry.subject.get("version")), str(entry.subject.get("alias")))
                if entry.action == actions.APPROVAL_GRANTED:
                    pending.setdefault(key, {})[entry.actor] = entry.timestamp
                elif entry.action == actions.APPROVAL_WITHDRAWN and key in pending:
                    pending[key].pop(entry.actor, None)
                elif entry.action == actions.ALIAS_SET:
                    pending.pop(key, None)  # the approval was used
    except MlopsError:
        return ()
    now = datetime.now(timezone.utc)

    def who(signers: dict[str, datetime]) -> str:
        out = []
        for name, at in sorted(signers.items()):
            days = (now - at).total_seconds() / 86400
            out.append(f"{name} (expired: {days:.0f} days old)" if days > DEFAULT_APPROVAL_AGE_DAYS else name)
        return ", ".join(out)

    return tuple(
        f"v{version} -> @{alias} approved by {who(signers)}"
        for (version, alias), signers in sorted(pending.items())
        if signers and aliases.get(alias) != version
    )


def alert_lines(cfg: Settings, name: str) -> tuple[str, ...]:
    """Open alerts as status shows them: the rule, the version and alias it was raised on, who acknowledged it."""
    from mlops_layer.monitoring.state import load_state

    out = []
    for rule, st in sorted(load_state(cfg.state_dir, name).rules.items()):
        if st.status != "open":
            continue
        where = f"v{st.fired_version}" + (f"@{st.fired_alias}" if st.fired_alias else "")
        ack = ""
        if st.acked_by:
            ack = f"; acknowledged by {st.acked_by}" + (f": {st.ack_comment}" if st.ack_comment else "")
        out.append(f"{rule} on {where} since {st.fired_at}{ack}")
    return tuple(out)


def ungoverned_aliases(cfg: Settings, model: str, aliases: dict[str, str]) -> tuple[str, ...]:
    """Aliases whose registry holder is not what the trail says governance put there."""
    found = []
    try:
        with _wiring.governance_trail(cfg) as view:
            for alias, holder in sorted(aliases.items()):
                record = view.alias_record(model, alias)
                if record.tracked and record.version != holder:
                    found.append(f"@{alias} -> v{holder} (the trail says v{record.version or '(unset)'})")
    except MlopsError:
        return ()
    return tuple(found)


def _decision_word(tag: str) -> str:
    """The mirrored decision tag holds JSON; status shows its verdict."""
    try:
        body = json.loads(tag)
    except ValueError:
        return tag
    if isinstance(body, dict) and "allowed" in body:
        return "allowed" if body["allowed"] else "refused"
    return tag


def status(name: str | None = None, *, settings: Settings | None = None) -> StatusReport:
    """Registered models, their versions and aliases, governance tags, and the audit trail's head."""
    cfg = _wiring.resolve(settings)
    if (server := _wiring.governing_server(cfg)) is not None:  # team mode: the server's registry and trail
        return status_from_dict(server.status(name), cfg.tracking_uri)
    registry = _wiring.registry(cfg)
    names = [name] if name else registry.model_names()
    models = []
    for model in names:
        versions = registry.versions(model)
        aliases = registry.get_aliases(model)
        models.append(
            ModelStatus(
                name=model,
                aliases=aliases,
                open_alerts=alert_lines(cfg, model),
                pending_approvals=pending_approvals(cfg, model, aliases),
                ungoverned_aliases=ungoverned_aliases(cfg, model, aliases),
                versions=tuple(
                    VersionStatus(
                        version=v.version,
                        aliases=tuple(sorted(a for a, held in aliases.items() if held == v.version)),
                        run_id=v.run_id,
                        git_commit=v.tags.get(tags.COMMIT),
                        created=v.creation_time.isoformat(timespec="seconds") if v.creation_time else None,
                        decision={
                            k.removeprefix(tags.DECISION_PREFIX): _decision_word(val)
                            for k, val in v.tags.items()
                            if k.startswith(tags.DECISION_PREFIX)
                        },
                        drift=v.tags.get(tags.DRIFT_STATUS),
                    )
                    for v in versions
                ),
            )
        )
    audit: dict[str, Any] = {"url": cfg.audit_url}
    try:
        with _wiring.audit_store(cfg) as trail:
            size, head = trail.head()
        audit.update(size=size, head=head)
    except MlopsError as exc:
        audit.update(error=str(exc))
    return StatusReport(tracking_uri=cfg.tracking_uri, models=tuple(models), audit=audit)


def status_from_dict(body: dict[str, Any], tracking_uri: str) -> StatusReport:
    """The governing server's status answer as a ``StatusReport`` (its store URLs are not sent: ``tracking_uri`` is
    the server the client asked)."""
    models = tuple(
        ModelStatus(
            name=str(m["name"]),
            aliases={str(k): str(v) for k, v in (m.get("aliases") or {}).items()},
            versions=tuple(
                VersionStatus(
                    version=str(v["version"]),
                    aliases=tuple(v.get("aliases") or ()),
                    run_id=v.get("run_id"),
                    git_commit=v.get("git_commit"),
                    created=v.get("created"),
                    decision={str(k): str(val) for k, val in (v.get("decision") or {}).items()},
                    drift=v.get("drift"),
                )
                for v in m.get("versions") or ()
            ),
            open_alerts=tuple(m.get("open_alerts") or ()),
            pending_approvals=tuple(m.get("pending_approvals") or ()),
            ungoverned_aliases=tuple(m.get("ungoverned_aliases") or ()),
        )
        for m in body.get("models") or ()
    )
    audit = {"url": f"{tracking_uri} (the governing server's trail)", **dict(body.get("audit") or {})}
    return StatusReport(tracking_uri=tracking_uri, models=models, audit=audit)
