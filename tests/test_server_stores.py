"""What the governing server reads from its own stores instead of taking the client's word (issue #11), on real
servers: PostgreSQL plus `mlflow server --app-name mlops` with basic-auth, a real DVC project pushed with `dvc push` to
a local-folder DVC remote the server is configured to read.

- registration through the server records the sha256 the server computed from its ``--artifacts-destination``;
- a registrant's claimed digests that lie are kept as a claim and refuse the promotion;
- a file swapped in the artifacts destination after registration refuses the promotion, naming the file;
- a version whose files the server cannot read is registered "not computed" and refused;
- ``lineage_clean``'s data-in-remote check looks the recorded DVC md5s up in the configured remote.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
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
    git,
    governing_server,
    mlflow_login,
    register_run,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORDS = {"admin": ADMIN_PASSWORD, "dana": "Dana-pass-1234"}
CLAIM = "mlops.claims.model_files"
POLICY = """version: 1
roles: {}
targets:
  staging:
    rules:
      - {type: metric_threshold, metric: accuracy, min: 0.5}
  production:
    rules:
      - {type: lineage_clean, require_committed: true, require_data_in_remote: true, require_lock_up_to_date: false}
"""
FILES = {"MLmodel": "flavors: {}\n", "model.pkl": "pretend-pickle-bytes\n"}


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _sha(p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def _dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(scope="module")
def server(pg_server_url: str, base: Path) -> Iterator[RunningServer]:
    with governing_server(
        pg_server_url,
        base / "server",
        policy=POLICY,
        users={"dana": PASSWORDS["dana"]},
        signers={},
        extra_config=f"dvc_remote: {base / 'dvc-remote'}\n",
    ) as srv:
        yield srv


@pytest.fixture
def dana(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "dana")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS["dana"])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(server.url, server.url)


def _entries(server: RunningServer, model: str, action: str) -> list[dict[str, Any]]:
    status, body = server.call("admin", "GET", f"/mlops/api/v1/audit/log?model={model}&action={action}")
    assert status == 200, body
    return list(body["entries"])


def _check(server: RunningServer, model: str, version: str, to: str) -> dict[str, Any]:
    status, decision = server.call(
        "dana", "POST", "/mlops/api/v1/check", {"model": model, "version": version, "to": to}
    )
    assert status == 200, decision
    return dict(decision)


def _rule(decision: dict[str, Any], name: str) -> dict[str, Any]:
    [rule] = [r for r in decision["rules"] if r["name"].startswith(name)]
    return dict(rule)


def _files_version(
    client: Any, model: str, files: dict[str, str] | None = None, claim: dict[str, str] | None = None
) -> tuple[str, str]:
    """A run with ``files`` under ``model/`` (uploaded through the server) registered from ``runs:/ID/model``, the
    client claiming ``claim`` as the files' digests: (version, run artifact folder on the server's disk)."""
    run = finished_run(client, "stores", files=files, metrics={"accuracy": 0.9})
    version = register_run(client, model, run, tags={CLAIM: json.dumps(claim)} if claim is not None else None)
    return version, run.info.artifact_uri


def _on_disk(server_base: Path, artifact_uri: str) -> Path:
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    return server_base / "artifacts" / artifact_uri[len("mlflow-artifacts:/") :].lstrip("/")


def test_registration_records_the_servers_digests_and_a_swapped_file_is_refused(
    server: RunningServer, dana: Any, base: Path
) -> None:
    from mlflow.exceptions import MlflowException

    truth = {name: _sha(text.encode()) for name, text in FILES.items()}
    version, artifact_uri = _files_version(dana, "swapped", FILES, claim=truth)
    [entry] = _entries(server, "swapped", "model.registered")
    details = entry["details"]
    folder = _on_disk(base / "server", artifact_uri) / "model"
    # the server's facts are the real files in its artifacts destination
    assert details["artifacts_by"] == "server" and details["artifacts"] == _tree(folder) == truth
    assert details["artifacts_claimed"] == truth and "artifacts_claim_problem" not in details
    assert _rule(_check(server, "swapped", version, "staging"), "model_files")["passed"]
    # someone with write access to the artifact store swaps the pickle after registration
    (folder / "model.pkl").write_bytes(b"malicious-pickle")
    decision = _check(server, "swapped", version, "staging")
    files = _rule(decision, "model_files")
    assert not decision["allowed"] and not files["passed"]
    assert files["observed"] == {"changed": ["model.pkl"]} and "model.pkl" in files["message"], files
    with pytest.raises(MlflowException) as refused:
        dana.set_registered_model_alias("swapped", "staging", version)
    assert refused.value.error_code == "PERMISSION_DENIED" and "model.pkl" in refused.value.message
    assert "staging" not in dana.get_registered_model("swapped").aliases
    # restored bytes are the registered bytes again
    (folder / "model.pkl").write_text(FILES["model.pkl"])
    dana.set_registered_model_alias("swapped", "staging", version)
    assert dana.get_registered_model("swapped").aliases == {"staging": version}


def test_a_lying_claim_is_recorded_as_a_claim_and_refused(server: RunningServer, dana: Any) -> None:
    from mlflow.exceptions import MlflowException

    truth = {name: _sha(text.encode()) for name, text in FILES.items()}
    lie = {**truth, "model.pkl": _sha(b"the bytes I reviewed")}
    version, _uri = _files_version(dana, "lying", FILES, claim=lie)
    [entry] = _entries(server, "lying", "model.registered")
    details = entry["details"]
    assert details["artifacts"] == truth  # the fact every later check uses
    assert details["artifacts_claimed"] == lie and json.loads(details["version_claims"][CLAIM]) == lie
    assert "model.pkl" in details["artifacts_claim_problem"] and "MLmodel" not in details["artifacts_claim_problem"]
    decision = _check(server, "lying", version, "staging")
    files = _rule(decision, "model_files")
    assert not decision["allowed"] and not files["passed"] and "claimed other file digests" in files["message"]
    with pytest.raises(MlflowException) as refused:
        dana.set_registered_model_alias("lying", "staging", version)
    assert refused.value.error_code == "PERMISSION_DENIED" and "model.pkl" in refused.value.message
    # an approval binds the server's digests, not the claim
    status, ident = server.call("dana", "GET", f"/mlops/api/v1/approval-identity?model=lying&version={version}")
    from mlops_layer.governance.candidates import content_digest

    assert status == 200 and ident["digest"] == content_digest(truth), ident


def test_unreadable_files_are_not_computed_and_refused(server: RunningServer, dana: Any) -> None:
    version, _uri = _files_version(dana, "empty", files=None)
    [entry] = _entries(server, "empty", "model.registered")
    why = entry["details"]["artifacts_not_computed"]
    assert why.startswith("not computed: ") and "holds no files" in why and entry["details"]["artifacts"] == {}
    decision = _check(server, "empty", version, "staging")
    files = _rule(decision, "model_files")
    assert not decision["allowed"] and not files["passed"] and why in files["message"], files


def test_a_source_outside_the_served_store_is_not_read(server: RunningServer, dana: Any, tmp_path: Path) -> None:
    """A data scientist points an experiment's artifact location at another place the server can reach (a folder on
    its disk here; another bucket in production) and registers `runs:/ID/model` from it. MLflow itself refuses
    relative and local-path sources; the server adds that it reads only the store it serves: the version is
    recorded as not computed (outside the store), its promotion refused, and nothing of that place is read."""
    from mlflow.exceptions import MlflowException

    outside = tmp_path / "server-secrets"
    (outside / "model").mkdir(parents=True)
    (outside / "model" / "id_ed25519").write_text("not a model")
    with contextlib.suppress(MlflowException):
        dana.create_registered_model("elsewhere")
    exp = dana.create_experiment("elsewhere", artifact_location=outside.as_uri())
    run = dana.create_run(exp)
    dana.set_terminated(run.info.run_id)
    mv = dana.create_model_version("elsewhere", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    [entry] = _entries(server, "elsewhere", "model.registered")
    assert entry["subject"]["version"] == str(mv.version)
    why = entry["details"]["artifacts_not_computed"]
    assert entry["details"]["artifacts"] == {} and "outside the artifact store" in why, why
    assert "id_ed25519" not in json.dumps(entry)
    decision = _check(server, "elsewhere", str(mv.version), "staging")
    assert not decision["allowed"] and not _rule(decision, "model_files")["passed"]


@pytest.fixture(scope="module")
def dvc_project(server: RunningServer, base: Path) -> Path:
    """A git + DVC project whose `train` stage reads the DVC-tracked folder data/, reproduced and pushed with real
    `dvc repro` / `dvc push` to the folder remote the server reads; mlops.yaml points at the server."""
    root = base / "project"
    (root / "data").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    _dvc(root, "init", "-q")
    (root / "data" / "a.csv").write_text("x,y\n0,0\n1,1\n")
    (root / "data" / "b.csv").write_text("x,y\n2,0\n3,1\n")
    _dvc(root, "add", "data")
    (root / "params.yaml").write_text("train:\n  C: 0.5\n")
    copy = "import shutil; shutil.copy('data/a.csv', 'features.csv')"
    (root / "dvc.yaml").write_text(
        "stages:\n  train:\n"
        f'    cmd: {sys.executable} -c "{copy}"\n'
        "    deps: [data]\n    params: [train.C]\n    outs: [features.csv]\n"
    )
    _dvc(root, "repro", "-q")
    _dvc(root, "remote", "add", "-d", "store", str(base / "dvc-remote"))
    _dvc(root, "push", "-q")
    (root / "mlops.yaml").write_text(f"tracking_uri: {server.url}\nexperiment: stores-training\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    return root


@pytest.fixture(scope="module")
def remote_version(server: RunningServer, dvc_project: Path) -> tuple[str, str]:
    """The layer's own training and registration (as dana) in the DVC project: (version, dvc.lock md5 of data/)."""
    import yaml
    from sklearn.linear_model import LogisticRegression

    from mlops_layer import api

    with mlflow_login("dana", PASSWORDS["dana"]):
        cfg = api.settings(dvc_project)
        with api.governed_run("train", settings=cfg) as run:
            run.log_metrics({"accuracy": 0.91})
            model_uri = run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
        reg = api.register("remote-data", run.run_id, model_uri=model_uri, settings=cfg)
    lock = yaml.safe_load((dvc_project / "dvc.lock").read_text())
    return reg.version, str(lock["stages"]["train"]["deps"][0]["md5"])


