"""Identity on the governing server (real PostgreSQL + `mlflow server --app-name mlops`, 2 workers): MLflow logins
mapped to principals through policy.yaml `principals:`, and a CI service account whose training is attributed to the
person who signed a committed training statement — so separation of duties does not collapse onto the CI account.

Logins: dana and april (mapped to @example.com principals, both risk approvers), rita (unmapped, no role), ci-bot
(a service account). One server for the module; each test uses its own registered model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_fixtures import (
    ADMIN_PASSWORD,
    RunningServer,
    finished_run,
    git,
    governing_server,
    mlflow_client_as,
    register_run,
)

from mlops_layer import signing
from mlops_layer.governance.approvals import CandidateIdentity, make_statement, sign_statement
from mlops_layer.governance.identity import TRAINING_NAMESPACE, sign_identity
from mlops_layer.governance.principals import training_statement

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORDS = {
    "admin": ADMIN_PASSWORD,
    "dana": "Dana-pass-1234",
    "april": "April-pass-1234",
    "rita": "Rita-pass-1234",
    "ci-bot": "Ci-bot-pass-1234",
}
DANA, APRIL = "dana@example.com", "april@example.com"
POLICY = f"""version: 1
principals:            # MLflow username -> principal (roles, allowed_signers)
  dana: {DANA}
  april: {APRIL}
roles:
  {DANA}: [risk]
  {APRIL}: [risk]
service_accounts: [ci-bot]
monitoring_roles: [risk]
targets:
  champion:
    rules:
      - {{type: approvals, count: 1, roles: [risk]}}
