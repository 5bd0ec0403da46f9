"""The governance endpoints under ``/mlops/api/v1/``: what the CLI calls in team mode.

Every call is authenticated through MLflow's basic-auth (``authenticate_request``); the caller is the actor. The
answers are the same dictionaries ``--json`` prints locally, so the CLI renders them unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from mlops_layer.errors import InputError, MlopsError
from mlops_layer.server import evidence, migrate
from mlops_layer.server.governing import ServerGovernance

PREFIX = "/mlops/api/v1/"
API_VERSION = 1


def jsonable(value: Any) -> Any:
    """A result object as JSON: its ``to_dict()``, a dataclass's fields, or plain values."""
    from datetime import datetime
    from pathlib import Path

    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _need(params: dict[str, Any], *keys: str) -> list[str]:
    missing = [k for k in keys if not str(params.get(k) or "")]
    if missing:
        raise InputError(f"missing parameter{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    return [str(params[k]) for k in keys]


class Endpoints:
    """Dispatches ``/mlops/api/v1/<name>`` to one method per endpoint."""

    def __init__(self, governance: Callable[[], ServerGovernance]) -> None:
        self.governance = governance
        self.routes: dict[tuple[str, str], Callable[[str, dict[str, Any]], Any]] = {
            ("info", "GET"): self.info,
            ("check", "POST"): self.check,
            ("promote", "POST"): self.promote,
            ("rollback", "POST"): self.rollback,
            ("approval-identity", "GET"): self.approval_identity,
            ("approve", "POST"): self.approve,
            ("status", "GET"): self.status,
            ("history", "GET"): self.history,
            ("audit/log", "GET"): self.audit_log,
            ("audit/verify", "GET"): self.audit_verify,
            ("audit/reconcile", "POST"): self.audit_reconcile,
            ("audit/show", "GET"): lambda user, p: evidence.audit_show(self.governance(), user, _need(p, "seq")[0]),
            ("audit/export", "GET"): lambda user, p: evidence.audit_export(self.governance(), user, p),
            ("report", "GET"): self.report,
            ("evidence/may-post", "GET"): lambda user, p: evidence.may_post(self.governance(), user),
            ("evidence/drift", "POST"): lambda user, p: evidence.record_evidence(self.governance(), user, p, "drift"),
            ("evidence/monitoring", "POST"): lambda user, p: evidence.record_evidence(
                self.governance(), user, p, "monitoring"
            ),
            ("migrate", "POST"): lambda user, p: migrate.migrate(self.governance(), user, p),
        }

    def before_request(self) -> Any:
        """Runs before basic-auth's hook (which would fail-closed on routes it does not know) and authenticates
        through it; unauthenticated calls get basic-auth's own 401."""
        from flask import Response, jsonify, request

        if not request.path.startswith(PREFIX):
            return None
        from mlflow.server.auth import authenticate_request

        from mlops_layer.server.guard import error_response, request_params

        name = request.path[len(PREFIX) :].strip("/")
        handler = self.routes.get((name, request.method))
        if handler is None:
            return error_response(InputError(f"no governance endpoint {request.method} {request.path}"))
        if name == "info" and request.authorization is None:
            return jsonify({"app": "mlops", "api": API_VERSION})  # detection by clients, before they log in
        auth = authenticate_request()
        if isinstance(auth, Response):
            return auth
        try:
            return jsonify(handler(str(auth.username), request_params()))
        except MlopsError as exc:
            return error_response(exc)

    # -- endpoints -------------------------------------------------------------------------------------------------
    def info(self, user: str, params: dict[str, Any]) -> Any:
        snap = self.governance().snapshot()
        principal = self.governance().principal(user, snap)  # what approvals must be signed as
        return {
            "app": "mlops",
            "api": API_VERSION,
            "user": user,
            "principal": principal,
            "governance_commit": snap.commit,
            "ref": snap.ref,
        }

    def check(self, user: str, params: dict[str, Any]) -> Any:
        model, version, to = _need(params, "model", "version", "to")
        decision, commit = self.governance().check(user, model, version, to)
        return {**jsonable(decision), "governance_commit": commit}

    def promote(self, user: str, params: dict[str, Any]) -> Any:
        model, version, to = _need(params, "model", "version", "to")
        return jsonable(self.governance().move_alias(user, model, to, version))

    def rollback(self, user: str, params: dict[str, Any]) -> Any:
        model, to = _need(params, "model", "to")
        return jsonable(self.governance().move_alias(user, model, to, "", rollback=True))

    def approval_identity(self, user: str, params: dict[str, Any]) -> Any:
        model, version = _need(params, "model", "version")
        return self.governance().approval_identity(model, version)

    def approve(self, user: str, params: dict[str, Any]) -> Any:
        return jsonable(self.governance().approve(user, params))

    def status(self, user: str, params: dict[str, Any]) -> Any:
        from mlops_layer import api

        gov = self.governance()
        report = api.status(params.get("model") or None, settings=gov.settings(user))
        # the server's store URLs carry its database credentials: never sent to clients
        audit = {k: v for k, v in report.audit.items() if k != "url"}
        return jsonable(dataclasses.replace(report, tracking_uri="", audit=audit))

    def report(self, user: str, params: dict[str, Any]) -> Any:
        """The HTML report pages, rendered here from the server's trail, registry and committed cards."""
        from mlops_layer.api.report import rendered_pages

        use_registry = str(params.get("registry") or "true").lower() not in ("0", "false", "no")
        models, files = rendered_pages(
            params.get("model") or None, use_registry=use_registry, settings=self.governance().settings(user)
        )
        return {"models": models, "pages": [{"file": f, "html": h} for f, h in files]}

    def history(self, user: str, params: dict[str, Any]) -> Any:
        from mlops_layer import api

        (model,) = _need(params, "model")
        at = api.parse_time(str(params["at"])) if params.get("at") else None
        report = api.history(model, alias=params.get("alias") or None, at=at, settings=self.governance().settings(user))
        return jsonable(report)

    def audit_log(self, user: str, params: dict[str, Any]) -> Any:
        from mlops_layer import api

        try:
            limit = int(params["limit"]) if params.get("limit") else None
        except ValueError:
            raise InputError(f"limit must be an integer, got {params['limit']!r}") from None
        entries = api.audit_log(
            model=params.get("model") or None,
            action=params.get("action") or None,
            since=api.parse_time(str(params["since"])) if params.get("since") else None,
            limit=limit,
            settings=self.governance().settings(user),
        )
        # with the exact hashed body, so clients rebuild the very entries (and could re-hash them)
        return {"entries": [{**jsonable(e), **e.to_record()} for e in entries]}

    def audit_verify(self, user: str, params: dict[str, Any]) -> Any:
        from mlops_layer import api

        # the snapshot is already the committed governance at the ref: no working copy to compare with
        deep = str(params.get("deep") or "").lower() in ("1", "true", "yes")
        return jsonable(api.verify_audit(settings=self.governance().settings(user), no_git=True, deep=deep))

    def audit_reconcile(self, user: str, params: dict[str, Any]) -> Any:
        from mlops_layer import api

        gov = self.governance()
        recovered = gov.recover_all()
        report = api.reconcile_audit(settings=gov.settings(user), registry=gov.registry)
        return {**jsonable(report), "recovered": recovered}
