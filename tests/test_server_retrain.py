"""`mlops retrain` in team mode, end to end on real tools: the example project's DVC pipeline trains and registers
through the governing server (PostgreSQL + `mlflow server --app-name mlops`), CI's service account retrains it on a
labelled batch, and the server decides and records every step — no local audit trail is ever opened.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import git
from server_fixtures import RunningServer, governing_server, mlflow_login

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import demo  # noqa: E402

from mlops_layer import api  # noqa: E402
from mlops_layer.adapters import dvc  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
MODEL = "breast-cancer-classifier"
PASSWORD = "Ci-bot-pass-1234"
POLICY = """version: 1
roles:
  alice@example.com: [model-risk]
service_accounts: [ci-bot]
targets:
  staging:
    auto_promote: true
    rules:
      - {type: metric_threshold, metric: accuracy, min: 0.8}
  champion:
    auto_promote: true
    rules:
      - {type: no_regression, metric: accuracy, direction: higher, min_delta: -0.2}
      - {type: promotion_order, must_have_held: staging}
"""


@pytest.fixture(scope="module")
def server(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with governing_server(
        pg_server_url,
        tmp_path_factory.mktemp("retrain-server"),
        policy=POLICY,
        users={"ci-bot": PASSWORD},
        signers={},
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def ws(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example project pointed at the governing server, v1 trained, registered and promoted as ci-bot."""
    saved_path = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{saved_path}"  # dvc repro runs `python`
    try:
        with mlflow_login("ci-bot", PASSWORD):
            root = demo.prepare_workspace(tmp_path_factory.mktemp("team-retrain") / "ws")
            (root / "governance" / "policy.yaml").write_text(POLICY)
            (root / "mlops.yaml").write_text(f"tracking_uri: {server.url}\nexperiment: team-retrain\n")
            git(root, "commit", "-qam", "team mode: the governing server")
            dvc.repro(root)
            git(root, "add", "-A")
            git(root, "commit", "-qm", "v1: dvc.lock, metrics and outputs")
            cfg = api.settings(root)
            for target in ("staging", "champion"):
                assert api.promote(MODEL, "1", target, settings=cfg).moved
        yield root
    finally:
        os.environ["PATH"] = saved_path


def _entries(server: RunningServer, action: str) -> list[dict[str, Any]]:
    status, body = server.call("ci-bot", "GET", f"/mlops/api/v1/audit/log?model={MODEL}&action={action}")
    assert status == 200, body
    return list(body["entries"])


def test_ci_retrains_through_the_governing_server(server: RunningServer, ws: Path) -> None:
    frame = pd.read_csv(ws / "data" / "raw" / "breast_cancer.csv").sample(120, random_state=3)
    batch = ws.parent / "labelled.csv"
    frame.to_csv(batch, index=False)
    with mlflow_login("ci-bot", PASSWORD):
        result = api.retrain(MODEL, data=batch, settings=api.settings(ws))
    assert result.ran and result.version == "2" and result.promoted_to == ("staging", "champion"), result
    started, completed = _entries(server, "retrain.started"), _entries(server, "retrain.completed")
    assert [e["actor"] for e in started] == ["ci-bot"] and [e["actor"] for e in completed] == ["ci-bot"]
    assert completed[0]["subject"]["version"] == "2" and completed[0]["details"]["via"] == "server"
    decided = _entries(server, "promotion.decided")
    assert {(e["subject"]["version"], e["subject"]["alias"], e["decision"]) for e in decided} >= {
        ("2", "staging", "allowed"),
        ("2", "champion", "allowed"),
    }
    [registered] = [e for e in _entries(server, "model.registered") if e["subject"]["version"] == "2"]
    assert registered["actor"] == "ci-bot" and registered["details"]["artifacts_by"] == "server"
    assert registered["details"]["artifacts"]  # the server hashed the challenger's files from its own store
    # nothing was written to a local trail: the server owns it
    assert not (ws / ".mlops" / "audit.db").exists()
