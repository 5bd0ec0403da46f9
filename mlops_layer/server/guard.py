"""The registry guard: which MLflow REST calls touch governed state, and what the server does with each.

Runs as a Flask ``before_request`` hook *after* MLflow basic-auth's own (so the caller is authenticated and holds
MLflow's permission for the call). Alias sets run the promotion policy as the caller and, when allowed, the server
moves the alias itself inside the decision's lock; the other governed changes are admin-only and audited either
way. ``after_request`` records who created runs and model versions. Artifact uploads arrive on MLflow's native
FastAPI routes, so :class:`ArtifactGuard` covers them as ASGI middleware.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from mlops_layer.errors import MlopsError
from mlops_layer.server.governing import SERVER_OWNED_TAGS, ServerGovernance

_API = re.compile(r"^(?:/.*)?/(?:ajax-)?api/\d+\.\d+/mlflow/(?P<rest>[a-z0-9/_-]+)$")
_ARTIFACTS = re.compile(r"^(?:/.*)?/(?:ajax-)?api/\d+\.\d+/mlflow-artifacts/(?:artifacts|mpu/[a-z]+)/(?P<path>.+)$")

ADMIN_ONLY = {
    ("registered-models/alias", "DELETE"): "delete an alias",
    ("registered-models/delete", "DELETE"): "delete a registered model",
    ("registered-models/rename", "POST"): "rename a registered model",
    ("model-versions/delete", "DELETE"): "delete a model version",
}
# MLflow 3's logged models: /logged-models/<m-id>[/tags[/<key>]|/params]; tag keys may hold dots and capitals
_LOGGED = re.compile(
    r"^(?:/.*)?/(?:ajax-)?api/\d+\.\d+/mlflow/logged-models/(?P<model_id>m-[0-9a-f]+)(?P<sub>/tags(?:/.+)?|/params)?$"
)
LOGGED_MODEL_CHANGES = {
    ("/tags", "PATCH"): "set a logged model tag",
    ("/tags/", "DELETE"): "delete a logged model tag",
    ("/params", "POST"): "log logged model params",
    ("", "PATCH"): "finalize the logged model",
    ("", "DELETE"): "delete the logged model",
}
VERSION_TAGS = {("model-versions/set-tag", "POST"), ("model-versions/delete-tag", "DELETE")}
RUN_CHANGES = {
    ("runs/log-metric", "POST"): "log a metric",
    ("runs/log-parameter", "POST"): "log a parameter",
    ("runs/log-batch", "POST"): "log metrics/params/tags",
    ("runs/set-tag", "POST"): "set a run tag",
    ("runs/delete-tag", "POST"): "delete a run tag",
    ("runs/update", "POST"): "update the run",
    ("runs/delete", "POST"): "delete the run",
    ("runs/log-inputs", "POST"): "log inputs",
    ("runs/outputs", "POST"): "log outputs",
    ("runs/log-model", "POST"): "log a model",
}


def request_params() -> dict[str, Any]:
    """The call's parameters: JSON body (POST/PATCH/DELETE from MlflowClient) merged over the query string."""
    from flask import request

    params: dict[str, Any] = dict(request.args.items())
    body = request.get_json(silent=True, force=True) if request.data else None
    if isinstance(body, dict):
        params.update(body)
    return params


def deny(message: str, status: int = 403, code: str = "PERMISSION_DENIED") -> Any:
    """MLflow's error shape, so ``MlflowClient`` raises ``MlflowException`` with this code and message."""
    from flask import jsonify

    resp = jsonify({"error_code": code, "message": message})
    resp.status_code = status
    return resp


def error_response(exc: MlopsError) -> Any:
    from mlops_layer.errors import BackendError, NotFoundError

    if isinstance(exc, NotFoundError):
        return deny(str(exc), 404, "RESOURCE_DOES_NOT_EXIST")
    if isinstance(exc, BackendError):
        return deny(str(exc), 503, "TEMPORARILY_UNAVAILABLE")
    if exc.exit_code == 1:
        return deny(str(exc), 403, "PERMISSION_DENIED")
    return deny(str(exc), 400, "INVALID_PARAMETER_VALUE")


