"""Daily operation after a decision: people acknowledge or resolve alerts, an alias move closes the alerts of the
version it replaced, and (with ``git_tags: true``) registrations and alias moves become GTO's git tags.
"""

from __future__ import annotations

import warnings
from typing import Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import MlopsError


def _alert_change(name: str, alert: str, action: str, comment: str, settings: Settings | None) -> Any:
    from mlops_layer.monitoring.alerts import load_alert_rules
    from mlops_layer.monitoring.lifecycle import change_alert

    cfg = _wiring.resolve(settings)
    rules = load_alert_rules(cfg.policy_file)
    with _wiring.evidence_trail(cfg) as trail:  # team mode: posted to the governing server
        return change_alert(
            cfg.state_dir,
            trail,
            name,
            alert,
            action=action,
            actor=cfg.actor,
            comment=comment,
            rules=rules,
        )


def alert_ack(name: str, alert: str, *, comment: str = "", settings: Settings | None = None) -> Any:
    """Acknowledge the open alert ``alert`` (rule name or alert id) of ``name``: it stays open, marked with who,
    when and ``comment``; audited as ``alert.acknowledged``. Returns an ``AlertChange``."""
    return _alert_change(name, alert, "ack", comment, settings)


def alert_resolve(name: str, alert: str, *, comment: str, settings: Settings | None = None) -> Any:
    """Close the open alert ``alert`` of ``name`` now (a comment saying why is required); audited as
    ``alert.resolved``. The rule's window starts afresh, so it may fire again. Returns an ``AlertChange``."""
    return _alert_change(name, alert, "resolve", comment, settings)


def after_alias_move(cfg: Settings, name: str, alias: str, version: str | None) -> tuple[str, ...]:
    """What follows an alias move through the layer: the replaced version's alerts on it close (audited), and
    with ``git_tags`` the GTO stage tag is written. Returns warnings (these side effects never undo the move)."""
    from mlops_layer.monitoring.alerts import load_alert_rules
    from mlops_layer.monitoring.lifecycle import close_superseded

    notes: list[str] = []
    if version is not None:
        try:
            with _wiring.acting_trail(cfg) as trail:
                close_superseded(
                    cfg.state_dir,
                    trail,
                    name,
                    alias,
                    version,
                    rules=load_alert_rules(cfg.policy_file),
                )
        except MlopsError as exc:
            notes.append(f"open alerts of the version @{alias} held before could not be closed: {exc}")
    if cfg.git_tags:
        notes += tag_alias(cfg, name, alias, version)
    return tuple(notes)


def _gto_ok(name: str, *others: str) -> str | None:
    from mlops_layer.adapters.gto_tags import gto_name_ok

    bad = [n for n in (name, *others) if not gto_name_ok(n)]
    if bad:
        return f"git_tags: GTO cannot name {', '.join(repr(b) for b in bad)} (letters, digits, '-', '_', '/'): no tag"
    return None


def _version_commit(cfg: Settings, name: str, version: str) -> str | None:
    from mlops_layer import tags

    info = _wiring.registry(cfg).get_version(name, version)
    commit = info.tags.get(tags.COMMIT)
    return str(commit) if commit else None


def tag_registration(cfg: Settings, name: str, version: str, commit: str) -> tuple[str, ...]:
    """``NAME@vN.0.0`` on the version's lineage commit (``git_tags: true``); problems come back as warnings."""
    from mlops_layer.adapters.gto_tags import tag_version

    problem = _gto_ok(name)
    if problem:
        return (problem,)
    try:
        tag_version(cfg.root, name, version, commit)
    except MlopsError as exc:
        return (f"git_tags: {exc.message}",)
    return ()


def tag_alias(cfg: Settings, name: str, alias: str, version: str | None) -> tuple[str, ...]:
    """GTO's stage tag for ``alias`` now at ``version`` (an unassignment when None); problems become warnings."""
    from mlops_layer.adapters.gto_tags import tag_stage, tag_version

    problem = _gto_ok(name, alias)
    if problem:
        return (problem,)
    try:
        commit = _version_commit(cfg, name, version) if version is not None else None
        if version is not None:
            if commit is None:
                return (f"git_tags: {name} v{version} records no git commit; no stage tag",)
            tag_version(cfg.root, name, version, commit)  # a version registered before git_tags was switched on
        tag_stage(cfg.root, name, alias, version, commit)
    except MlopsError as exc:
        return (f"git_tags: {exc.message}",)
    return ()


def tag_findings(cfg: Settings, registry: Any) -> list[Any]:
    """Where GTO's tags and MLflow disagree (``git_tags: true``): moved or missing version tags, stages that
    differ from the aliases. Returns ``audit.reconcile.Finding`` values."""
    from mlops_layer import tags
    from mlops_layer.adapters.gto_tags import compare, gto_name_ok, read_tags
    from mlops_layer.audit.reconcile import Finding

    out = []
    for model in registry.model_names():
        if not gto_name_ok(model):
            continue
        commits = {}
        for v in registry.versions(model):
            commit = v.tags.get(tags.COMMIT)
            if commit:
                commits[str(v.version)] = str(commit)
        aliases = {a: v for a, v in registry.get_aliases(model).items() if gto_name_ok(a)}
        for d in compare(model, read_tags(cfg.root, model), commits, aliases):
            # no alias on the finding: a tag is a view of the registry, its drift must not gate promotion
            out.append(Finding(f"git_tag.{d.kind}", model, d.message))
    return out


def warn_all(notes: tuple[str, ...]) -> None:
    for note in notes:
        warnings.warn(note, stacklevel=3)
