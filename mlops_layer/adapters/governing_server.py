"""Client of the governing server (``mlflow server --app-name mlops``): the governance endpoints over plain HTTP.

No mlflow import: a cold ``mlops check`` in team mode is one Python start plus two small requests. Credentials are
MLflow's own variables (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``, or ``MLFLOW_TRACKING_TOKEN``);
the server authenticates them through MLflow's basic-auth, so the actor is whoever logged in.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mlops_layer.errors import (
    ApprovalError,
    BackendError,
    ConfigError,
    InputError,
    MlopsError,
    NotFoundError,
    PolicyViolation,
)

PREFIX = "/mlops/api/v1/"
_detected: dict[str, bool] = {}


class GoverningServer:
    """The governance endpoints of one server; every call authenticated with MLflow's credentials."""

    def __init__(self, url: str, *, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.username = os.environ.get("MLFLOW_TRACKING_USERNAME") or None
        self.password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or ""
        self.token = os.environ.get("MLFLOW_TRACKING_TOKEN") or None

    @classmethod
    def detect(cls, tracking_uri: str) -> GoverningServer | None:
        """The server when ``tracking_uri`` is an http(s) MLflow server running the mlops app, else None."""
        if not tracking_uri.startswith(("http://", "https://")):
            return None
        if tracking_uri not in _detected:
            server = cls(tracking_uri, timeout=10.0)
            try:
                info = server._request("GET", "info", authenticated=False)
                _detected[tracking_uri] = isinstance(info, dict) and info.get("app") == "mlops"
            except MlopsError:
                _detected[tracking_uri] = False
        return cls(tracking_uri) if _detected[tracking_uri] else None

    # -- transport -----------------------------------------------------------------------------------------------
    def _request(
        self, method: str, name: str, params: dict[str, Any] | None = None, *, authenticated: bool = True
    ) -> Any:
        url = self.url + PREFIX + name
        data = None
        if method == "GET" and params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        elif params is not None:
            data = json.dumps(params).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if authenticated:
            if self.token:
                req.add_header("Authorization", f"Bearer {self.token}")
            elif self.username:
                raw = f"{self.username}:{self.password}".encode()
                req.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the configured server
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _error(exc, self.url) from None
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            raise BackendError(f"the governing server {self.url} did not answer: {exc}") from None

    # -- endpoints -----------------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", "info")
        return body

    def check(self, model: str, version: str, to: str) -> Any:
        return decision_from_dict(self._request("POST", "check", {"model": model, "version": version, "to": to}))

    def promote(self, model: str, version: str, to: str) -> Any:
        return result_from_dict(self._request("POST", "promote", {"model": model, "version": version, "to": to}))

    def rollback(self, model: str, to: str) -> Any:
        return result_from_dict(self._request("POST", "rollback", {"model": model, "to": to}))

    def approve(
        self,
        model: str,
        version: str,
        to: str,
        *,
        key_path: Path,
        comment: str | None = None,
        reject: bool = False,
        action: str = "promote",
    ) -> Any:
        """Sign the statement locally with the approver's key; the server verifies it and that its signer is the
        authenticated user's principal (its MLflow username, or what policy.yaml `principals:` maps it to)."""
        from dataclasses import replace

        from mlops_layer.governance.approvals import (
            CandidateIdentity,
            SignedApproval,
            default_signer,
            make_statement,
            sign_statement,
        )

        if not self.username:
            raise ConfigError("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD: approvals are signed as you")
        ident = self._request("GET", "approval-identity", {"model": model, "version": version})
        # the principal the server maps this login to (policy.yaml `principals:`), which the key must be trusted for
        me = self._request("GET", "info", {})
        statement = make_statement(
            CandidateIdentity(**ident),
            to,
            str(me.get("principal") or self.username),
            decision="reject" if reject else "approve",
            action=action,
            comment=comment,
        )
        signed = sign_statement(statement, Path(key_path).expanduser(), default_signer())
        body = self._request("POST", "approve", signed.to_dict())
        return replace(SignedApproval.from_dict(body), audit_seq=body.get("audit_seq"))

    def history(self, model: str, alias: str | None, at: str | None) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", "history", {"model": model, "alias": alias, "at": at})
        return body

    def history_spans(self, model: str, alias: str | None) -> list[Any]:
        """Who held each alias of ``model`` and when, from the server's trail (``audit.history.AliasSpan``)."""
        from datetime import datetime

        from mlops_layer.audit.history import AliasSpan

        body = self.history(model, alias, None)
        return [
            AliasSpan(
                model=str(s["model"]),
                alias=str(s["alias"]),
                version=str(s["version"]),
                start=datetime.fromisoformat(s["start"]),
                end=datetime.fromisoformat(s["end"]) if s.get("end") else None,
                start_seq=int(s["start_seq"]),
                end_seq=s.get("end_seq"),
                actor=str(s["actor"]),
                via=s.get("via"),
                ended_by=s.get("ended_by"),
            )
            for s in body.get("spans", [])
        ]

    def audit_log(self, **params: Any) -> list[dict[str, Any]]:
        return list(self._request("GET", "audit/log", params)["entries"])

    def audit_entries(
        self, *, model: str | None, action: str | None, since: str | None, limit: int | None
    ) -> list[Any]:
        """The server's trail entries (``audit.entry.AuditEntry``, rebuilt from the exact hashed bodies)."""
        found = self.audit_log(model=model, action=action, since=since, limit=limit)
        return [entry_from_dict(e) for e in found]

    def audit_entry(self, seq: int) -> Any:
        """One entry of the server's trail (``audit.entry.AuditEntry``), rebuilt from its exact hashed body."""
        return entry_from_dict(self._request("GET", "audit/show", {"seq": seq}))

    def audit_export(self, **params: Any) -> dict[str, Any]:
        """``mlops audit export`` of the server's trail: ``{"format", "count", "size", "head", "text"}``."""
        body: dict[str, Any] = self._request("GET", "audit/export", params)
        return body

    def may_post_evidence(self) -> dict[str, Any]:
        """The caller's monitoring roles; PolicyViolation (the server's 403) when it holds none."""
        body: dict[str, Any] = self._request("GET", "evidence/may-post")
        return body

    def post_evidence(self, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Post drift (``kind`` "drift") or monitoring evidence; the server records it as the authenticated user."""
        body: dict[str, Any] = self._request("POST", f"evidence/{kind}", entry)
        return body

    def verify(self, *, deep: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", "audit/verify", {"deep": "true"} if deep else None)
        return body

    def verify_report(self, *, deep: bool = False) -> Any:
        """The server's verification of its own trail (``audit.verify.VerifyReport``)."""
        return verify_report_from_dict(self.verify(deep=deep))

    def reconcile(self) -> dict[str, Any]:
        body: dict[str, Any] = self._request("POST", "audit/reconcile", {})
        return body

    def reconcile_report(self) -> Any:
        """The server's comparison of its registry with its trail (``audit.reconcile.ReconcileReport``), after it
        completed any promotion a killed worker left half-done."""
        from mlops_layer.audit.reconcile import Finding, ReconcileReport

        body = self.reconcile()
        fields = ("kind", "model", "message", "alias", "version", "expected", "actual", "pending_seq")
        findings = tuple(Finding(**{k: f.get(k) for k in fields}) for f in body.get("findings") or ())
        return ReconcileReport(
            ok=bool(body.get("ok")),
            findings=findings,
            models_checked=tuple(str(m) for m in body.get("models_checked") or ()),
            incident_seqs=tuple(int(s) for s in body.get("incident_seqs") or ()),
        )

    def migrate(self, *, dry_run: bool = False) -> dict[str, Any]:
        """``mlops migrate`` done by the server (MLflow admins only): ``{"recorded": [...], "skipped": [...]}``."""
        body: dict[str, Any] = self._request("POST", "migrate", {"dry_run": dry_run})
        return body

    def report_pages(self, name: str | None, *, use_registry: bool = True) -> tuple[list[str], list[tuple[str, str]]]:
        """The report pages the server renders from its trail, registry and committed cards: (models, [(file, html)])."""
        body = self._request("GET", "report", {"model": name, "registry": "true" if use_registry else "false"})
        pages = [(str(p["file"]), str(p["html"])) for p in body.get("pages") or ()]
        return [str(m) for m in body.get("models") or ()], pages

    def status(self, model: str | None) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", "status", {"model": model})
        return body


class EvidenceTrail:
    """The trail as ``mlops drift`` and ``mlops monitor`` append to it, in team mode: each entry is posted to the
    governing server, which records it as the logged-in user (who must hold a monitoring role)."""

    DRIFT = ("drift.checked",)

    def __init__(self, server: GoverningServer) -> None:
        self.server = server
        self.recomputed: list[Any] = []

    def append(
        self,
        action: str,
        *,
        subject: Any = None,
        run_id: str | None = None,
        decision: str | None = None,
        reasons: Any = None,
        details: Any = None,
        git_commit: str | None = None,
        dvc_hashes: Any = None,
    ) -> int:
        entry = {
            "action": action,
            "subject": dict(subject or {}),
            "run_id": run_id,
            "decision": decision,
            "reasons": list(reasons or ()),
            "details": json.loads(json.dumps(dict(details or {}), default=str)),
        }
        body = self.server.post_evidence("drift" if action in self.DRIFT else "monitoring", entry)
        self.recomputed.append(body.get("recomputed"))
        return int(body["audit_seq"])


def _error(exc: urllib.error.HTTPError, url: str) -> MlopsError:
    try:
        body = json.loads(exc.read() or b"{}")
        message = str(body.get("message") or body)
    except ValueError:
        message = f"HTTP {exc.code}"
    if exc.code == 401:
        return ConfigError(
            f"the governing server {url} wants credentials",
            hint="set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (your MLflow login)",
        )
    if exc.code == 403:
        return ApprovalError(message) if "approv" in message.lower() else PolicyViolation(message)
    if exc.code == 404:
        return NotFoundError(message)
    if exc.code in (400, 409, 422):
        return InputError(message)
    return BackendError(f"the governing server {url} failed: {message}")


def decision_from_dict(body: dict[str, Any]) -> Any:
    from mlops_layer.governance.decisions import Decision, RuleResult

    return Decision(
        allowed=bool(body["allowed"]),
        rules=tuple(
            RuleResult(r["name"], bool(r["passed"]), r.get("observed"), r.get("expected"), r.get("message", ""))
            for r in body.get("rules", [])
        ),
        policy_hash=str(body.get("policy_hash", "")),
        model=str(body["model"]),
        version=str(body["version"]),
        target=str(body["target"]),
        card_hash=body.get("card_hash"),
        action=str(body.get("action", "promote")),
        auto_promote=bool(body.get("auto_promote", False)),
        evaluated_at=str(body.get("evaluated_at", "")),
        current_holder=body.get("current_holder"),
        audit_seq=body.get("audit_seq"),
    )


def result_from_dict(body: dict[str, Any]) -> Any:
    from mlops_layer.governance.ports import PromotionResult

    return PromotionResult(
        decision=decision_from_dict(body),
        moved=bool(body.get("moved")),
        previous=body.get("previous"),
        current=body.get("current"),
        audit_seq=body.get("audit_seq"),
        completion_seq=body.get("completion_seq"),
        warnings=tuple(body.get("warnings") or ()),
    )


def entry_from_dict(body: dict[str, Any]) -> Any:
    """An ``AuditEntry`` from the server's answer: the exact body text that was hashed, with its chain fields."""
    from mlops_layer.audit.entry import AuditEntry

    if not isinstance(body.get("body"), str):
        raise BackendError("the governing server sent an audit entry without its body (upgrade the server)")
    return AuditEntry(int(body["seq"]), str(body["prev_hash"]), str(body["entry_hash"]), body["body"].encode())


def verify_report_from_dict(body: dict[str, Any]) -> Any:
    """A ``VerifyReport`` from ``VerifyReport.to_dict()`` as the server sent it (signatures stay on the server)."""
    from mlops_layer.audit.checkpoints import Checkpoint
    from mlops_layer.audit.verify import CheckpointResult, Problem, VerifyReport

    return VerifyReport(
        ok=bool(body["ok"]),
        size=int(body["size"]),
        head=str(body["head"]),
        problems=tuple(
            Problem(str(p["kind"]), str(p["message"]), p.get("seq"), p.get("checkpoint"))
            for p in body.get("problems") or ()
        ),
        checkpoints=tuple(
            CheckpointResult(
                Checkpoint(int(c["size"]), str(c["head"]), str(c["time"]), "", source=str(c.get("source") or "")),
                c.get("signer"),
                bool(c["ok"]),
                c.get("problem"),
            )
            for c in body.get("checkpoints") or ()
        ),
        anchored=int(body.get("anchored") or 0),
        warnings=tuple(body.get("warnings") or ()),
        source=str(body.get("source") or ""),
        deep=bool(body.get("deep")),
        elapsed_s=float(body.get("elapsed_s") or 0.0),
    )