def refusal_message(move: Any) -> str:
    decision = move.result.decision
    failed = "; ".join(decision.reasons()) or "refused"
    return (
        f"mlops policy refused {decision.model}@{decision.target} -> v{decision.version} "
        f"(audit #{decision.audit_seq}, governance {move.commit[:12]}): {failed}"
    )


def is_admin(user: str) -> bool:
    from mlflow.server.auth import store

    try:
        return bool(store.get_user(user).is_admin)
    except Exception:  # noqa: BLE001 - an unknown user is simply not an admin
        return False


class RegistryGuard:
    """The before/after-request hooks, bound to one worker's :class:`ServerGovernance`."""

    def __init__(self, governance: Callable[[], ServerGovernance]) -> None:
        self.governance = governance

    # -- before ------------------------------------------------------------------------------------------------
    def before_request(self) -> Any:
        from flask import g, request

        user = getattr(g, "mlflow_authenticated_user", None)
        if user is None:  # unprotected route; basic-auth already answered 401 for protected ones
            return None
        logged = _LOGGED.match(request.path)
        if logged is not None:
            sub = logged.group("sub") or ""
            what = LOGGED_MODEL_CHANGES.get(("/tags/" if sub.startswith("/tags/") else sub, request.method))
            try:
                return self._logged_model_change(user, what, logged.group("model_id")) if what else None
            except MlopsError as exc:
                return error_response(exc)
        match = _API.match(request.path)
        if match is None:
            return None
        route = (match.group("rest"), request.method)
        try:
            if route == ("registered-models/alias", "POST"):
                return self._set_alias(user, request_params())
            if route in ADMIN_ONLY:
                return self._admin_only(user, ADMIN_ONLY[route], request_params(), route)
            if route in VERSION_TAGS:
                params = request_params()
                if str(params.get("key", "")).startswith("mlops."):
                    return self._admin_only(user, f"change the version tag {params.get('key')}", params, route)
                return None
            if route in RUN_CHANGES:
                return self._run_change(user, RUN_CHANGES[route], request_params(), route)
        except MlopsError as exc:
            return error_response(exc)
        return None

    def _set_alias(self, user: str, params: Mapping[str, Any]) -> Any:
        from flask import jsonify

        name, alias, version = str(params.get("name", "")), str(params.get("alias", "")), str(params.get("version", ""))
        if not (name and alias and version):
            return None  # let MLflow answer the malformed call
        move = self.governance().move_alias(user, name, alias, version)
        if not move.result.allowed:
            return deny(refusal_message(move))
        return jsonify({})  # MLflow's SetRegisteredModelAlias response: the server moved the alias itself

    def _admin_only(self, user: str, what: str, params: Mapping[str, Any], route: tuple[str, str]) -> Any:
        gov = self.governance()
        subject = {k: str(params[k]) for k in ("name", "version", "alias", "key") if params.get(k) is not None}
        subject["model"] = subject.pop("name", "")
        if not is_admin(user):
            seq = gov.record_guard(user, what, subject, allowed=False, reason=f"only an admin may {what}")
            return deny(f"mlops: only an admin may {what} on a governed registry (refusal audited as #{seq})")
        gov.record_guard(user, what, subject, allowed=True, reason="admin")
        if route == ("registered-models/alias", "DELETE") and subject.get("alias"):
            gov.record_alias_deleted(user, subject["model"], subject["alias"])
        return None

    def _run_change(self, user: str, what: str, params: Mapping[str, Any], route: tuple[str, str]) -> Any:
        run_id = str(params.get("run_id") or params.get("run_uuid") or "")
        if not run_id:
            return None
        keys = [str(params.get("key", ""))] if route[0] in ("runs/set-tag", "runs/delete-tag") else []
        keys += [str(t.get("key", "")) for t in params.get("tags") or () if isinstance(t, dict)]
        owned = [k for k in keys if k in SERVER_OWNED_TAGS]
        gov = self.governance()
        if owned:
            reason = f"{', '.join(owned)} is recorded by the server from the authenticated requests"
        elif gov.run_backs_version(run_id):
            reason = f"run {run_id} backs a registered model version: its evidence is frozen"
        else:
            return None
        if is_admin(user):
            gov.record_guard(user, what, {}, allowed=True, reason=f"admin; {reason}", run_id=run_id)
            return None
        seq = gov.record_guard(user, what, {}, allowed=False, reason=reason, run_id=run_id)
        return deny(f"mlops: cannot {what}: {reason} (refusal audited as #{seq})")

    def _logged_model_change(self, user: str, what: str, model_id: str) -> Any:
        """A logged model some registered version points at is that version's evidence: frozen like its run."""
        gov = self.governance()
        if not gov.model_backs_version(model_id):
            return None
        reason = f"logged model {model_id} backs a registered model version: its evidence is frozen"
        if is_admin(user):  # the audit entry names the model id in its reason
            gov.record_guard(user, what, {}, allowed=True, reason=f"admin; {reason}")
            return None
        seq = gov.record_guard(user, what, {}, allowed=False, reason=reason)
        return deny(f"mlops: cannot {what}: {reason} (refusal audited as #{seq})")

    # -- after -------------------------------------------------------------------------------------------------
    def after_request(self, response: Any) -> Any:
        from flask import g, request

        match = _API.match(request.path)
        user = getattr(g, "mlflow_authenticated_user", None)
        if match is None or user is None or response.status_code != 200 or request.method != "POST":
            return response
        rest = match.group("rest")
        if rest not in ("runs/create", "model-versions/create"):
            return response
        try:
            body = json.loads(response.get_data())
            if rest == "runs/create":
                self.governance().record_run_created(user, body["run"]["info"]["run_id"])
            else:
                self.governance().record_registration(user, body["model_version"])
        except (MlopsError, KeyError, TypeError, ValueError) as exc:
            # the registry already changed: say so loudly rather than pretend; reconcile will find the gap
            return deny(f"mlops: the change was made but could not be recorded: {exc}", 500, "INTERNAL_ERROR")
        return response


