"""Drift and monitoring evidence posted to the governing server, and the audit reads it serves (show, export).

In team mode clients hold no audit database credential: ``mlops drift`` and ``mlops monitor`` compute on the data
they have and POST the entries they would have appended. Only holders of a role the committed policy lists under
``monitoring_roles`` may post; the entry's actor is the authenticated MLflow user and its details are what the client
sent (its claim), plus ``via: server`` and what the server recomputed itself:

- a drift check of a batch the server can read (its config's ``data_dir``: a DVC cache found by the claimed
  ``dvc_md5``, or a file named like the checked one whose sha256 is the claimed one) is checked again with the same
  engine against the version's reference profile and the committed drift settings; a claim that disagrees is refused
  (recorded as ``evidence.refused`` with both sets of numbers) and never reaches the drift gate;
- a monitored batch the server can read has its rows counted again; a batch scored on an alias whose holder is not
  what the trail put there is recorded as evidence for nothing;
- what cannot be reached is recorded as ``recomputed: "not recomputed: <why>"``.

The drift gate on the server reads these entries exactly as it reads entries appended locally.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_layer.audit import actions
from mlops_layer.errors import InputError, MlopsError, PolicyViolation
from mlops_layer.server import datasets

DRIFT_ACTIONS = (actions.DRIFT_CHECKED,)
# what `mlops retrain` records (the challenger's registration and promotion go through the server as usual); CI runs it
# under a service account, which holds no role, so service accounts may post these too
RETRAIN_ACTIONS = (actions.RETRAIN_STARTED, actions.RETRAIN_FAILED, actions.RETRAIN_COMPLETED)
MONITORING_ACTIONS = (
    actions.MONITOR_BATCH,
    actions.ALERT_FIRED,
    actions.ALERT_CLEARED,
    actions.NOTIFICATION_FAILED,
    actions.ALERT_ACKNOWLEDGED,
    actions.ALERT_RESOLVED,
    *RETRAIN_ACTIONS,
)
# keys of the details only the server writes: a client sending them has them dropped (and recorded as claimed)
_SERVER_KEYS = ("via", "recomputed", "evidence", "not_evidence")
_SHARE_TOLERANCE = 1e-3


def require_monitoring_role(gov: Any, user: str, snap: Any) -> tuple[str, ...]:
    """The roles of ``user`` that the committed policy lets post monitoring evidence (403 when none)."""
    policy = gov.policy(snap)
    allowed = tuple(policy.monitoring_roles)
    held = tuple(r for r in policy.roles_of(user) if r in allowed)
    if held:
        return held
    if not allowed:
        raise PolicyViolation(
            f"{user} may not post monitoring evidence: policy.yaml at {snap.commit[:12]} names no monitoring_roles",
            hint="add e.g. `monitoring_roles: [ops]` to policy.yaml and give the role to who runs `mlops monitor`",
        )
    raise PolicyViolation(
        f"{user} may not post monitoring evidence: it needs a role among monitoring_roles "
        f"({', '.join(allowed)}) in policy.yaml at {snap.commit[:12]}, and {user} holds "
        f"{', '.join(policy.roles_of(user)) or 'none'}",
        hint="ask for one of those roles in the committed policy.yaml",
    )


def may_post(gov: Any, user: str) -> dict[str, Any]:
    """Whether ``user`` may post monitoring evidence (403 with the same message a post gets, when not): clients ask
    before they compute a check or log an MLflow run for it."""
    snap = gov.snapshot()
    principal = gov.principal(user, snap)
    held = require_monitoring_role(gov, principal, snap)
    return {"user": user, "principal": principal, "roles": list(held), "governance_commit": snap.commit}


def _append_body(params: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    action = str(params.get("action") or "")
    if action not in allowed:
        raise InputError(f"this endpoint records {', '.join(allowed)}, not {action or 'nothing'!r}")
    subject = params.get("subject")
    details = params.get("details") or {}
    reasons = params.get("reasons") or []
    versioned = action in (actions.DRIFT_CHECKED, actions.MONITOR_BATCH)
    if not isinstance(subject, dict) or not subject.get("model") or (versioned and not subject.get("version")):
        raise InputError(f"{action} evidence needs a subject with model{' and version' if versioned else ''}")
    if not isinstance(details, dict) or not isinstance(reasons, list):
        raise InputError("details must be an object and reasons a list")
    return {
        "action": action,
        "subject": {str(k): str(v) for k, v in subject.items() if v is not None},
        "run_id": str(params["run_id"]) if params.get("run_id") else None,
        "decision": str(params["decision"]) if params.get("decision") is not None else None,
        "reasons": [str(r) for r in reasons],
        "details": dict(details),
    }


def _find_data(data_dir: Path | None, details: Mapping[str, Any], name_key: str) -> tuple[Path | None, str]:
    """(a file the server can read holding the checked bytes, or None; why not)."""
    from mlops_layer.adapters.dvc import file_md5
    from mlops_layer.drift.io import file_digest

    if data_dir is None:
        return None, "not recomputed: the governing server has no data_dir configured"
    md5 = str(details.get("dvc_md5") or "")
    if md5 and len(md5) == 32:
        for candidate in (data_dir / "files" / "md5" / md5[:2] / md5[2:], data_dir / md5[:2] / md5[2:]):
            if candidate.is_file() and file_md5(candidate) == md5:
                return candidate, ""
    described = str(details.get(name_key) or "")
    sha = next((t for t in described.split() if t.startswith("sha256:")), None)
    if not sha and details.get("batch_sha256"):
        sha = "sha256:" + str(details["batch_sha256"])
    names = [Path(described.split()[0]).name] if described.split() else []
    if details.get("dvc_path"):
        names.insert(0, str(details["dvc_path"]))
    for name in names:
        candidate = (data_dir / name).resolve()
        if not candidate.is_relative_to(data_dir) or not candidate.is_file():
            continue
        if (md5 and file_md5(candidate) == md5) or (sha and file_digest(candidate) == sha):
            return candidate, ""
    return None, f"not recomputed: the checked data is not under the server's data_dir (md5 {md5 or '-'}, {sha or '-'})"


def _readable_copy(path: Path, details: Mapping[str, Any], tmp: Path) -> Path:
    """A DVC cache file has no suffix: link it under the checked file's name so the reader knows its format."""
    name = Path(str(details.get("dvc_path") or str(details.get("current") or "batch").split()[0])).name
    if path.name == name:
        return path
    link = tmp / name
    link.symlink_to(path)
    return link


