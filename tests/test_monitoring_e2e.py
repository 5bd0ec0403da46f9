"""Monitoring end to end on real tools: an MLflow sqlite store with a registered champion (model + reference profile),
the SQLite audit trail, a real webhook receiver and a real SMTP server, the CLI."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import commit_governance
from typer.testing import CliRunner

from mlops_layer import api
from mlops_layer.audit import actions
from mlops_layer.audit.store import AuditStore
from mlops_layer.cli.main import app
from mlops_layer.config import Settings
from mlops_layer.errors import InputError
from mlops_layer.monitoring.notifiers import NotifierConfig, RetryPolicy, SmtpConfig, WebhookConfig, verify_signature

SECRET = "e2e-secret"
MODEL = "churn"
FEATURES = ["tenure", "spend", "calls", "region"]
T0 = datetime(2025, 3, 1, 8, tzinfo=timezone.utc)


def make_frame(n: int, *, shift: float = 0.0, seed: int = 0, flip: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.normal(24 + shift * 12, 12, n)
    spend = rng.normal(50 + shift * 20, 20, n)
    calls = rng.poisson(3, n).astype(float)
    region = rng.integers(0, 3, n).astype(float)  # an encoded category
    logit = -0.08 * (tenure - 24) + 0.04 * (spend - 50) + 0.3 * (calls - 3)
    y = (logit + rng.normal(0, 0.5, n) > 0).astype(int)
    if flip:
        idx = rng.random(n) < flip
        y[idx] = 1 - y[idx]
    return pd.DataFrame(
        {"customer_id": np.arange(n), "tenure": tenure, "spend": spend, "calls": calls, "region": region, "churned": y}
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A champion trained and registered once: sklearn model, eval metrics and reference profile on its run."""
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    from mlops_layer.adapters.mlflow import MlflowTracking
    from mlops_layer.drift.profile import build_profile
    from mlops_layer.lineage import PROFILE_ARTIFACT

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    train = make_frame(4000, seed=1)
    features = train[FEATURES]
    model = LogisticRegression(max_iter=500).fit(features, train["churned"])
    tracking = MlflowTracking(uri, uri)
    exp = tracking.ensure_experiment("train", str(folder / "art"))
    with tracking.run(exp, "train", {}) as run_id:
        model_uri = tracking.log_sklearn_model(model, "model", ["scikit-learn"])
        tracking.log_metrics({"accuracy": float(model.score(features, train["churned"])), "train_accuracy": 1.0})
        tracking.log_dict(build_profile(features).to_dict(), PROFILE_ARTIFACT)
    client = MlflowClient(uri, uri)
    client.create_registered_model(MODEL)
    mv = client.create_model_version(MODEL, source=model_uri, run_id=run_id)
    client.set_registered_model_alias(MODEL, "champion", mv.version)
    from mlops_layer.adapters.mlflow import MlflowRegistry

    return {
        "uri": uri,
        "version": str(mv.version),
        "accuracy": float(model.score(features, train["churned"])),
        "run_id": run_id,
        # what a registration through the layer records: monitoring loads only bytes that match it
        "artifacts": MlflowRegistry(uri, uri).artifact_digests(f"models:/{MODEL}/{mv.version}"),
    }


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


POLICY = """\
version: 1
roles: {}
targets: {}
drift:
  drift_share: 0.5
alerts:
  - name: data-drift
    type: drift_share
    max: 0.4
    window: {breaches: 2, of: 3}
    clear_after: 2
    severity: critical
  - name: accuracy-floor
    type: metric_threshold
    metric: accuracy
    min: 0.75
  - name: accuracy-drop
    type: metric_drop
    metric: accuracy
    max_drop: 0.1
"""