def test_data_in_remote_is_checked_against_the_servers_dvc_remote(
    server: RunningServer, dvc_project: Path, remote_version: tuple[str, str], base: Path
) -> None:
    version, data_md5 = remote_version
    [entry] = _entries(server, "remote-data", "model.registered")
    assert entry["actor"] == "dana"
    # the layer's own registration: the server's digests of the logged model equal what the client claimed
    details = entry["details"]
    assert details["artifacts"] and details["artifacts"] == details["artifacts_claimed"], details
    assert "MLmodel" in details["artifacts"] and "artifacts_claim_problem" not in details
    assert data_md5.endswith(".dir")

    decision = _check(server, "remote-data", version, "production")
    rule = _rule(decision, "lineage_clean")
    assert decision["allowed"] and rule["passed"] and rule["observed"]["data_in_remote"] is True, decision

    # one file of the folder is missing from the remote: refused, naming the file and its md5
    remote = base / "dvc-remote" / "files" / "md5"
    b_md5 = hashlib.md5((dvc_project / "data" / "b.csv").read_bytes(), usedforsecurity=False).hexdigest()
    b_object = remote / b_md5[:2] / b_md5[2:]
    assert b_object.is_file()
    kept = b_object.read_bytes()
    b_object.unlink()
    try:
        decision = _check(server, "remote-data", version, "production")
        rule = _rule(decision, "lineage_clean")
        assert not decision["allowed"] and rule["observed"]["data_in_remote"] is False
        assert f"data/b.csv (md5 {b_md5})" in rule["message"] and "a.csv" not in rule["message"], rule
        # the folder's own listing missing: refused, naming the folder's .dir md5
        dir_object = remote / data_md5[:2] / data_md5[2:]
        listing = dir_object.read_bytes()
        dir_object.unlink()
        try:
            rule = _rule(_check(server, "remote-data", version, "production"), "lineage_clean")
            assert not rule["passed"] and f"data (md5 {data_md5})" in rule["message"], rule
        finally:
            dir_object.write_bytes(listing)
    finally:
        b_object.write_bytes(kept)
    assert _check(server, "remote-data", version, "production")["allowed"]

    # the remote unreachable: not checked, which the rule treats as it always has (cannot tell: refused)
    moved = base / "dvc-remote-away"
    shutil.move(base / "dvc-remote", moved)
    try:
        decision = _check(server, "remote-data", version, "production")
        rule = _rule(decision, "lineage_clean")
        assert not decision["allowed"] and rule["observed"]["data_in_remote"] is None
        assert "cannot tell whether the data is in the DVC remote (not checked: DVC remote" in rule["message"], rule
    finally:
        shutil.move(moved, base / "dvc-remote")
    assert _check(server, "remote-data", version, "production")["allowed"]