def _reference_profile(gov: Any, run_id: str) -> Any:
    """The version's reference profile from its run's artifacts, read through the server's own artifact store."""
    from mlops_layer.drift.profile import ReferenceProfile
    from mlops_layer.lineage import PROFILE_ARTIFACT

    uri = str(gov.registry.client.get_run(run_id).info.artifact_uri).rstrip("/")
    with tempfile.TemporaryDirectory() as tmp:
        if uri.startswith("mlflow-artifacts:"):
            from mlflow.server.handlers import _get_artifact_repo_mlflow_artifacts

            rel = uri[len("mlflow-artifacts:") :].lstrip("/")
            repo = _get_artifact_repo_mlflow_artifacts()  # type: ignore[no-untyped-call]
            local = repo.download_artifacts(f"{rel}/{PROFILE_ARTIFACT}", tmp)
        else:
            from mlflow.artifacts import download_artifacts

            local = download_artifacts(artifact_uri=f"{uri}/{PROFILE_ARTIFACT}", dst_path=tmp)
        import json

        return ReferenceProfile.from_dict(json.loads(Path(local).read_text(encoding="utf-8")))


def recompute_drift(gov: Any, snap: Any, model: str, version: str, details: Mapping[str, Any]) -> dict[str, Any] | str:
    """The server's own drift check of the claimed batch, or ``"not recomputed: <why>"``."""
    import dataclasses

    from mlops_layer.drift.config import load_drift_config
    from mlops_layer.drift.gate import check
    from mlops_layer.drift.io import read_table
    from mlops_layer.governance.cards import load_card

    reference = str(details.get("reference") or "")
    if not reference.startswith(f"{model} v{version} profile"):
        return f"not recomputed: the check used another reference ({reference or 'none named'}), not the version's"
    found, why = _find_data(gov.config.data_dir, details, "current")
    if found is None:
        return why
    try:
        run_id = gov.registry.get_version(model, version).run_id
        profile = _reference_profile(gov, run_id)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the profile is "not recomputed", said why
        return f"not recomputed: the reference profile of {model} v{version} is not readable here: {exc}"[:500]
    cfg = load_drift_config(snap.policy_file, model)
    with contextlib.suppress(MlopsError):
        roles = load_card(snap.cards_dir, model).columns
        cfg = cfg.with_columns(roles.include or None, tuple(c for c in roles.non_features if c != roles.prediction))
    with tempfile.TemporaryDirectory() as tmp:
        frame = read_table(_readable_copy(found, details, Path(tmp)))
    if cfg.prediction_column is None and profile.prediction_column:
        cfg = dataclasses.replace(cfg, prediction_column=profile.prediction_column)
    if cfg.prediction_column and cfg.prediction_column not in [str(c) for c in frame.columns]:
        cfg = dataclasses.replace(cfg, prediction_column=None).with_columns(None, (cfg.prediction_column,))
    result = check(profile, frame, cfg)
    return {
        "passed": result.passed,
        "share": round(result.share, 6),
        "n_current": result.n_current,
        "drifted_columns": [c.name for c in result.columns if c.drifted],
        "engine": "memory",
        "data": found.name,
    }


