"""Who acts on the governing server: the authenticated MLflow login mapped to its principal through the committed
policy (``principals:``), and who is accountable for a version a service account trained.

Every governance action is taken as the principal; an audit entry whose actor differs from the login records the
login as ``details.mlflow_user``, so the trail names both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MLFLOW_USER = "mlflow_user"


class LoginStore:
    """The audit store as one MLflow login writes it: entries acted by another name (the login's principal) carry
    the login as ``details.mlflow_user``. Everything else is the store itself."""

    def __init__(self, store: Any, login: str) -> None:
        self._store = store
        self.login = login

    def append(self, action: str, *, actor: str, details: Mapping[str, Any] | None = None, **rest: Any) -> Any:
        if actor != self.login:
            details = {**(details or {}), MLFLOW_USER: self.login}
        return self._store.append(action, actor=actor, details=details, **rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def login_details(login: str, principal: str) -> dict[str, str]:
    return {MLFLOW_USER: login} if login != principal else {}


def registration_trainer(
    trainer: str | None,
    model: str,
    policy: Any,
    cards_dir: Path,
    allowed_signers: Path,
    created_ms: object,
) -> tuple[Any, dict[str, Any]]:
    """Who trained a version being registered (``principals.Trainer``) and what the registration entry records about
    it: a service account's run is attributed to the signer of the committed training statement on the card."""
    from mlops_layer.errors import MlopsError
    from mlops_layer.governance.approvals import default_verifier
    from mlops_layer.governance.cards import load_card
    from mlops_layer.governance.principals import resolve_trainer

    statements: tuple[dict[str, Any], ...] = ()
    if policy.principals.is_service_account(trainer):
        try:
            statements = load_card(cards_dir, model).training_statements
        except MlopsError:
            statements = ()
    at = datetime.now(timezone.utc)
    if isinstance(created_ms, (int, str)) and str(created_ms).isdigit():
        at = datetime.fromtimestamp(int(created_ms) / 1000, timezone.utc)
    found = resolve_trainer(trainer, model, policy.principals, statements, allowed_signers, default_verifier(), at)
    details: dict[str, Any] = {"trained_by": found.principal}
    if found.via:
        details.update(trained_via=found.via, training_statement=found.statement)
    if found.also:
        details["also_trained_by"] = list(found.also)
    if found.problem:
        details["trainer_problem"] = found.problem
    return found, details