def card(webhook: str) -> str:
    return textwrap.dedent(
        f"""\
        business_owner: bob@example.com
        intended_use: Who is about to churn.
        intended_users: [retention team]
        prediction_consumption: nightly batch
        sla: {{availability_percent: 99.5}}
        retraining: {{method: drift-triggered, cadence: on drift alert}}
        approver_roles: [model-risk]
        sensitivity: internal
        code_shareable: false
        stakeholders:
          - {{name: Ops, webhook: "{webhook}", alerts: [data-drift]}}
          - {{name: Owner, email: owner@example.com}}
        """
    )


@pytest.fixture
def project(tmp_path: Path, store: dict[str, Any], monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Settings:
    root = tmp_path / "proj"
    (root / "governance" / "models").mkdir(parents=True)
    (root / "governance" / "policy.yaml").write_text(POLICY)
    (root / "governance" / "models" / f"{MODEL}.yaml").write_text(card(receiver.url))
    (root / "mlops.yaml").write_text(f"tracking_uri: {store['uri']}\nexperiment: train\n")
    commit_governance(root)
    cfg = api.settings(root)
    with AuditStore.open(cfg.audit_url) as trail:
        trail.append(
            actions.MODEL_REGISTERED,
            actor="ds@example.com",
            subject={"model": MODEL, "version": store["version"]},
            run_id=store["run_id"],
            details={"artifacts": store["artifacts"]},
        )
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLOPS_WEBHOOK_SECRET", SECRET)
    return api.settings(root)


def write_batch(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    path = folder / name
    frame.to_csv(path, index=False) if name.endswith(".csv") else frame.to_parquet(path, index=False)
    return path


def fast(smtp_port: int | None = None) -> NotifierConfig:
    retry = RetryPolicy(retries=1, backoff_seconds=0.01, timeout_seconds=2, max_total_seconds=5)
    email = SmtpConfig(host="127.0.0.1", port=smtp_port, sender="mlops@example.com", retry=retry) if smtp_port else None
    return NotifierConfig(webhook=WebhookConfig(retry=retry), email=email)


def entries(cfg: Settings) -> list[Any]:
    with AuditStore.open(cfg.audit_url) as trail:
        return list(trail.entries(model=MODEL))


def test_drift_fires_once_notifies_then_clears(
    project: Settings, store: dict[str, Any], receiver: Receiver, smtp: tuple[Inbox, int]
) -> None:
    from mlflow import MlflowClient

    inbox, port = smtp
    cfg = project
    shifts = [0.0, 1.5, 1.5, 1.5, 1.5, 0.0, 0.0]
    results = []
    for i, shift in enumerate(shifts):
        path = write_batch(cfg.root, f"batch{i}.csv", make_frame(600, shift=shift, seed=10 + i))
        results.append(
            api.monitor(
                f"{MODEL}@champion",
                path,
                labels="churned",
                at=T0 + timedelta(hours=i),
                notifications=fast(port),
                settings=cfg,
            )
        )
    first = results[0]
    assert first.version == store["version"] and first.seq == 1 and first.rows == 600
    assert first.drift_share is not None and first.drift_share < 0.4 and first.events == ()
    assert first.promoted == {"accuracy": pytest.approx(store["accuracy"])}
    assert 0.75 < first.metrics["accuracy"] <= 1.0 and "prediction.share.1" in first.prediction
    assert [(r.seq, e.kind, e.rule) for r in results for e in r.events] == [
        (3, "fired", "data-drift"),
        (7, "cleared", "data-drift"),
    ]
    fired = results[2].events[0]
    assert fired.observed is not None and fired.observed >= 0.5 and fired.threshold == 0.4
    assert fired.evidence["run_id"] == results[2].run_id and fired.evidence["step"] == "3"
    assert results[3].open_alerts == ("data-drift",) and results[-1].open_alerts == ()
    # the Evidently report was written when the alert fired (only then) and is the alert's evidence
    report = Path(fired.evidence["report"])
    assert report.is_file() and report.suffix == ".html" and results[2].report == str(report)
    assert [r.report is not None for r in results] == [False, False, True, False, False, False, False]

    # the webhook receiver got exactly one signed notification per event (Ops only wants data-drift)
    payloads = receiver.payloads()
    assert [(p["action"], p["data"]["rule"]) for p in payloads] == [("fired", "data-drift"), ("cleared", "data-drift")]
    assert all(verify_signature(SECRET, r["headers"], r["body"]) for r in receiver.requests)
    assert payloads[0]["data"]["model"] == MODEL and payloads[0]["data"]["version"] == store["version"]
    assert payloads[0]["data"]["evidence"]["report"] == str(report)
    # the owner's email arrived through the SMTP server, once per event
    assert len(inbox.messages) == 2 and inbox.messages[0].rcpt_tos == ["owner@example.com"]
    assert b"data-drift" in inbox.messages[0].content

    # one MLflow run for the version, one point per batch, with the batch times
    client = MlflowClient(store["uri"], store["uri"])
    history = client.get_metric_history(first.run_id, "drift.share")
    assert [m.step for m in history] == list(range(1, 8))
    assert history[0].timestamp == int(T0.timestamp() * 1000)
    assert len(client.get_metric_history(first.run_id, "accuracy")) == 7
    assert client.get_experiment_by_name(f"monitoring/{MODEL}") is not None
    reports = [a.path for a in client.list_artifacts(first.run_id, "reports/batch-000003")]
    assert reports == [f"reports/batch-000003/{report.name}"]

    # the trail tells the story and verifies
    acts = [e.action for e in entries(cfg)]
    assert acts.count(actions.MONITOR_BATCH) == 7
    assert acts.count(actions.ALERT_FIRED) == 1 and acts.count(actions.ALERT_CLEARED) == 1
    assert actions.NOTIFICATION_FAILED not in acts
    assert api.verify_audit(settings=cfg).ok

    status = api.alert_status(MODEL, settings=cfg)
    assert status.last_batch == 7 and status.open_alerts == () and status.queued_notifications == 0


def test_failed_webhook_is_audited_queued_and_flushed(project: Settings, receiver: Receiver) -> None:
    cfg = project
    receiver.status = 500
    for i in range(2):
        path = write_batch(cfg.root, f"b{i}.parquet", make_frame(400, shift=2.0, seed=30 + i))
        result = api.monitor(f"{MODEL}@champion", path, notifications=fast(), settings=cfg)
    assert [e.kind for e in result.events] == ["fired"]
    (failed,) = result.failed_deliveries
    assert failed.queued and failed.attempts == 2 and "HTTP 500" in str(failed.error)
    skipped = [d for d in result.deliveries if d.skipped]
    assert [d.channel for d in skipped] == ["email"]  # no SMTP server configured: skipped, not failed
    acts = [e.action for e in entries(cfg)]
    assert acts[-2:] == [actions.ALERT_FIRED, actions.NOTIFICATION_FAILED]
    assert api.alert_status(MODEL, settings=cfg).queued_notifications == 1

    receiver.status = 200
    flushed = api.flush_notifications(settings=cfg)
    assert len(flushed.delivered) == 1 and flushed.still_failed == ()
    assert receiver.requests[-1]["headers"]["X-Mlops-Delivery-Id"] == failed.delivery_id
    assert api.alert_status(MODEL, settings=cfg).queued_notifications == 0


def test_bad_input_schema_changed_and_labels_missing(project: Settings, smtp: tuple[Inbox, int]) -> None:
    cfg = project
    inbox, port = smtp
    renamed = make_frame(300, seed=5).rename(columns={"spend": "spend_eur"})
    path = write_batch(cfg.root, "renamed.csv", renamed)
    with pytest.raises(InputError, match="feature column\\(s\\) missing: spend"):
        api.monitor(f"{MODEL}@champion", path, notifications=fast(port), settings=cfg)
    (mail,) = inbox.messages  # the owner is told a production batch was refused; Ops wants drift alerts only
    assert mail.rcpt_tos == ["owner@example.com"] and b"refused (schema changed)" in mail.content
    typed = make_frame(300, seed=5)
    typed["tenure"] = "n/a"
    path = write_batch(cfg.root, "typed.csv", typed)
    with pytest.raises(InputError):
        api.monitor(f"{MODEL}@champion", path, settings=cfg)
    rejected = [e for e in entries(cfg) if e.action == actions.MONITOR_BATCH]
    assert len(rejected) == 2 and all(e.body["decision"] == "rejected" for e in rejected)
    good = write_batch(cfg.root, "good.csv", make_frame(300, seed=6))
    with pytest.raises(InputError, match="labels column 'label' is not in batch good.csv"):
        api.monitor(f"{MODEL}@champion", good, labels="label", settings=cfg)
    with pytest.raises(InputError, match="not CSV or Parquet|not a CSV or Parquet"):
        api.monitor(
            f"{MODEL}@champion", write_batch(cfg.root, "x.csv", make_frame(5)).rename(cfg.root / "x.txt"), settings=cfg
        )
    assert api.alert_status(MODEL, settings=cfg).last_batch == 0


def test_cli_monitor_json_alerts_status_and_errors(project: Settings, receiver: Receiver) -> None:
    runner = CliRunner()
    path = write_batch(project.root, "cli.csv", make_frame(500, seed=40))
    out = runner.invoke(app, ["monitor", f"{MODEL}@champion", "--batch", str(path), "--labels", "churned", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["seq"] == 1 and body["model"] == MODEL and body["alias"] == "champion"
    assert {r["rule"] for r in body["rules"]} == {"data-drift", "accuracy-floor", "accuracy-drop"}
    assert body["audit_seq"] >= 1 and body["run_id"]
    human = runner.invoke(app, ["monitor", f"{MODEL}@champion", "--batch", str(path)])
    assert human.exit_code == 0 and "batch #2" in human.output
    status = runner.invoke(app, ["alerts", "status", MODEL, "--json"])
    assert status.exit_code == 0 and json.loads(status.stdout)["last_batch"] == 2
    missing = runner.invoke(app, ["monitor", f"{MODEL}@champion", "--batch", str(path), "--labels", "nope"])
    assert missing.exit_code == 2 and "labels column 'nope'" in missing.output
    nobatch = runner.invoke(app, ["monitor", f"{MODEL}@champion", "--batch", "absent.csv"])
    assert nobatch.exit_code == 2 and "does not exist" in nobatch.output
    noalias = runner.invoke(app, ["monitor", f"{MODEL}@nope", "--batch", str(path)])
    assert noalias.exit_code == 2 and "no alias" in noalias.output
    flush = runner.invoke(app, ["alerts", "flush", "--json"])
    assert flush.exit_code == 0 and json.loads(flush.stdout) == {"delivered": [], "still_failed": []}


def test_notify_stakeholders_of_a_waiting_challenger(
    project: Settings, receiver: Receiver, smtp: tuple[Inbox, int]
) -> None:
    from mlops_layer.monitoring.dispatch import notify_stakeholders

    inbox, port = smtp
    told = notify_stakeholders(
        project,
        MODEL,
        kind="approval.requested",
        subject=f"{MODEL} v2 waits for approval to become @champion",
        details={"version": "2", "target": "champion"},
        also=["approver@example.com"],
        config=fast(port),
    )
    assert told == ["Owner (email)", "approver@example.com (email)"]  # Ops only wants data-drift alerts
    assert receiver.requests == []
    assert sorted(m.rcpt_tos[0] for m in inbox.messages) == ["approver@example.com", "owner@example.com"]
    assert b"waits for approval to become @champion" in inbox.messages[0].content
    local = (project.state_dir / "monitoring" / "notifications.jsonl").read_text().splitlines()
    assert json.loads(local[-1])["action"] == "approval.requested"
