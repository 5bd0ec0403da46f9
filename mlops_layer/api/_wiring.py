"""The facade's wiring: settings, and the registry, tracking, audit store and governance trail built from them once.

Every api module opens its backends through here, so each is built one way and closed on every path.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.config import Settings, load_settings

if TYPE_CHECKING:
    from mlops_layer.adapters.governing_server import GoverningServer
    from mlops_layer.adapters.mlflow import MlflowRegistry, MlflowTracking
    from mlops_layer.audit.acting import ActingTrail
    from mlops_layer.audit.store import AuditStore
    from mlops_layer.governance.trail import AuditTrailView


def settings(root: Path | str | None = None, **overrides: Any) -> Settings:
    """Resolve the settings of the project at ``root`` (default: found from the cwd)."""
    return load_settings(Path(root) if root is not None else None, **overrides)


def resolve(cfg: Settings | None, root: Path | str | None = None) -> Settings:
    """The settings a facade function was given, or those of the project at ``root`` / the cwd."""
    return cfg or load_settings(Path(root) if root is not None else None)


def registry(cfg: Settings) -> MlflowRegistry:
    from mlops_layer.adapters.mlflow import MlflowRegistry

    return MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)


def governing_server(cfg: Settings) -> GoverningServer | None:
    """The governing server when the tracking URI runs ``mlflow server --app-name mlops``: then it decides, as the
    MLflow user the client logs in as, and the client needs no audit database."""
    from mlops_layer.adapters.governing_server import GoverningServer

    return GoverningServer.detect(cfg.tracking_uri)


def tracking(cfg: Settings) -> MlflowTracking:
    from mlops_layer.adapters.mlflow import MlflowTracking

    return MlflowTracking(cfg.tracking_uri, cfg.registry_uri)


@contextlib.contextmanager
def audit_store(cfg: Settings) -> Iterator[AuditStore]:
    """The raw audit store (reads, verification, checkpoints); with ``audit.checkpoint_key``, closing it after an
    append signs a checkpoint, so every command leaves the tail anchored."""
    from mlops_layer.api._trust import open_store
    from mlops_layer.errors import InputError

    if governing_server(cfg) is not None:
        # the server owns the trail: a local one would be a second trail nobody verifies, so never open one
        raise InputError(
            f"{cfg.tracking_uri} is a governing server: it owns the audit trail, and this command would read or "
            "write a local one",
            hint="in team mode use the commands the server answers (check, promote, rollback, approve, status, "
            "history, drift, monitor, alerts ack/resolve, audit log/show/export/verify/reconcile); an admin runs "
            "the others on the server's host with its settings",
        )
    store = open_store(cfg)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def acting_trail(cfg: Settings) -> Iterator[ActingTrail]:
    """The audit trail as the acting principal appends to it."""
    from mlops_layer.audit.acting import ActingTrail

    with audit_store(cfg) as store:
        yield ActingTrail(store, cfg.actor)


@contextlib.contextmanager
def evidence_trail(cfg: Settings) -> Iterator[Any]:
    """Where drift, monitoring and retraining entries go: the governing server in team mode (it records each entry
    as the logged-in user, who must hold a monitoring role or, for retraining, be a service account), else the
    acting trail."""
    server = governing_server(cfg)
    if server is not None:
        from mlops_layer.adapters.governing_server import EvidenceTrail

        yield EvidenceTrail(server)
        return
    with acting_trail(cfg) as trail:
        yield trail


@contextlib.contextmanager
def governance_trail(cfg: Settings) -> Iterator[AuditTrailView]:
    """The governance view of the trail (approvals, alias history, drift verdicts), acting as ``cfg.actor``."""
    from mlops_layer.governance.trail import AuditTrailView

    with audit_store(cfg) as store:
        yield AuditTrailView(store, cfg.actor)


def mirror_tags(
    registry: Any, name: str, version: str, tags: Mapping[str, Any], *, what: str = "tags", quiet: bool = False
) -> str | None:
    """Mirror governance state onto MLflow version tags: a side effect that may warn and go on, never stop a command.

    Returns the warning text when the registry refused (None when mirrored); ``quiet`` leaves reporting it to the
    caller (a result's ``warnings``) instead of a Python warning.
    """
    from mlops_layer.tags import mirror

    message = mirror(registry, name, version, tags, what=what)
    if message and not quiet:
        warnings.warn(message, stacklevel=3)
    return message
