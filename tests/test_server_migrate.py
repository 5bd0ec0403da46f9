"""``mlops migrate`` in team mode, done by the governing server (issue #11), on a real server: PostgreSQL plus
`mlflow server --app-name mlops` with basic-auth, the CLI as a subprocess without mlflow.

Versions the server holds no digests of are refused promotion: one registered while its files were not in the
artifact store ("not computed"), one created in the backend store while the app did not govern it (no registration
entry at all). A non-admin's migration is refused (exit 1, audited); an admin's dry run records nothing; the admin's
migration records server-computed snapshots and the promotions pass; a second one records nothing; a version whose
files are still unreadable is skipped with the reason; a file swapped under a registered version is not laundered.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_fixtures import (
    ADMIN_PASSWORD,
    RunningServer,
    finished_run,
    mlflow_client_as,
    register_run,
    start_governing_server,
)
from server_fixtures import CLI_SNIPPET as _CLI

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORDS = {"admin": ADMIN_PASSWORD, "dana": "Dana-pass-1234"}
POLICY = """version: 1
roles: {}
targets:
  staging:
    rules:
      - {type: metric_threshold, metric: accuracy, min: 0.5}
"""
FILES = {"MLmodel": "flavors: {}\n", "model.pkl": "pretend-pickle-bytes\n"}
TRUTH = {name: "sha256:" + hashlib.sha256(text.encode()).hexdigest() for name, text in FILES.items()}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("migrate")


@pytest.fixture(scope="module")
def backend(pg_server_url: str) -> str:
    from pg_fixtures import create_database

    return create_database(pg_server_url)


@pytest.fixture(scope="module")
def server(pg_server_url: str, backend: str, base: Path) -> Iterator[RunningServer]:
    from pg_fixtures import create_database

    auth, audit = (create_database(pg_server_url) for _ in range(2))
    srv = start_governing_server(
        backend, auth, audit, base / "server", policy=POLICY, users={"dana": PASSWORDS["dana"]}, signers={}
    )
    yield srv
    srv.stop()


def _mlops(server: RunningServer, user: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as ``user`` against the governing server (MLflow's credential variables only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=PASSWORDS[user])
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def _entries(server: RunningServer, action: str | None = None) -> list[dict[str, Any]]:
    query = f"?action={action}" if action else ""
    status, body = server.call("admin", "GET", f"/mlops/api/v1/audit/log{query}")
    assert status == 200, body
    return list(body["entries"])


def _check(server: RunningServer, model: str, version: str) -> dict[str, Any]:
    status, decision = server.call(
        "dana", "POST", "/mlops/api/v1/check", {"model": model, "version": version, "to": "staging"}
    )
    assert status == 200, decision
    return dict(decision)


def _rule(decision: dict[str, Any], name: str) -> dict[str, Any]:
    [rule] = [r for r in decision["rules"] if r["name"].startswith(name)]
    return dict(rule)


def _run(client: Any, files: dict[str, str] | None, accuracy: float) -> Any:
    """A run created through the server with ``files`` uploaded under ``model/`` and ``accuracy`` logged."""
    return finished_run(client, "migrate", files=files, metrics={"accuracy": accuracy})


def _register(client: Any, model: str, run: Any) -> str:
    return register_run(client, model, run)


def _on_disk(server_base: Path, artifact_uri: str) -> Path:
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    return server_base / "artifacts" / artifact_uri[len("mlflow-artifacts:/") :].lstrip("/") / "model"


def test_an_admin_migrates_what_the_server_holds_no_digests_of(
    server: RunningServer, backend: str, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    dana = mlflow_client_as(server, "dana", PASSWORDS["dana"], monkeypatch)
    # registered through the server while its files were not in the artifact store: "not computed"
    late_run = _run(dana, None, 0.9)
    late = _register(dana, "late-files", late_run)
    # registered through the server, files never uploaded: stays unreadable
    empty = _register(dana, "no-files", _run(dana, None, 0.9))
    # registered properly; then someone swaps its pickle in the artifact store
    good_run = _run(dana, FILES, 0.9)
    good = _register(dana, "good", good_run)
    # trained through the server, but its version created in the backend store while the app did not govern it
    old_run = _run(dana, FILES, 0.8)
    direct = MlflowClient(tracking_uri=backend, registry_uri=backend)
    direct.create_registered_model("before-app")
    old = str(
        direct.create_model_version("before-app", f"runs:/{old_run.info.run_id}/model", old_run.info.run_id).version
    )
    assert not [e for e in _entries(server, "model.registered") if e["subject"]["model"] == "before-app"]

    why = _entries(server, "model.registered")
    [late_entry] = [e for e in why if e["subject"]["model"] == "late-files"]
    assert "not computed" in late_entry["details"]["artifacts_not_computed"]
    refused = _rule(_check(server, "late-files", late), "model_files")
    assert not refused["passed"] and "not computed" in refused["message"] and "mlops migrate" in refused["message"]
    refused = _rule(_check(server, "before-app", old), "model_files")
    assert not refused["passed"] and "no file digests recorded" in refused["message"], refused
    assert _rule(_check(server, "good", good), "model_files")["passed"]
    swapped = _on_disk(base / "server", good_run.info.artifact_uri) / "model.pkl"
    swapped.write_bytes(b"malicious-pickle")
    # the admin puts the late version's files in place (an admin may upload under a run that backs a version)
    admin = mlflow_client_as(server, "admin", ADMIN_PASSWORD, monkeypatch)
    for name, text in FILES.items():
        admin.log_text(late_run.info.run_id, text, f"model/{name}")

    # a client loading the version (`mlops monitor`) finds no digests to verify its bytes against yet
    from mlops_layer import api
    from mlops_layer.api.loading import registered_digests

    (tmp_path / "mlops.yaml").write_text(f"tracking_uri: {server.url}\nexperiment: migrate\n")
    cfg = api.settings(tmp_path)
    assert registered_digests(cfg, "before-app", old) is None and registered_digests(cfg, "late-files", late) is None

    # a data scientist may not migrate: exit 1, the refusal audited
    size = len(_entries(server))
    denied = _mlops(server, "dana", tmp_path, "migrate", "--json")
    assert denied.returncode == 1 and "only an MLflow admin" in denied.stderr, denied.stderr
    assert "NO-MLFLOW" in denied.stderr and "Traceback" not in denied.stderr
    [guard] = [e for e in _entries(server)[size:] if e["action"] == "registry.guard"]
    assert guard["actor"] == "dana" and guard["decision"] == "refused" and "migrate" in guard["details"]["change"]
    assert not _entries(server, "model.snapshot")

    # the admin's dry run lists what would be recorded and records nothing
    size = len(_entries(server))
    dry = _mlops(server, "admin", tmp_path, "migrate", "--dry-run", "--json")
    assert dry.returncode == 0 and "NO-MLFLOW" in dry.stderr, dry.stderr
    planned = json.loads(dry.stdout)
    by_model = {r["model"]: r for r in planned["recorded"]}
    assert set(by_model) == {"late-files", "before-app"}, planned
    assert by_model["late-files"]["artifacts"] == TRUTH and by_model["late-files"]["artifacts_by"] == "server"
    assert "metrics" not in by_model["late-files"]  # its registration froze them: never replaced
    assert by_model["before-app"]["registered_by_migration"] is True
    assert by_model["before-app"]["metrics"] == {"accuracy": 0.8} and by_model["before-app"]["artifacts"] == TRUTH
    assert not any("audit_seq" in r for r in planned["recorded"])
    [skip] = planned["skipped"]
    assert skip.startswith(f"no-files v{empty}: ") and "holds no files" in skip
    assert len(_entries(server)) == size and not _entries(server, "model.snapshot")

    # the admin's migration: one server-computed snapshot per version, then the promotions pass
    done = _mlops(server, "admin", tmp_path, "migrate")
    assert done.returncode == 0 and "NO-MLFLOW" in done.stderr, done.stderr
    assert f"recorded a snapshot of late-files v{late}" in done.stdout and f"before-app v{old}" in done.stdout
    assert f"skipped: no-files v{empty}" in done.stdout
    snapshots = {e["subject"]["model"]: e for e in _entries(server, "model.snapshot")}
    assert set(snapshots) == {"late-files", "before-app"}
    for entry in snapshots.values():
        details = entry["details"]
        assert entry["actor"] == "admin" and details["artifacts_by"] == "server" and details["artifacts"] == TRUTH
        assert details["trust"] == "first use, at migration" and details["via"] == "server"
    assert snapshots["before-app"]["details"]["registered_by_migration"] is True
    assert snapshots["before-app"]["details"]["registration_seq"] is None
    assert snapshots["late-files"]["details"]["registration_seq"] == late_entry["seq"]
    status, verify = server.call("admin", "GET", "/mlops/api/v1/audit/verify")
    assert status == 200 and verify["ok"] and max(c["size"] for c in verify["checkpoints"]) == verify["size"]

    assert registered_digests(cfg, "before-app", old) == TRUTH == registered_digests(cfg, "late-files", late)

    # the migrated digests bind the bytes: a swap after migration is refused, the restored bytes pass
    late_pkl = _on_disk(base / "server", late_run.info.artifact_uri) / "model.pkl"
    late_pkl.write_bytes(b"swapped-after-migration")
    files = _rule(_check(server, "late-files", late), "model_files")
    assert not files["passed"] and files["observed"] == {"changed": ["model.pkl"]}, files
    late_pkl.write_text(FILES["model.pkl"])
    dana.set_registered_model_alias("late-files", "staging", late)
    dana.set_registered_model_alias("before-app", "staging", old)
    assert dana.get_registered_model("late-files").aliases == {"staging": late}
    assert dana.get_registered_model("before-app").aliases == {"staging": old}
    decided = {e["subject"]["model"]: e for e in _entries(server, "promotion.decided") if e["decision"] == "allowed"}
    assert {"late-files", "before-app"} <= set(decided)

    # a migration never launders a swapped file of a registered version, nor reads what is still unreadable
    size = len(_entries(server))
    again = _mlops(server, "admin", tmp_path, "migrate", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["recorded"] == [] and [s.split(":")[0] for s in report["skipped"]] == [f"no-files v{empty}"]
    assert len(_entries(server)) == size
    files = _rule(_check(server, "good", good), "model_files")
    assert not files["passed"] and files["observed"] == {"changed": ["model.pkl"]}, files
    files = _rule(_check(server, "no-files", empty), "model_files")
    assert not files["passed"] and "not computed" in files["message"]