def test_data_in_remote_is_not_checked_without_a_configured_remote(
    server: RunningServer, dana: Any, remote_version: tuple[str, str], base: Path, tmp_path: Path
) -> None:
    """The same version judged by the server's probe under a config naming no DVC remote: "not checked" (and the
    rule refuses, as it always has for what it cannot tell); naming the remote, the md5s are found."""
    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.server.config import load_server_config
    from mlops_layer.server.stores import lineage_probe

    info = MlflowRegistry(server.url).get_version("remote-data", remote_version[0])  # as dana (the fixture's login)
    config = tmp_path / "server.yaml"
    config.write_text(f"governance_repo: {tmp_path}\naudit_url: sqlite:///{tmp_path / 'a.db'}\n")
    unconfigured = load_server_config(config)
    assert unconfigured.dvc_remote is None
    status = lineage_probe(unconfigured)(info, True, False)
    assert status.data_in_remote is None and status.committed is True
    assert status.detail["data_in_remote"].startswith("not checked: the governing server has no DVC remote")
    config.write_text(config.read_text() + f"dvc_remote: {base / 'dvc-remote'}\n")
    configured = load_server_config(config)
    assert configured.dvc_remote == str(base / "dvc-remote")
    assert lineage_probe(configured)(info, True, False).data_in_remote is True