"""
CARD = """business_owner: bob@example.com
intended_use: Rank applications for review.
intended_users: [analysts]
prediction_consumption: nightly batch
sla: {availability_percent: 99.5}
retraining: {method: scheduled, cadence: monthly}
approver_roles: [risk]
sensitivity: internal
code_shareable: false
"""
NO_STATEMENT = "trained by service account ci-bot with no signed training statement naming the human"


@pytest.fixture(scope="module")
def server(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with governing_server(
        pg_server_url,
        tmp_path_factory.mktemp("identity"),
        policy=POLICY,
        users={u: p for u, p in PASSWORDS.items() if u != "admin"},
        signers={DANA: ["mlops-approval", "mlops-training"], APRIL: ["mlops-approval"]},
    ) as srv:
        yield srv


@pytest.fixture
def as_user(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    return lambda user: mlflow_client_as(server, user, PASSWORDS[user], monkeypatch)


def _commit_card(server: RunningServer, model: str, extra: str = "") -> None:
    """Commit the model card (with any training statements) on the ref the server reads, and let it see the move."""
    assert server.repo is not None
    (server.repo / "governance" / "models" / f"{model}.yaml").write_text(CARD + extra)
    git(server.repo, "add", "-A")
    git(server.repo, "commit", "-qm", f"card of {model}")
    time.sleep(1.5)  # each worker re-resolves the ref at most once a second


def _version(client: Any, model: str, experiment: str, **version_tags: str) -> str:
    run = finished_run(
        client,
        experiment,
        files={"MLmodel": "flavors: {}\n"},  # the files the server hashes at registration
        metrics={"accuracy": 0.9},
        tags={"mlops.trained_by": "someone-else"},
    )
    return register_run(client, model, run, tags=version_tags or None)


def _signed_approval(server: RunningServer, model: str, version: str, signer: str, *, as_login: str) -> dict[str, Any]:
    status, ident = server.call(as_login, "GET", f"/mlops/api/v1/approval-identity?model={model}&version={version}")
    assert status == 200, ident
    statement = make_statement(CandidateIdentity(**ident), "champion", signer)
    return sign_statement(statement, server.keys[signer], signing.sign).to_dict()


def _entries(server: RunningServer, model: str, action: str) -> list[dict[str, Any]]:
    status, body = server.call("admin", "GET", f"/mlops/api/v1/audit/log?model={model}&action={action}")
    assert status == 200, body
    return list(body["entries"])


def _promote(server: RunningServer, user: str, model: str, version: str) -> dict[str, Any]:
    status, body = server.call(
        user, "POST", "/mlops/api/v1/promote", {"model": model, "version": version, "to": "champion"}
    )
    assert status == 200, body
    return dict(body)


def test_a_mapped_login_approves_as_its_principal_and_nobody_else_can_submit_it(
    server: RunningServer, as_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, info = server.call("dana", "GET", "/mlops/api/v1/info")
    assert status == 200 and info["user"] == "dana" and info["principal"] == DANA
    version = _version(as_user("rita"), "ident-map", "rita-exp")
    signed = _signed_approval(server, "ident-map", version, DANA, as_login="dana")
    # april's login cannot submit dana's signed approval
    status, body = server.call("april", "POST", "/mlops/api/v1/approve", signed)
    assert status == 403 and f"signed as '{DANA}'" in body["message"] and f"(principal '{APRIL}')" in body["message"]
    # nor can rita (unmapped, no role), nor a statement signed under the bare login name
    assert server.call("rita", "POST", "/mlops/api/v1/approve", signed)[0] == 403
    bare = sign_statement(_bare(server, "ident-map", version), server.keys[DANA], signing.sign).to_dict()
    status, body = server.call("dana", "POST", "/mlops/api/v1/approve", bare)
    assert status == 403 and "signed as 'dana'" in body["message"], body
    # dana's own login submits it: it counts under her principal, and the trail names both
    status, body = server.call("dana", "POST", "/mlops/api/v1/approve", signed)
    assert status == 200 and body["statement"]["approver"] == DANA, body
    granted = _entries(server, "ident-map", "approval.granted")
    assert [(e["actor"], e["details"].get("mlflow_user")) for e in granted] == [(DANA, "dana")]
    result = _promote(server, "rita", "ident-map", version)
    assert result["allowed"] and result["moved"], result
    approvals = next(r for r in result["rules"] if r["name"] == "approvals")
    assert approvals["observed"]["approved_by"] == [DANA]
    # the unmapped login acts under its own name, with no mlflow_user noted
    decided = _entries(server, "ident-map", "promotion.decided")[-1]
    assert decided["actor"] == "rita" and "mlflow_user" not in decided["details"]
    # the CLI's client signs as the principal the server maps its login to
    from mlops_layer.adapters.governing_server import GoverningServer

    second = _version(as_user("rita"), "ident-map", "rita-exp")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "april")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS["april"])
    remote = GoverningServer(server.url).approve("ident-map", second, "champion", key_path=server.keys[APRIL])
    assert remote.statement.approver == APRIL and remote.audit_seq is not None


def _bare(server: RunningServer, model: str, version: str) -> Any:
    status, ident = server.call("dana", "GET", f"/mlops/api/v1/approval-identity?model={model}&version={version}")
    assert status == 200, ident
    return make_statement(CandidateIdentity(**ident), "champion", "dana")


def test_a_mapped_approver_cannot_approve_what_they_registered(server: RunningServer, as_user: Any) -> None:
    version = _version(as_user("dana"), "ident-own", "dana-exp", **{"mlops.registered_by": "april"})
    tags = as_user("dana").get_model_version("ident-own", version).tags
    assert tags["mlops.registered_by"] == DANA and tags["mlops.trained_by"] == DANA
    registered = _entries(server, "ident-own", "model.registered")[-1]
    assert registered["actor"] == DANA and registered["details"]["mlflow_user"] == "dana"
    signed = _signed_approval(server, "ident-own", version, DANA, as_login="dana")
    status, body = server.call("dana", "POST", "/mlops/api/v1/approve", signed)
    assert status == 403 and f"{DANA} registered ident-own v{version}" in body["message"], body
    other = _signed_approval(server, "ident-own", version, APRIL, as_login="april")
    assert server.call("april", "POST", "/mlops/api/v1/approve", other)[0] == 200


def test_ci_training_with_a_committed_statement_excludes_the_person(
    server: RunningServer, as_user: Any, tmp_path: Path
) -> None:
    from mlops_layer import api

    assert server.repo is not None
    # dana signs with `mlops sign-training`'s api in the governance clone and commits it on the card
    signed = api.sign_training(
        "ident-ci", "ci-bot", key_path=server.keys[DANA], until="2099-12-31", settings=api.settings(server.repo)
    )
    assert signed.principal == DANA and not signed.warnings, signed.warnings
    _commit_card(server, "ident-ci", signed.yaml)
    version = _version(as_user("ci-bot"), "ident-ci", "ci-exp")
    tags = as_user("ci-bot").get_model_version("ident-ci", version).tags
    assert tags["mlops.trained_by"] == DANA and tags["mlops.trained_via"] == "ci-bot"
    assert tags["mlops.registered_by"] == "ci-bot"
    registered = _entries(server, "ident-ci", "model.registered")[-1]
    assert registered["details"]["trained_by"] == DANA and registered["details"]["trained_via"] == "ci-bot"
    assert registered["details"]["training_statement"]["principal"] == DANA
    # the person on whose behalf CI trained may not approve it
    status, body = server.call(
        "dana", "POST", "/mlops/api/v1/approve", _signed_approval(server, "ident-ci", version, DANA, as_login="dana")
    )
    assert status == 403 and f"{DANA} trained ident-ci v{version}" in body["message"], body
    assert not _promote(server, "ci-bot", "ident-ci", version)["allowed"]
    # another approver may, and then the promotion passes
    other = _signed_approval(server, "ident-ci", version, APRIL, as_login="april")
    assert server.call("april", "POST", "/mlops/api/v1/approve", other)[0] == 200
    result = _promote(server, "ci-bot", "ident-ci", version)
    assert result["allowed"] and result["moved"], result


def test_ci_training_without_a_statement_fails_separation_by_name(server: RunningServer, as_user: Any) -> None:
    _commit_card(server, "ident-nostmt")
    # claimed names at creation are overwritten by what the server saw
    version = _version(
        as_user("ci-bot"),
        "ident-nostmt",
        "ci-exp",
        **{"mlops.trained_by": APRIL, "mlops.trained_via": "nobody"},
    )
    tags = as_user("ci-bot").get_model_version("ident-nostmt", version).tags
    assert tags["mlops.trained_by"] == "ci-bot" and tags["mlops.trained_via"] == ""
    registered = _entries(server, "ident-nostmt", "model.registered")[-1]
    assert registered["details"]["trainer_problem"].startswith(NO_STATEMENT)
    # an approval is recorded, but it cannot carry the promotion: nobody known trained it
    other = _signed_approval(server, "ident-nostmt", version, APRIL, as_login="april")
    assert server.call("april", "POST", "/mlops/api/v1/approve", other)[0] == 200
    result = _promote(server, "ci-bot", "ident-nostmt", version)
    assert not result["allowed"] and not result["moved"]
    approvals = next(r for r in result["rules"] if r["name"] == "approvals")
    assert not approvals["passed"] and approvals["message"].startswith(NO_STATEMENT), approvals
    # the statement committed later is read at decision time: the person is excluded, april's approval counts
    signed = sign_identity(
        training_statement(DANA, "ci-bot", "ident-nostmt", None, "2026-01-01T00:00:00Z"),
        server.keys[DANA],
        TRAINING_NAMESPACE,
    )
    _commit_card(server, "ident-nostmt", _yaml(signed))
    result = _promote(server, "ci-bot", "ident-nostmt", version)
    assert result["allowed"] and result["moved"], result
    own = _signed_approval(server, "ident-nostmt", version, DANA, as_login="dana")
    assert server.call("dana", "POST", "/mlops/api/v1/approve", own)[0] == 403


def test_a_forged_statement_is_refused(server: RunningServer, as_user: Any, tmp_path: Path) -> None:
    mallory = tmp_path / "mallory"
    signing.generate_key(mallory, "mallory")
    forged = sign_identity(
        training_statement(DANA, "ci-bot", "ident-forged", None, "2026-01-01T00:00:00Z"), mallory, TRAINING_NAMESPACE
    )
    _commit_card(server, "ident-forged", _yaml(forged))
    version = _version(as_user("ci-bot"), "ident-forged", "ci-exp")
    tags = as_user("ci-bot").get_model_version("ident-forged", version).tags
    assert tags["mlops.trained_by"] == "ci-bot" and tags["mlops.trained_via"] == ""
    problem = _entries(server, "ident-forged", "model.registered")[-1]["details"]["trainer_problem"]
    assert problem.startswith(NO_STATEMENT) and "does not verify" in problem, problem
    # dana (whom the forgery names) approving does not make it pass either
    own = _signed_approval(server, "ident-forged", version, DANA, as_login="dana")
    assert server.call("dana", "POST", "/mlops/api/v1/approve", own)[0] == 200
    result = _promote(server, "ci-bot", "ident-forged", version)
    assert not result["allowed"], result
    approvals = next(r for r in result["rules"] if r["name"] == "approvals")
    assert approvals["message"].startswith(NO_STATEMENT), approvals
    status, verified = server.call("april", "GET", "/mlops/api/v1/audit/verify")
    assert status == 200 and verified["ok"], verified


def _yaml(proof: dict[str, Any]) -> str:
    lines = ["training_statements:", "  - statement:"]
    lines += [f"      {k}: {json.dumps(v)}" for k, v in proof["statement"].items()]
    lines += ["    signature: |", *(f"      {x}" for x in str(proof["signature"]).strip().splitlines())]
    return "\n".join(lines) + "\n"


def test_monitoring_evidence_is_posted_as_the_logins_principal(server: RunningServer) -> None:
    """Roles for the evidence endpoints are the mapped principal's; the entry names the principal and the login."""
    ack = {
        "action": "alert.acknowledged",
        "subject": {"model": "watched-by-dana"},
        "decision": "acknowledged",
        "details": {"alert_id": "watched-by-dana:drift:1"},
    }
    status, body = server.call("rita", "POST", "/mlops/api/v1/evidence/monitoring", ack)
    assert status == 403 and "monitoring_roles" in body["message"], body
    status, body = server.call("dana", "POST", "/mlops/api/v1/evidence/monitoring", ack)
    assert status == 200, body
    [entry] = _entries(server, "watched-by-dana", "alert.acknowledged")
    assert entry["actor"] == DANA and entry["details"]["mlflow_user"] == "dana"
    assert entry["details"]["posted_with_roles"] == ["risk"]


def test_a_service_account_may_record_retraining_but_no_other_monitoring_evidence(server: RunningServer) -> None:
    """`mlops retrain` in team mode posts its retrain.* entries; CI runs it under a service account (no role)."""
    started = {"action": "retrain.started", "subject": {"model": "retrained"}, "details": {"reasons": ["cadence"]}}
    status, body = server.call("ci-bot", "POST", "/mlops/api/v1/evidence/monitoring", started)
    assert status == 200, body
    [entry] = _entries(server, "retrained", "retrain.started")
    assert entry["actor"] == "ci-bot" and entry["details"]["posted_with_roles"] == ["service account"]
    status, body = server.call("rita", "POST", "/mlops/api/v1/evidence/monitoring", started)
    assert status == 403 and "monitoring_roles" in body["message"], body
    ack = {"action": "alert.acknowledged", "subject": {"model": "retrained"}, "details": {"alert_id": "x"}}
    status, body = server.call("ci-bot", "POST", "/mlops/api/v1/evidence/monitoring", ack)
    assert status == 403, body
    assert len(_entries(server, "retrained", "retrain.started")) == 1
    assert _entries(server, "retrained", "alert.acknowledged") == []
