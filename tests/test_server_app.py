"""The governing server on real servers: PostgreSQL plus `mlflow server --app-name mlops` (2 uvicorn workers) with
MLflow basic-auth users — a data scientist, an approver, an admin. Clients are MlflowClient and plain HTTP.

One server for the whole module (it takes ~15 s to start); each test uses its own registered model.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
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
from server_fixtures import CLI_SNIPPET as _CLI

from mlops_layer import signing

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORDS = {"admin": ADMIN_PASSWORD, "dana": "Dana-pass-1234", "april": "April-pass-1234"}
POLICY = """version: 1
roles:
  april: [risk]
targets:
  staging:
    rules:
      - {type: metric_threshold, metric: accuracy, min: 0.8}
  champion:
    rules:
      - {type: metric_threshold, metric: accuracy, min: 0.8}
      - {type: approvals, count: 1, roles: [risk]}
"""


def _git(cwd: Path, *args: str) -> str:
    return git(cwd, *args)


def call(server: RunningServer, user: str | None, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return server.call(user, method, path, body)


@pytest.fixture(scope="module")
def server(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with governing_server(
        pg_server_url,
        tmp_path_factory.mktemp("governing"),
        policy=POLICY,
        users={u: p for u, p in PASSWORDS.items() if u != "admin"},
        signers={"april": ["mlops-approval"], "dana": ["mlops-approval"]},
    ) as srv:
        yield srv


@pytest.fixture
def as_user(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``as_user(name)`` -> an MlflowClient sending that user's credentials (MLflow's own variables)."""
    return lambda user: mlflow_client_as(server, user, PASSWORDS[user], monkeypatch)


def _version(client: Any, model: str, accuracy: float, experiment: str = "team") -> tuple[str, str]:
    """A run with ``accuracy`` registered as a new version of ``model``: (version, run_id)."""
    run = finished_run(
        client,
        experiment,
        # the model's files: the server hashes them at registration (a version without files is refused promotion)
        files={"MLmodel": f"flavors: {{}}\naccuracy: {accuracy}\n"},
        metrics={"accuracy": accuracy},
        tags={"mlops.trained_by": "someone-else", "mlops.git.commit": "abc", "mlops.git.dirty": "false"},
    )
    return register_run(client, model, run, tags={"mlops.registered_by": "someone-else"}), run.info.run_id


def _entries(server: RunningServer, model: str, action: str | None = None) -> list[dict[str, Any]]:
    query = f"?model={model}" + (f"&action={action}" if action else "")
    status, body = call(server, "admin", "GET", "/mlops/api/v1/audit/log" + query)
    assert status == 200, body
    return list(body["entries"])


def test_ui_answers_401_without_credentials_and_200_with(server: RunningServer) -> None:
    assert call(server, None, "GET", "/")[0] == 401
    assert call(server, "dana", "GET", "/")[0] == 200
    assert call(server, None, "POST", "/mlops/api/v1/check", {"model": "m", "version": "1", "to": "staging"})[0] == 401
    status, info = call(server, "dana", "GET", "/mlops/api/v1/info")
    assert status == 200 and info["app"] == "mlops" and info["user"] == "dana"
    assert info["governance_commit"] == _git(server.repo, "rev-parse", "main")


