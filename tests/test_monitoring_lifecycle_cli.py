"""`mlops alerts ack|resolve` on a real project: the SQLite audit trail, the persisted alert state, exit codes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_layer import api
from mlops_layer.audit import actions
from mlops_layer.audit.store import AuditStore
from mlops_layer.cli.main import app
from mlops_layer.monitoring.alerts import AlertRule, AlertState, BatchPoint, evaluate_alerts
from mlops_layer.monitoring.state import load_state, save_state

POLICY = """\
roles: {}
targets:
  staging:
    rules: []
alerts:
  - name: data-drift
    type: drift_share
    max: 0.3
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "policy.yaml").write_text(POLICY)
    (tmp_path / "mlops.yaml").write_text("actor: ops@example.com\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_ACTOR", raising=False)
    monkeypatch.delenv("MLOPS_AUDIT_URL", raising=False)
    rule = AlertRule(name="data-drift", type="drift_share", max=0.3)
    point = BatchPoint(1, datetime(2025, 6, 1, tzinfo=timezone.utc), "churn", "1", drift_share=0.9, alias="champion")
    state, _ = evaluate_alerts([rule], [point], AlertState(model="churn"))
    save_state(tmp_path / ".mlops", state)
    return tmp_path


def test_ack_then_resolve_through_the_cli_is_audited_and_shown(project: Path) -> None:
    runner = CliRunner()
    ack = runner.invoke(app, ["alerts", "ack", "churn", "data-drift", "--comment", "looking into it"])
    assert ack.exit_code == 0, ack.output
    assert "data-drift acknowledged (still open)" in ack.stdout
    status = json.loads(runner.invoke(app, ["alerts", "status", "churn", "--json"]).stdout)
    (row,) = status["rules"]
    assert (row["status"], row["acked_by"], row["ack_comment"], row["version"], row["alias"]) == (
        "open",
        "ops@example.com",
        "looking into it",
        "1",
        "champion",
    )
    no_reason = runner.invoke(app, ["alerts", "resolve", "churn", "data-drift"])
    assert no_reason.exit_code == 2 and "--comment" in no_reason.output
    done = runner.invoke(app, ["alerts", "resolve", "churn", "data-drift", "-m", "feed fixed", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["kind"] == "resolved"
    assert load_state(project / ".mlops", "churn").open_alerts() == []
    gone = runner.invoke(app, ["alerts", "ack", "churn", "data-drift"])
    assert gone.exit_code == 2 and "no open alert 'data-drift'" in gone.output

    cfg = api.settings(project)
    store = AuditStore.open(cfg.audit_url)
    try:
        entries = [e for e in store.entries(model="churn")]
    finally:
        store.close()
    assert [(e.action, e.actor, e.subject.get("alias"), e.details["comment"]) for e in entries] == [
        (actions.ALERT_ACKNOWLEDGED, "ops@example.com", "champion", "looking into it"),
        (actions.ALERT_RESOLVED, "ops@example.com", "champion", "feed fixed"),
    ]