class ArtifactGuard:
    """ASGI middleware refusing artifact uploads/deletes under a run (or logged model) that backs a version."""

    def __init__(self, app: Any, governance: Callable[[], ServerGovernance]) -> None:
        self.app = app
        self.governance = governance

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("method") in ("PUT", "POST", "DELETE"):
            match = _ARTIFACTS.match(scope.get("path", ""))
            if match is not None:
                refusal = await self._check(scope, match.group("path"))
                if refusal is not None:
                    await _send_json(send, 403, {"error_code": "PERMISSION_DENIED", "message": refusal})
                    return
        await self.app(scope, receive, send)

    async def _check(self, scope: Any, path: str) -> str | None:
        import anyio.to_thread

        parts = path.strip("/").split("/")
        if len(parts) < 3:
            return None
        user, password = _basic_credentials(scope)

        def judge() -> str | None:
            gov = self.governance()
            if parts[1] == "models" and parts[2].startswith("m-"):
                backed, what = gov.model_backs_version(parts[2]), f"logged model {parts[2]}"
            else:
                backed, what = gov.run_backs_version(parts[1]), f"run {parts[1]}"
            if not backed:
                return None
            if user and password and _authenticated_admin(user, password):
                gov.record_guard(user, "upload an artifact", {}, allowed=True, reason="admin", run_id=parts[1])
                return None
            reason = f"{what} backs a registered model version: its artifacts are frozen"
            seq = gov.record_guard(
                user or "(anonymous)", "upload an artifact", {}, allowed=False, reason=reason, run_id=parts[1]
            )
            return f"mlops: cannot change artifacts: {reason} (refusal audited as #{seq})"

        result: str | None = await anyio.to_thread.run_sync(judge)
        return result


def _basic_credentials(scope: Any) -> tuple[str | None, str | None]:
    for key, value in scope.get("headers") or ():
        if key.lower() == b"authorization" and value[:6].lower() == b"basic ":
            try:
                user, _, password = base64.b64decode(value[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, None
            return user, password
    return None, None


def _authenticated_admin(user: str, password: str) -> bool:
    from mlflow.server.auth import store

    try:
        return bool(store.authenticate_user(user, password) and store.get_user(user).is_admin)
    except Exception:  # noqa: BLE001 - unknown user: not an admin
        return False


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