def test_alias_set_runs_the_policy_as_the_user(server: RunningServer, as_user: Any) -> None:
    from mlflow.exceptions import MlflowException

    dana = as_user("dana")
    low, _ = _version(dana, "churn", 0.5)
    high, _ = _version(dana, "churn", 0.93)
    with pytest.raises(MlflowException) as refused:
        dana.set_registered_model_alias("churn", "staging", low)
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "metric_threshold" in refused.value.message and "accuracy" in refused.value.message
    assert "staging" not in dana.get_registered_model("churn").aliases
    dana.set_registered_model_alias("churn", "staging", high)
    assert dana.get_registered_model("churn").aliases == {"staging": high}
    decided = _entries(server, "churn", "promotion.decided")
    assert [(e["actor"], e["decision"], e["subject"]["version"]) for e in decided] == [
        ("dana", "refused", low),
        ("dana", "allowed", high),
    ]
    assert all(e["details"]["governance_commit"] == _git(server.repo, "rev-parse", "main") for e in decided)
    moved = _entries(server, "churn", "alias.set")
    assert [(e["actor"], e["subject"]["version"]) for e in moved] == [("dana", high)]
    # who registered and trained is what the server saw, not what the client claimed
    registered = _entries(server, "churn", "model.registered")
    assert {e["actor"] for e in registered} == {"dana"}
    tags = dana.get_model_version("churn", high).tags
    assert tags["mlops.registered_by"] == "dana" and tags["mlops.trained_by"] == "dana"
    # the UI's route runs the same policy (champion needs a signed approval too)
    status, body = call(
        server,
        "dana",
        "POST",
        "/ajax-api/2.0/mlflow/registered-models/alias",
        {"name": "churn", "alias": "champion", "version": low},
    )
    assert status == 403 and body["error_code"] == "PERMISSION_DENIED" and "approvals" in body["message"], body
    # deleting the alias is for admins only, and audited
    with pytest.raises(MlflowException) as deleted:
        dana.delete_registered_model_alias("churn", "staging")
    assert deleted.value.error_code == "PERMISSION_DENIED"
    guard = _entries(server, "churn", "registry.guard")
    assert guard[-1]["actor"] == "dana" and guard[-1]["decision"] == "refused"
    # the admin may, and the trail follows: reconcile still agrees
    status, body = call(
        server, "admin", "DELETE", "/api/2.0/mlflow/registered-models/alias", {"name": "churn", "alias": "staging"}
    )
    assert status == 200, body
    assert _entries(server, "churn", "registry.guard")[-1]["decision"] == "allowed"
    assert _entries(server, "churn", "alias.deleted")[-1]["actor"] == "admin"
    assert "staging" not in dana.get_registered_model("churn").aliases
    # so is forging a governance tag on a version
    with pytest.raises(MlflowException):
        dana.set_model_version_tag("churn", high, "mlops.registered_by", "april")
    status, _body = call(server, "april", "GET", "/mlops/api/v1/audit/verify")
    assert status == 200 and _body["ok"], _body