def drift_mismatch(claim: Mapping[str, Any], server: Mapping[str, Any]) -> list[str]:
    """Where the client's numbers disagree with the server's (empty: they agree)."""
    found = []
    if claim.get("passed") is not server["passed"]:
        found.append(f"passed: claimed {claim.get('passed')}, recomputed {server['passed']}")
    if claim.get("n_current") != server["n_current"]:
        found.append(f"rows: claimed {claim.get('n_current')}, recomputed {server['n_current']}")
    share = claim.get("share")
    exact = str(claim.get("engine") or "memory") == "memory"
    if exact and (
        not isinstance(share, (int, float)) or not math.isclose(share, server["share"], abs_tol=_SHARE_TOLERANCE)
    ):
        found.append(f"drift share: claimed {share}, recomputed {server['share']}")
    return found


def _monitor_checks(gov: Any, user: str, body: dict[str, Any]) -> tuple[dict[str, Any], str | dict[str, Any]]:
    """(server-set details, recomputed) of a monitored batch: its rows counted again, the alias checked."""
    from mlops_layer.drift.io import read_table
    from mlops_layer.governance.trail import AuditTrailView

    subject, details = body["subject"], body["details"]
    extra: dict[str, Any] = {}
    alias = subject.get("alias")
    if alias:
        holder = gov.registry.get_aliases(subject["model"]).get(alias)
        record = AuditTrailView(gov.store, user).alias_record(subject["model"], alias)
        why = None
        if holder != subject["version"]:
            why = f"{subject['model']}@{alias} holds v{holder or '-'}, not the scored v{subject['version']}"
        elif record.tracked and record.version != holder:
            signed = bool((record.incident_details or {}).get("signature"))
            if not (record.incident_actual == holder and signed):
                why = f"{subject['model']}@{alias} -> v{holder} was moved outside governance (trail: v{record.version})"
        if why:
            extra = {"evidence": False, "not_evidence": why}
    if body["decision"] == "rejected":
        return extra, "not recomputed: a rejected batch is not scored"
    found, not_found = _find_data(gov.config.data_dir, details, "batch")
    if found is None:
        return extra, not_found
    with tempfile.TemporaryDirectory() as tmp:
        rows = len(
            read_table(_readable_copy(found, {"current": Path(str(details.get("batch") or found)).name}, Path(tmp)))
        )
    return extra, {"rows": rows, "data": found.name}


