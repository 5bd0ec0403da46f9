"""Drift and monitoring evidence posted to the governing server, and the audit reads it serves, on real servers:
PostgreSQL plus `mlflow server --app-name mlops` with basic-auth users — a data scientist (dana), an ops engineer
holding the policy's monitoring role (olga), an admin. The CLI runs as a subprocess in team mode.

The server's ``data_dir`` is a folder it can read: batches copied there are recomputed by the server, others are
recorded as not recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from server_fixtures import ADMIN_PASSWORD, RunningServer, governing_server, mlflow_client_as
from server_fixtures import CLI_SNIPPET as _CLI

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORDS = {"admin": ADMIN_PASSWORD, "dana": "Dana-pass-1234", "olga": "Olga-pass-1234"}
POLICY = """version: 1
roles:
  olga: [ops]
  april: [risk]
monitoring_roles: [ops]
targets:
  staging:
    rules:
      - {type: drift_passed, min_rows: 100}
  champion:
    rules:
      - {type: drift_passed, dataset: data/holdout.csv}
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-data")


@pytest.fixture(scope="module")
def server(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[RunningServer]:
    with governing_server(
        pg_server_url,
        tmp_path_factory.mktemp("governing"),
        policy=POLICY,
        users={u: p for u, p in PASSWORDS.items() if u != "admin"},
        signers={"olga": ["mlops-approval"]},
        extra_config=f"data_dir: {data_dir}\n",
    ) as srv:
        yield srv


def _frame(seed: int, shift: float = 0.0, rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x1": rng.normal(shift, 1.0, rows), "x2": rng.normal(5.0 + shift, 2.0, rows)})


def _client(user: str, server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    return mlflow_client_as(server, user, PASSWORDS[user], monkeypatch)


def _version_with_profile(client: Any, model: str) -> str:
    """A version of ``model`` whose run carries the reference profile of ``_frame(0)`` (what training logs)."""
    from mlflow.exceptions import MlflowException

    from mlops_layer.drift.profile import build_profile
    from mlops_layer.lineage import PROFILE_ARTIFACT

    try:
        exp = client.create_experiment("evidence")
    except MlflowException:
        exp = client.get_experiment_by_name("evidence").experiment_id
    run = client.create_run(exp, tags={"mlops.git.commit": "abc", "mlops.git.dirty": "false"})
    client.log_metric(run.info.run_id, "accuracy", 0.9)
    client.log_dict(run.info.run_id, build_profile(_frame(0), source="training").to_dict(), PROFILE_ARTIFACT)
    client.log_text(run.info.run_id, "flavors: {}\n", "model/MLmodel")  # the files the server hashes at registration
    client.set_terminated(run.info.run_id)
    with contextlib.suppress(MlflowException):
        client.create_registered_model(model)
    mv = client.create_model_version(model, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return str(mv.version)


def _entries(server: RunningServer, model: str, action: str | None = None) -> list[dict[str, Any]]:
    query = f"?model={model}" + (f"&action={action}" if action else "")
    status, body = server.call("admin", "GET", "/mlops/api/v1/audit/log" + query)
    assert status == 200, body
    return list(body["entries"])


def _cli(server: RunningServer, user: str, cwd: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=PASSWORDS[user])
    env["MLOPS_ACTOR"] = "april"  # a declared name means nothing in team mode

    def mlops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )

    return mlops


def _batch(folder: Path, name: str, frame: pd.DataFrame) -> tuple[Path, str]:
    from mlops_layer.drift.io import file_digest

    path = folder / name
    frame.to_csv(path, index=False)
    return path, file_digest(path).removeprefix("sha256:")


def _monitored(server: RunningServer, user: str, model: str, version: str, batch: Path, sha: str, rows: int) -> Any:
    """What `mlops monitor` posts for a scored batch in team mode (the production batch a drift check must be on),
    through the CLI's own evidence trail: (HTTP status, the server's answer or error message)."""
    from mlops_layer.adapters.governing_server import EvidenceTrail, GoverningServer
    from mlops_layer.errors import MlopsError

    os.environ.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=PASSWORDS[user])
    trail = EvidenceTrail(GoverningServer(server.url))
    try:
        seq = trail.append(
            "monitor.batch",
            subject={"model": model, "version": version},
            decision="ok",
            details={"batch": batch, "batch_sha256": sha, "rows": rows, "metrics": {}},
        )
    except MlopsError as exc:
        return (403 if exc.exit_code == 1 else 400), {"message": str(exc)}
    return 200, {"audit_seq": seq, "recomputed": trail.recomputed[-1]}


def test_audit_show_and_export_come_from_the_server_without_mlflow(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dana = _client("dana", server, monkeypatch)
    version = _version_with_profile(dana, "shown")
    [registered] = _entries(server, "shown", "model.registered")
    mlops = _cli(server, "dana", tmp_path)

    shown = mlops("audit", "show", str(registered["seq"]), "--json")
    assert shown.returncode == 0 and "NO-MLFLOW" in shown.stderr, shown.stderr
    body = json.loads(shown.stdout)
    assert body == {k: registered[k] for k in body}  # the very entry, hashes included
    assert body["actor"] == "dana" and body["subject"] == {"model": "shown", "version": version}
    table = mlops("audit", "show", str(registered["seq"]))
    assert (
        table.returncode == 0 and registered["entry_hash"][:24] in table.stdout and "model.registered" in table.stdout
    )
    missing = mlops("audit", "show", "999999")
    assert missing.returncode == 2 and "999999" in missing.stderr and "Traceback" not in missing.stderr

    exported = mlops("audit", "export", "--model", "shown")
    assert exported.returncode == 0 and "NO-MLFLOW" in exported.stderr, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    served = _entries(server, "shown")
    assert lines == [{k: e[k] for k in ("seq", "prev_hash", "entry_hash", "body")} for e in served]
    out = tmp_path / "all.jsonl"
    summary = mlops("audit", "export", "--out", str(out), "--json")
    assert summary.returncode == 0 and "NO-MLFLOW" in summary.stderr, summary.stderr
    written = json.loads(summary.stdout)
    assert written["format"] == "jsonl" and written["path"] == str(out) and written["count"] >= len(lines)
    # the whole export chains: verified offline on the client, against nothing but the file
    offline = mlops("audit", "verify", "--export", str(out), "--no-git", "--json")
    assert json.loads(offline.stdout)["size"] == written["count"], offline.stdout + offline.stderr
    statement = mlops("audit", "export", "--format", "in-toto", "--model", "shown")
    assert statement.returncode == 0 and "NO-MLFLOW" in statement.stderr, statement.stderr
    doc = json.loads(statement.stdout)
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert [e["seq"] for e in doc["predicate"]["entries"]] == [e["seq"] for e in served]
    for text in (exported.stdout, out.read_text(), statement.stdout, shown.stdout):
        assert "postgresql" not in text and "Admin-pass" not in text  # nothing of the server's stores leaks
    bundle = mlops("audit", "export", "shown", version, "--bundle", str(tmp_path / "b.zip"))
    assert bundle.returncode == 2 and "governing server" in bundle.stderr, bundle.stderr


def test_monitoring_role_posts_drift_evidence_counted_by_the_gate(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_dir: Path
) -> None:
    dana = _client("dana", server, monkeypatch)
    version = _version_with_profile(dana, "watched")
    good, good_sha = _batch(tmp_path, "good-batch.csv", _frame(1))
    shutil.copy(good, data_dir / good.name)  # the server can read it: it recomputes
    as_olga, as_dana = _cli(server, "olga", tmp_path), _cli(server, "dana", tmp_path)

    before = as_dana("check", "watched", version, "--to", "staging", "--json")
    assert before.returncode == 1 and "no drift check" in before.stdout, before.stdout + before.stderr
    status, posted = _monitored(server, "olga", "watched", version, good, good_sha, 400)
    assert status == 200, posted
    assert posted["recomputed"] == {"rows": 400, "data": good.name}
    checked = as_olga("drift", f"watched/{version}", "--current", str(good), "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["passed"] is True
    assert not (tmp_path / ".mlops" / "audit.db").exists()  # the client wrote no trail of its own
    [batch] = _entries(server, "watched", "monitor.batch")
    [drift] = _entries(server, "watched", "drift.checked")
    assert batch["actor"] == "olga" and drift["actor"] == "olga"  # recorded as theirs, whatever MLOPS_ACTOR says
    details = drift["details"]
    assert details["via"] == "server" and details["posted_with_roles"] == ["ops"]
    assert details["recomputed"]["passed"] is True and details["recomputed"]["n_current"] == 400
    assert details["recomputed"]["share"] == pytest.approx(details["share"], abs=1e-3)
    tags = dana.get_model_version("watched", version).tags
    assert tags["mlops.drift.status"] == details["status"] and tags["mlops.drift.audit_seq"] == str(drift["seq"])

    after = as_dana("check", "watched", version, "--to", "staging", "--json")
    assert after.returncode == 0, after.stdout + after.stderr
    [rule] = [r for r in json.loads(after.stdout)["rules"] if r["name"].startswith("drift")]
    assert rule["passed"] and rule["observed"]["rows"] == 400

    # a drifted production batch, checked and posted by olga: the latest check failed, the promotion is refused
    shifted, shifted_sha = _batch(tmp_path, "shifted-batch.csv", _frame(2, shift=3.0))
    shutil.copy(shifted, data_dir / shifted.name)
    assert _monitored(server, "olga", "watched", version, shifted, shifted_sha, 400)[0] == 200
    failed = as_olga("drift", f"watched/{version}", "--current", str(shifted), "--json")
    assert failed.returncode == 1 and json.loads(failed.stdout)["passed"] is False, failed.stderr
    assert _entries(server, "watched", "drift.checked")[-1]["details"]["recomputed"]["passed"] is False
    refused = as_dana("check", "watched", version, "--to", "staging", "--json")
    assert refused.returncode == 1 and "latest drift check failed" in refused.stdout, refused.stdout


def test_without_the_monitoring_role_posting_is_refused(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dana = _client("dana", server, monkeypatch)
    version = _version_with_profile(dana, "unwatched")
    batch, sha = _batch(tmp_path, "batch.csv", _frame(3))
    status, body = _monitored(server, "dana", "unwatched", version, batch, sha, 400)
    assert status == 403 and "monitoring_roles" in body["message"] and "ops" in body["message"], body
    cli = _cli(server, "dana", tmp_path)("drift", f"unwatched/{version}", "--current", str(batch))
    assert cli.returncode == 1 and "ops" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
    assert "dana may not post monitoring evidence" in cli.stderr, cli.stderr  # the message a post gets
    assert _entries(server, "unwatched", "monitor.batch") == []
    assert _entries(server, "unwatched", "drift.checked") == []
    # refused before the check: no MLflow run was logged for it in the drift experiment
    assert _drift_runs(dana, "unwatched") == []
    # the admin holds no role in the policy either: MLflow's admin is not a monitoring principal
    status, body = _monitored(server, "admin", "unwatched", version, batch, sha, 400)
    assert status == 403, body
    # the pre-check itself: the caller's monitoring roles, or the 403 a post would get
    status, body = server.call("dana", "GET", "/mlops/api/v1/evidence/may-post")
    assert status == 403 and "dana may not post monitoring evidence" in body["message"], body
    status, body = server.call("olga", "GET", "/mlops/api/v1/evidence/may-post")
    assert status == 200 and body["roles"] == ["ops"] and body["principal"] == "olga", body
    # `mlops monitor` asks first too: refused before the alias is resolved or a model loaded
    monitored = _cli(server, "dana", tmp_path)("monitor", "unwatched@champion", "--batch", str(batch))
    assert monitored.returncode == 1 and "dana may not post monitoring evidence" in monitored.stderr, (
        monitored.stdout + monitored.stderr
    )
    # the same command by a role holder does log its run (the search above can find one)
    ok = _cli(server, "olga", tmp_path)("drift", f"unwatched/{version}", "--current", str(batch))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert len(_drift_runs(dana, "unwatched")) == 1


def _drift_runs(client: Any, model: str) -> list[Any]:
    """The MLflow runs `mlops drift` logged for ``model`` (any ``*-drift`` experiment)."""
    ids = [e.experiment_id for e in client.search_experiments() if e.name.endswith("-drift")]
    if not ids:
        return []
    return list(client.search_runs(ids, filter_string=f"tags.`mlops.drift.model` = '{model}'"))


def test_a_claim_the_server_recomputes_differently_is_refused(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_dir: Path
) -> None:
    dana = _client("dana", server, monkeypatch)
    version = _version_with_profile(dana, "claimed")
    shifted, sha = _batch(tmp_path, "claimed-batch.csv", _frame(4, shift=3.0))
    shutil.copy(shifted, data_dir / shifted.name)
    assert _monitored(server, "olga", "claimed", version, shifted, sha, 400)[0] == 200
    forged = {
        "action": "drift.checked",
        "subject": {"model": "claimed", "version": version},
        "decision": "passed",
        "details": {
            "passed": True,
            "status": "passed",
            "share": 0.0,
            "n_current": 400,
            "reference": f"claimed v{version} profile",
            "current": f"{shifted.name} sha256:{sha}",
            "via": "laptop",  # a server-only key: never taken from the client
        },
    }
    status, body = server.call("olga", "POST", "/mlops/api/v1/evidence/drift", forged)
    assert status == 403 and "refused" in body["message"] and "passed: claimed True" in body["message"], body
    assert _entries(server, "claimed", "drift.checked") == []  # never reaches the drift gate
    [refusal] = _entries(server, "claimed", "evidence.refused")
    assert refusal["actor"] == "olga" and refusal["details"]["claim"]["passed"] is True
    assert refusal["details"]["recomputed"]["passed"] is False and refusal["details"]["recomputed"]["n_current"] == 400
    check = _cli(server, "dana", tmp_path)("check", "claimed", version, "--to", "staging", "--json")
    assert check.returncode == 1 and "no drift check" in check.stdout, check.stdout
    # a monitored batch whose row count is not what the file holds is refused the same way
    status, body = _monitored(server, "olga", "claimed", version, shifted, sha, 999)
    assert status == 403 and "rows: claimed 999, recomputed 400" in body["message"], body


def test_data_the_server_cannot_reach_is_recorded_as_not_recomputed(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dana = _client("dana", server, monkeypatch)
    version = _version_with_profile(dana, "remote")
    batch, sha = _batch(tmp_path, "laptop-only.csv", _frame(5))  # not copied to the server's data_dir
    status, posted = _monitored(server, "olga", "remote", version, batch, sha, 400)
    assert status == 200 and posted["recomputed"].startswith("not recomputed: the checked data is not under"), posted
    checked = _cli(server, "olga", tmp_path)("drift", f"remote/{version}", "--current", str(batch), "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [drift] = _entries(server, "remote", "drift.checked")
    assert drift["actor"] == "olga" and drift["details"]["passed"] is True
    assert drift["details"]["recomputed"].startswith("not recomputed: the checked data is not under")
    # recorded as the role holder's claim, it counts for the gate as a local check would
    check = _cli(server, "dana", tmp_path)("check", "remote", version, "--to", "staging", "--json")
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_evidence_endpoints_record_monitoring_actions_only(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monitoring role lets one post monitoring evidence, nothing else: no alias move, approval or drift verdict
    through the monitoring endpoint, no entry about a version the registry lacks."""
    dana = _client("dana", server, monkeypatch)
    version = _version_with_profile(dana, "scoped")
    for action in ("alias.set", "approval.granted", "drift.checked", "promotion.decided"):
        forged = {"action": action, "subject": {"model": "scoped", "version": version, "alias": "staging"}}
        status, body = server.call("olga", "POST", "/mlops/api/v1/evidence/monitoring", forged)
        assert status == 400 and action in body["message"], body
    status, body = server.call(
        "olga", "POST", "/mlops/api/v1/evidence/drift", {"action": "monitor.batch", "subject": {"model": "scoped"}}
    )
    assert status == 400, body
    ghost = {"action": "monitor.batch", "subject": {"model": "scoped", "version": "99"}, "decision": "ok"}
    assert server.call("olga", "POST", "/mlops/api/v1/evidence/monitoring", ghost)[0] == 404
    assert [e["action"] for e in _entries(server, "scoped")] == ["model.registered"]
    # an acknowledgement (`mlops alerts ack` in team mode) is recorded as the logged-in role holder's
    ack = {
        "action": "alert.acknowledged",
        "subject": {"model": "scoped"},
        "decision": "acknowledged",
        "details": {"alert_id": "scoped:drift:1", "comment": "looking into it", "via": "forged"},
    }
    status, body = server.call("olga", "POST", "/mlops/api/v1/evidence/monitoring", ack)
    assert status == 200, body
    [entry] = _entries(server, "scoped", "alert.acknowledged")
    assert entry["actor"] == "olga" and entry["seq"] == body["audit_seq"]
    assert entry["details"]["via"] == "server" and entry["details"]["dropped_claims"] == {"via": "forged"}


def test_a_dvc_dataset_in_the_servers_dvc_remote_is_recomputed_and_counts(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, git_repo: Path, data_dir: Path
) -> None:
    """A drift check of a DVC-tracked dataset (a rule naming it by DVC path): the client records the md5 DVC has for
    it, `dvc push` put its bytes in the remote the server reads (data_dir), and the server checks them again."""
    from server_fixtures import git

    dana = _client("dana", server, monkeypatch)
    version = _version_with_profile(dana, "dataset")
    dvc = [sys.executable, "-m", "dvc"]
    (git_repo / "data").mkdir()
    _frame(6).to_csv(git_repo / "data" / "holdout.csv", index=False)
    for args in (["init", "-q"], ["add", "-q", "data/holdout.csv"], ["remote", "add", "-d", "shared", str(data_dir)]):
        subprocess.run([*dvc, *args], cwd=git_repo, check=True, capture_output=True)
    subprocess.run([*dvc, "push", "-q"], cwd=git_repo, check=True, capture_output=True)
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "holdout")
    md5 = (git_repo / "data" / "holdout.csv.dvc").read_text().split("md5: ")[1].split()[0]
    assert (data_dir / "files" / "md5" / md5[:2] / md5[2:]).is_file()  # what the server can read
    as_olga = _cli(server, "olga", git_repo)
    # the server's clone does not track the dataset at its ref yet: a clear error naming the path and the ref
    untracked = _cli(server, "dana", git_repo)("check", "dataset", version, "--to", "champion")
    assert untracked.returncode == 2 and "data/holdout.csv" in untracked.stderr, untracked.stdout + untracked.stderr
    assert "does not track it at main" in untracked.stderr, untracked.stderr
    assert server.repo is not None
    (server.repo / "data").mkdir(exist_ok=True)
    shutil.copy(git_repo / "data" / "holdout.csv.dvc", server.repo / "data" / "holdout.csv.dvc")
    git(server.repo, "add", "-A")
    git(server.repo, "commit", "-qm", "track the holdout set")
    time.sleep(1.2)  # the server re-resolves its ref at most once a second
    before = _cli(server, "dana", git_repo)("check", "dataset", version, "--to", "champion", "--json")
    assert before.returncode == 1 and "data/holdout.csv" in before.stdout, before.stdout + before.stderr

    # a claim naming the dataset with other bytes' md5 (a working-copy .dvc edit) is refused and audited
    quiet_md5 = hashlib.md5(b"other bytes").hexdigest()
    forged = {
        "action": "drift.checked",
        "subject": {"model": "dataset", "version": version},
        "decision": "passed",
        "details": {
            "passed": True,
            "status": "passed",
            "share": 0.0,
            "n_current": 400,
            "reference": f"dataset v{version} profile",
            "current": "holdout.csv sha256:00",
            "dvc_path": "data/holdout.csv",
            "dvc_md5": quiet_md5,
        },
    }
    status, body = server.call("olga", "POST", "/mlops/api/v1/evidence/drift", forged)
    assert status == 403 and f"dvc_md5 of data/holdout.csv: claimed {quiet_md5}" in body["message"], body
    assert "committed at main" in body["message"] and md5 in body["message"], body
    assert _entries(server, "dataset", "drift.checked") == []
    [refusal] = _entries(server, "dataset", "evidence.refused")
    assert refusal["actor"] == "olga" and refusal["details"]["claim"]["dvc_md5"] == quiet_md5
    assert refusal["details"]["recomputed"]["dvc_md5"] == md5
    checked = as_olga("drift", f"dataset/{version}", "--current", "data/holdout.csv", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [drift] = _entries(server, "dataset", "drift.checked")
    assert drift["actor"] == "olga" and drift["details"]["dvc_path"] == "data/holdout.csv"
    assert drift["details"]["dvc_md5"] == md5 and drift["details"]["recomputed"]["data"] == md5[2:]
    assert drift["details"]["recomputed"]["passed"] is True and drift["details"]["recomputed"]["n_current"] == 400
    after = _cli(server, "dana", git_repo)("check", "dataset", version, "--to", "champion", "--json")
    assert after.returncode == 0, after.stdout + after.stderr
