"""Team mode on real servers: `mlflow server` with a PostgreSQL backend store and served artifacts, the audit trail
on PostgreSQL; governed training, registration, promotion and reconciliation all go through http."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TRAIN_LOCK, git

from mlops_layer import api
from mlops_layer.adapters.mlflow import MlflowRegistry
from mlops_layer.config import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POLICY = """version: 1
roles: {}
targets:
  staging:
    auto_promote: true
    rules:
      - {type: metric_threshold, metric: accuracy, min: 0.8}
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(pg_url: str, tmp_path: Path) -> Iterator[str]:
    port = _port()
    log = (tmp_path / "mlflow-server.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            pg_url,
            "--artifacts-destination",
            str(tmp_path / "served-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start: " + (tmp_path / "mlflow-server.log").read_text()[-2000:])
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def team_project(git_repo: Path, mlflow_server: str, pg_server_url: str) -> Settings:
    from pg_fixtures import create_database

    (git_repo / "params.yaml").write_text("train:\n  C: 0.5\n")
    (git_repo / "dvc.lock").write_text(TRAIN_LOCK)
    (git_repo / "governance").mkdir()
    (git_repo / "governance" / "policy.yaml").write_text(POLICY)
    audit = create_database(pg_server_url)
    (git_repo / "mlops.yaml").write_text(f"tracking_uri: {mlflow_server}\naudit_url: {audit}\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "team project")
    return api.settings(git_repo)


def test_governed_flow_through_mlflow_server_and_postgres(team_project: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    cfg = team_project
    assert cfg.tracking_uri.startswith("http://") and cfg.audit_url.startswith("postgresql")
    with api.governed_run("train", settings=cfg) as run:
        run.log_metrics({"accuracy": 0.93})
        model_uri = run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    reg = api.register("team-model", run.run_id, model_uri=model_uri, settings=cfg)
    registry = MlflowRegistry(cfg.tracking_uri)
    version = registry.get_version("team-model", reg.version)
    assert version.tags["mlops.git.commit"] == git(cfg.root, "rev-parse", "HEAD")
    assert version.tags["mlops.data.dep.data/train.csv"].startswith("md5=0123456789abcdef")
    result = api.promote("team-model", reg.version, "staging", settings=cfg)
    assert result.moved, result.decision
    assert registry.get_aliases("team-model") == {"staging": reg.version}
    assert api.load_model("team-model@staging", settings=cfg).predict([[1.0]])[0] == 1
    assert api.verify_audit(settings=cfg).ok
    # an alias moved behind the layer's back, straight through the server, is found
    registry.client.set_registered_model_alias("team-model", "champion", reg.version)
    findings = api.reconcile_audit(settings=cfg)
    assert not findings.ok and any("champion" in str(f) for f in findings.findings)
