"""Global options: command-line flags come first in the settings order (flag > environment > mlops.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_layer.audit.store import AuditStore
from mlops_layer.cli.main import app

runner = CliRunner()


def test_audit_url_flag_beats_environment_and_config(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (git_repo / "mlops.yaml").write_text(f"audit_url: sqlite:///{tmp_path / 'from-config.db'}\n")
    monkeypatch.setenv("MLOPS_AUDIT_URL", f"sqlite:///{tmp_path / 'from-env.db'}")
    monkeypatch.chdir(git_repo)
    chosen = tmp_path / "from-flag.db"
    with AuditStore.open(f"sqlite:///{chosen}") as store:
        store.append("model.registered", actor="alice", subject={"model": "flagged", "version": "1"})
    result = runner.invoke(app, ["--audit-url", f"sqlite:///{chosen}", "audit", "log", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [e["subject"]["model"] for e in entries] == ["flagged"]
    assert not (tmp_path / "from-env.db").exists() and not (tmp_path / "from-config.db").exists()


def test_tracking_uri_flag_beats_environment(git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.chdir(git_repo)
    flag_uri = f"sqlite:///{tmp_path / 'flag.db'}"
    result = runner.invoke(app, ["--tracking-uri", flag_uri, "status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tracking_uri"] == flag_uri