def test_approver_cannot_approve_what_they_registered(
    server: RunningServer, as_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_layer.governance.approvals import CandidateIdentity, make_statement, sign_statement

    monkeypatch.setenv("MLOPS_ACTOR", "dana")  # a declared name: means nothing to the server
    april = as_user("april")
    own, _ = _version(april, "fraud", 0.95, experiment="april-exp")
    status, body = call(
        server,
        "admin",
        "POST",
        "/api/3.0/mlflow/users/permissions/grant",
        {"username": "dana", "resource_type": "registered_model", "resource_id": "fraud", "permission": "EDIT"},
    )
    assert status == 200, body  # the admin lets dana add versions to april's model
    dana = as_user("dana")
    other, _ = _version(dana, "fraud", 0.95)

    def approve(version: str, user: str = "april") -> tuple[int, Any]:
        status, ident = call(server, user, "GET", f"/mlops/api/v1/approval-identity?model=fraud&version={version}")
        assert status == 200, ident
        statement = make_statement(CandidateIdentity(**ident), "champion", user)
        signed = sign_statement(statement, server.keys[user], signing.sign)
        return call(server, user, "POST", "/mlops/api/v1/approve", signed.to_dict())

    status, body = approve(own)
    assert status == 403 and "april registered fraud v" in body["message"], body
    status, body = approve(other)
    assert status == 200 and body["statement"]["approver"] == "april", body
    # a statement signed as someone else than the authenticated user is refused
    status, body = approve(other, user="dana")
    assert status == 403
    # the approval counts: dana's version may now take champion (dana asks; april approved)
    status, result = call(
        server, "dana", "POST", "/mlops/api/v1/promote", {"model": "fraud", "version": other, "to": "champion"}
    )
    assert status == 200 and result["allowed"] and result["moved"], result


def test_registered_versions_run_is_frozen(server: RunningServer, as_user: Any) -> None:
    from mlflow.exceptions import MlflowException

    dana = as_user("dana")
    _version_id, run_id = _version(dana, "frozen", 0.9)
    with pytest.raises(MlflowException) as refused:
        dana.log_metric(run_id, "accuracy", 0.99)
    assert refused.value.error_code == "PERMISSION_DENIED", refused.value.message
    assert "backs a registered model version" in str(refused.value)
    assert dana.get_run(run_id).data.metrics["accuracy"] == 0.9
    with pytest.raises(Exception, match="its artifacts are frozen"):  # requests' HTTPError: an artifact upload
        dana.log_text(run_id, "tampered", "model/MLmodel")
    # a run no version was created from is the data scientist's to change
    exp = dana.get_experiment_by_name("team").experiment_id
    free = dana.create_run(exp).info.run_id
    dana.log_metric(free, "accuracy", 0.1)
    refusals = [e for e in _entries(server, "", "registry.guard") if e["run_id"] == run_id]
    assert refusals and all(e["decision"] == "refused" and e["actor"] == "dana" for e in refusals)


def test_a_logged_model_backing_a_version_is_frozen(server: RunningServer, as_user: Any) -> None:
    """MLflow 3's logged-model routes (tags, params, finalize, delete) are guarded like a registered run's."""
    from mlflow.exceptions import MlflowException

    dana = as_user("dana")
    exp = dana.get_experiment_by_name("team")
    exp_id = exp.experiment_id if exp is not None else dana.create_experiment("team")
    run_id = dana.create_run(exp_id).info.run_id
    frozen = dana.create_logged_model(exp_id, source_run_id=run_id, params={"C": "1.0"}).model_id
    free = dana.create_logged_model(exp_id, source_run_id=run_id).model_id
    dana.finalize_logged_model(frozen, "READY")
    dana.create_registered_model("logged")
    dana.create_model_version("logged", f"models:/{frozen}", run_id=run_id, model_id=frozen)
    attempts = {
        "set a logged model tag": lambda: dana.set_logged_model_tags(frozen, {"mlops.Claims.x": "forged"}),
        "delete a logged model tag": lambda: dana.delete_logged_model_tag(frozen, "mlflow.user"),
        "log logged model params": lambda: dana.log_model_params(frozen, {"C": "9.9"}),
        "finalize the logged model": lambda: dana.finalize_logged_model(frozen, "FAILED"),
        "delete the logged model": lambda: dana.delete_logged_model(frozen),
    }
    for what, attempt in attempts.items():
        with pytest.raises(MlflowException) as refused:
            attempt()
        assert refused.value.error_code == "PERMISSION_DENIED" and what in refused.value.message, refused.value.message
    kept = dana.get_logged_model(frozen)
    assert kept.params == {"C": "1.0"} and "mlops.Claims.x" not in kept.tags and str(kept.status) == "READY"
    dana.set_logged_model_tags(free, {"note": "mine to change"})  # no version points at it
    refusals = [e for e in _entries(server, "", "registry.guard") if frozen in " ".join(e["reasons"])]
    assert sorted(e["details"]["change"] for e in refusals) == sorted(attempts)
    assert all(e["actor"] == "dana" and e["decision"] == "refused" for e in refusals)


def test_concurrent_alias_moves_are_serialised(server: RunningServer, as_user: Any) -> None:
    dana = as_user("dana")
    versions = [_version(dana, "race", 0.9 + i / 100)[0] for i in range(8)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def move(version: str) -> None:
        barrier.wait()
        try:
            dana.set_registered_model_alias("race", "staging", version)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    decided = _entries(server, "race", "promotion.decided")
    moved = _entries(server, "race", "alias.set")
    assert sorted(e["subject"]["version"] for e in decided) == sorted(versions)  # each decided exactly once
    assert all(e["decision"] == "allowed" for e in decided)
    # serialised: each move starts from the previous one's result
    chain = [e["details"]["previous"] for e in moved]
    assert chain[0] is None and chain[1:] == [e["subject"]["version"] for e in moved[:-1]]
    assert dana.get_registered_model("race").aliases["staging"] == moved[-1]["subject"]["version"]
    status, report = call(server, "admin", "POST", "/mlops/api/v1/audit/reconcile", {})
    assert status == 200 and report["ok"], report


def _workers(server: RunningServer) -> list[int]:
    """The live uvicorn worker processes under the server (multiprocessing ``spawn_main`` children; not zombies, not
    multiprocessing's resource tracker)."""
    out = subprocess.run(["ps", "-eww", "-o", "pid,ppid,stat,args"], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()[1:]]
    children: dict[int, list[tuple[int, str, str]]] = {}
    for pid, ppid, stat, args in (r for r in rows if len(r) == 4):
        children.setdefault(int(ppid), []).append((int(pid), stat, args))
    found, todo = [], [server.proc.pid]
    while todo:
        for pid, stat, args in children.get(todo.pop(), []):
            if "spawn_main" in args and not stat.startswith("Z"):
                found.append(pid)
            todo.append(pid)
    return found


def test_worker_killed_mid_promotions_then_reconcile_and_verify_pass(
    server: RunningServer, as_user: Any, tmp_path: Path
) -> None:
    dana = as_user("dana")
    versions = [_version(dana, "crash", 0.9)[0] for _ in range(6)]
    workers = _workers(server)
    assert len(workers) >= 2, workers
    stop = threading.Event()

    def promote_loop(offset: int) -> None:
        i = offset
        while not stop.is_set():
            with contextlib.suppress(Exception):  # requests on the killed worker fail; that is the point
                dana.set_registered_model_alias("crash", "staging", versions[i % len(versions)])
            i += 1

    threads = [threading.Thread(target=promote_loop, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    os.kill(workers[0], signal.SIGKILL)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(120)
    server.wait_healthy()
    deadline = time.monotonic() + 90  # uvicorn's supervisor replaces the killed worker
    while len(_workers(server)) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert workers[0] not in _workers(server) and len(_workers(server)) >= 2
    # the CLI, in team mode: reconcile completes what the killed worker left half-done, then both pass
    reconciled = _mlops(server, "admin", tmp_path, "audit", "reconcile", "--json")
    assert reconciled.returncode == 0 and "NO-MLFLOW" in reconciled.stderr, reconciled.stdout + reconciled.stderr
    assert json.loads(reconciled.stdout)["ok"] is True
    verified = _mlops(server, "admin", tmp_path, "audit", "verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True, verified.stdout
    refused = _mlops(server, "admin", tmp_path, "audit", "reconcile", "--record-incident")
    assert refused.returncode == 2 and "--record-incident" in refused.stderr, refused.stderr
    holder = dana.get_registered_model("crash").aliases.get("staging")
    moved = _entries(server, "crash", "alias.set")
    assert moved and str(holder) == moved[-1]["subject"]["version"]


def _mlops(server: RunningServer, user: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as ``user`` against the governing server (MLflow's credential variables only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=PASSWORDS[user])
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def test_cli_detects_the_app_and_uses_mlflow_credentials(server: RunningServer, as_user: Any, tmp_path: Path) -> None:
    dana = as_user("dana")
    low, _ = _version(dana, "cli-model", 0.4)
    high, _ = _version(dana, "cli-model", 0.95)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env.update(
        MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_USERNAME="dana", MLFLOW_TRACKING_PASSWORD=PASSWORDS["dana"]
    )
    env["MLOPS_ACTOR"] = "april"  # declared names mean nothing in team mode

    def mlops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    refused = mlops("check", "cli-model", low, "--to", "staging", "--json")
    assert refused.returncode == 1, refused.stderr
    assert "NO-MLFLOW" in refused.stderr
    body = json.loads(refused.stdout)
    assert body["allowed"] is False and any("metric_threshold" in r["name"] and not r["passed"] for r in body["rules"])
    moved = mlops("promote", "cli-model", high, "--to", "staging", "--json")
    assert moved.returncode == 0 and "NO-MLFLOW" in moved.stderr, moved.stderr
    assert json.loads(moved.stdout)["moved"] is True
    assert dana.get_registered_model("cli-model").aliases == {"staging": high}
    assert [e["actor"] for e in _entries(server, "cli-model", "alias.set")] == ["dana"]
    history = mlops("history", "cli-model", "--json")
    assert history.returncode == 0 and "NO-MLFLOW" in history.stderr, history.stderr
    assert [(sp["version"], sp["actor"]) for sp in json.loads(history.stdout)["spans"]] == [(high, "dana")]
    # status and the audit trail come from the server too, as dana, without mlflow and without a database URL
    status = mlops("status", "cli-model", "--json")
    assert status.returncode == 0 and "NO-MLFLOW" in status.stderr, status.stderr
    [model] = json.loads(status.stdout)["models"]
    assert model["aliases"] == {"staging": high} and {v["version"] for v in model["versions"]} == {low, high}
    assert "postgresql" not in status.stdout  # the server's store URLs (with their passwords) stay on the server
    log = mlops("audit", "log", "--model", "cli-model", "--action", "promotion.decided", "--json")
    assert log.returncode == 0 and "NO-MLFLOW" in log.stderr, log.stderr
    entries = json.loads(log.stdout)
    assert ("dana", "allowed", high) in [(e["actor"], e["decision"], e["subject"]["version"]) for e in entries]
    served = _entries(server, "cli-model", "promotion.decided")
    assert entries == [{k: e[k] for k in entries[0]} for e in served]  # the very entries, hashes included
    verify = mlops("audit", "verify", "--json")
    assert verify.returncode == 0 and "NO-MLFLOW" in verify.stderr, verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] and report["size"] >= entries[-1]["seq"] and report["checkpoints"], report
    local_only = mlops("audit", "verify", "--expect", "kept.json")
    assert local_only.returncode == 2 and "governing server" in local_only.stderr, local_only.stderr
    # a command the server does not answer never opens a second, local trail behind its back
    # the report pages are rendered by the server from its trail and registry, written here
    pages = mlops("report", "cli-model", "--no-mlflow", "--out", str(tmp_path / "pages"), "--json")
    assert pages.returncode == 0 and "NO-MLFLOW" in pages.stderr, pages.stdout + pages.stderr
    assert json.loads(pages.stdout)["models"] == ["cli-model"]
    html = (tmp_path / "pages" / "cli-model.html").read_text()
    assert "cli-model" in html and f"v{high}" in html and "postgresql" not in html
    stray = mlops("audit", "checkpoint", "--key", str(server.keys["april"]))
    assert stray.returncode == 2 and "governing server" in stray.stderr and "owns the audit trail" in stray.stderr
    assert "Traceback" not in stray.stderr and not (tmp_path / ".mlops" / "audit.db").exists()
    env["MLFLOW_TRACKING_PASSWORD"] = "wrong"
    denied = mlops("check", "cli-model", high, "--to", "staging")
    assert denied.returncode == 2 and "MLFLOW_TRACKING_USERNAME" in denied.stderr, denied.stderr


def test_governed_training_and_registration_through_the_server(
    server: RunningServer, as_user: Any, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layer's own training/registration api in team mode: no audit URL on the client, the server records the
    registration as the authenticated user, whatever MLOPS_ACTOR claims."""
    from conftest import TRAIN_LOCK
    from sklearn.linear_model import LogisticRegression

    from mlops_layer import api

    dana = as_user("dana")
    (git_repo / "params.yaml").write_text("train:\n  C: 0.5\n")
    (git_repo / "dvc.lock").write_text(TRAIN_LOCK)
    (git_repo / "mlops.yaml").write_text(f"tracking_uri: {server.url}\nexperiment: governed-training\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "project")
    monkeypatch.setenv("MLOPS_ACTOR", "april")
    cfg = api.settings(git_repo)
    with api.governed_run("train", settings=cfg) as run:
        run.log_metrics({"accuracy": 0.91})
        model_uri = run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    reg = api.register("governed", run.run_id, model_uri=model_uri, settings=cfg)
    assert not (git_repo / ".mlops" / "audit.db").exists()  # the client wrote no trail of its own
    [entry] = _entries(server, "governed", "model.registered")
    assert entry["actor"] == "dana" and reg.audit_seq == entry["seq"]
    assert float(entry["details"]["metrics"]["accuracy"]) == 0.91  # frozen at registration
    assert entry["details"]["claims"]["mlops.git.commit"] == git(git_repo, "rev-parse", "HEAD")
    assert json.loads(entry["details"]["version_claims"]["mlops.claims.model_files"])  # the files, as claimed
    tags = dana.get_model_version("governed", reg.version).tags
    assert tags["mlops.registered_by"] == "dana" and tags["mlops.trained_by"] == "dana"
    result = api.promote("governed", reg.version, "staging", settings=cfg)
    assert result.moved and result.decision.allowed, result.decision


def test_governance_files_are_reread_when_the_ref_moves(server: RunningServer, as_user: Any) -> None:
    """Runs last in the module: it changes the policy on the server's clone."""
    assert server.repo is not None
    dana = as_user("dana")
    version, _ = _version(dana, "moving-ref", 0.85)
    before = _git(server.repo, "rev-parse", "main")
    status, decision = call(
        server, "dana", "POST", "/mlops/api/v1/check", {"model": "moving-ref", "version": version, "to": "staging"}
    )
    assert status == 200 and decision["allowed"] and decision["governance_commit"] == before
    policy = server.repo / "governance" / "policy.yaml"
    policy.write_text(policy.read_text().replace("min: 0.8}", "min: 0.9}", 1))
    _git(server.repo, "commit", "-qam", "raise the staging bar")
    after = _git(server.repo, "rev-parse", "main")
    policy.write_text("this uncommitted edit must not count: [")  # only the committed ref counts
    time.sleep(1.5)  # the ref is re-resolved at most once a second
    status, decision = call(
        server, "dana", "POST", "/mlops/api/v1/check", {"model": "moving-ref", "version": version, "to": "staging"}
    )
    assert status == 200 and not decision["allowed"] and decision["governance_commit"] == after, decision
    with pytest.raises(Exception, match="metric_threshold"):
        dana.set_registered_model_alias("moving-ref", "staging", version)
    [refused] = _entries(server, "moving-ref", "promotion.decided")
    assert refused["details"]["governance_commit"] == after