def record_evidence(gov: Any, user: str, params: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Record posted drift (``kind`` "drift") or monitoring evidence as ``user``; returns ``{"audit_seq": N, ...}``."""
    from mlops_layer.server.identity import LoginStore

    snap = gov.snapshot()
    # roles and the actor are the login's principal (policy `principals:`); the login itself rides along
    login, user = user, gov.principal(user, snap)
    store = LoginStore(gov.store, login)
    if (
        kind != "drift"
        and params.get("action") in RETRAIN_ACTIONS
        and gov.policy(snap).principals.is_service_account(user)
    ):
        held: tuple[str, ...] = ("service account",)
    else:
        held = require_monitoring_role(gov, user, snap)
    body = _append_body(params, DRIFT_ACTIONS if kind == "drift" else MONITORING_ACTIONS)
    subject, claimed = body["subject"], body["details"]
    if subject.get("version"):
        gov.registry.get_version(subject["model"], subject["version"])  # 404 for a version the registry lacks
    details = {k: v for k, v in claimed.items() if k not in _SERVER_KEYS}
    dropped = sorted(k for k in claimed if k in _SERVER_KEYS)
    recomputed: str | dict[str, Any] = "not recomputed: nothing to recompute for this entry"
    if body["action"] == actions.DRIFT_CHECKED:
        if body["decision"] not in ("passed", "failed", "error"):
            raise InputError(f"a drift check's decision is passed, failed or error, not {body['decision']!r}")
        if body["decision"] != "error":
            if not isinstance(claimed.get("passed"), bool) or claimed["passed"] != (body["decision"] == "passed"):
                raise InputError("the details' passed must be a boolean agreeing with the decision")
            if (wrong := datasets.claim_problem(gov, snap, claimed)) is not None:  # the committed md5, or refused
                _refuse(gov, store, user, body, wrong[1], [wrong[0]], "the md5 DVC records at the governance ref")
            mine = recompute_drift(gov, snap, subject["model"], subject["version"], claimed)
            recomputed = mine
            if isinstance(mine, dict) and (problems := drift_mismatch(claimed, mine)):
                _refuse(gov, store, user, body, mine, problems, f"the server's own drift check of {mine['data']}")
    elif body["action"] == actions.MONITOR_BATCH:
        extra, recomputed = _monitor_checks(gov, user, body)
        if isinstance(recomputed, dict):
            # a part of a file (`--every`, a time range) holds at most the file's rows; a whole file exactly them
            rows, part = claimed.get("rows"), isinstance(claimed.get("time_range"), dict)
            fits = isinstance(rows, int) and (rows <= recomputed["rows"] if part else rows == recomputed["rows"])
            if not fits:
                problem = f"rows: claimed {rows}, recomputed {recomputed['rows']}"
                _refuse(gov, store, user, body, recomputed, [problem], f"the server's count of {recomputed['data']}")
        details.update(extra)
    server = {"via": "server", "recomputed": recomputed, "governance_commit": snap.commit, "posted_with_roles": held}
    if dropped:
        server["dropped_claims"] = {k: claimed[k] for k in dropped}
    entry = store.append(
        body["action"],
        actor=user,
        subject=subject,
        run_id=body["run_id"],
        decision=body["decision"],
        reasons=body["reasons"],
        details={**details, **server},
    )
    gov.checkpoint()
    if body["action"] == actions.DRIFT_CHECKED and body["decision"] != "error":
        _mirror_drift_tags(gov, subject, claimed, entry.seq, body["run_id"])
    return {"audit_seq": int(entry.seq), "recomputed": recomputed, "governance_commit": snap.commit}


def _refuse(
    gov: Any,
    store: Any,
    user: str,
    body: Mapping[str, Any],
    mine: Mapping[str, Any],
    problems: list[str],
    what: str,
) -> None:
    """Record the refused claim next to the server's numbers (``evidence.refused``), then refuse the request."""
    subject = body["subject"]
    entry = store.append(
        actions.EVIDENCE_REFUSED,
        actor=user,
        subject=subject,
        run_id=body["run_id"],
        decision="refused",
        reasons=problems,
        details={"action": body["action"], "claim": body["details"], "recomputed": dict(mine), "via": "server"},
    )
    gov.checkpoint()
    raise PolicyViolation(
        f"{body['action']} evidence for {subject['model']} v{subject['version']} refused: {what} disagrees "
        f"({'; '.join(problems)}); refusal audited as #{entry.seq}",
        hint="check the file as committed at the governance ref again; the committed settings apply",
    )


def _mirror_drift_tags(
    gov: Any, subject: Mapping[str, str], details: Mapping[str, Any], seq: int, run_id: str | None
) -> None:
    """The version's ``mlops.drift.*`` tags, set by the server (clients may not set ``mlops.*`` version tags)."""
    from mlops_layer import tags

    values = {
        tags.DRIFT_STATUS: str(details.get("status") or ""),
        tags.DRIFT_CHECKED_AT: str(details.get("checked_at") or ""),
        tags.DRIFT_AUDIT_SEQ: str(seq),
    }
    if isinstance(details.get("share"), (int, float)):
        values[tags.DRIFT_SHARE] = f"{float(details['share']):.4f}"
    if run_id:
        values[tags.DRIFT_RUN] = run_id
    with contextlib.suppress(MlopsError):
        gov.registry.set_version_tags(subject["model"], subject["version"], values)


def audit_show(gov: Any, user: str, seq: str) -> dict[str, Any]:
    from mlops_layer import api

    try:
        number = int(seq)
    except ValueError:
        raise InputError(f"seq must be an integer, got {seq!r}") from None
    entry = api.audit_entry(number, settings=gov.settings(user))
    return {**entry.to_dict(), **entry.to_record()}  # with the exact hashed body, as audit/log sends entries


def audit_export(gov: Any, user: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``mlops audit export`` of the server's trail: the text (JSON Lines or in-toto), never a path on the server."""
    from mlops_layer import api

    def when(key: str) -> Any:
        return api.parse_time(str(params[key])) if params.get(key) else None

    result = api.export_audit(
        str(params.get("format") or "jsonl"),
        model=params.get("model") or None,
        action=params.get("action") or None,
        since=when("since"),
        until=when("until"),
        settings=gov.settings(user),
    )
    return {
        "format": result.format,
        "count": result.count,
        "size": result.size,
        "head": result.head,
        "text": result.text,
    }
