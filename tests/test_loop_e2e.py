"""Issue 6, shown end to end: `make loop`'s script runs on real git, DVC, MLflow, a real local webhook receiver and
the real audit trail; then we check what it left behind rather than what it printed."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import loop  # noqa: E402

from mlops_layer import api  # noqa: E402
from mlops_layer.adapters.mlflow import MlflowRegistry  # noqa: E402
from mlops_layer.audit import actions  # noqa: E402

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loop.main(tmp_path_factory.mktemp("loop") / "ws")


def test_alerts_fire_once_each_and_arrive_signed(ws: Path) -> None:
    received = [json.loads(line) for line in (ws / ".receiver" / "received.jsonl").read_text().splitlines()]
    assert received and all(r["verified"] for r in received)
    events = Counter(str(r["event"]) for r in received)
    assert events["mlops_alert.fired"] == 2  # data-drift and accuracy-floor, once each over three drifted batches
    assert events["mlops_notice.approval.requested"] == 1
    cfg = api.settings(ws)
    fired = [e for e in api.audit_log(model=MODEL, action=actions.ALERT_FIRED, settings=cfg)]
    assert len(fired) == 2
    batches = api.audit_log(model=MODEL, action=actions.MONITOR_BATCH, settings=cfg)
    # one healthy batch on @staging (the drift evidence champion's policy asks for), then five on @champion
    assert [b.subject.get("alias") for b in batches] == ["staging"] + ["champion"] * 5


def test_retrained_challenger_went_through_the_policy(ws: Path) -> None:
    cfg = api.settings(ws)
    registry = MlflowRegistry(cfg.tracking_uri)
    assert registry.get_aliases(MODEL) == {"staging": "2", "champion": "2"}
    story = [e.action for e in api.audit_log(model=MODEL, settings=cfg)]
    start = story.index(actions.RETRAIN_STARTED)
    assert actions.MODEL_REGISTERED in story[start:]
    assert story[start:].index(actions.RETRAIN_COMPLETED) < story[start:].index(actions.APPROVAL_GRANTED)
    completed = api.audit_log(model=MODEL, action=actions.RETRAIN_COMPLETED, settings=cfg)[-1]
    assert completed.details["promoted_to"] == ["staging"] and completed.details["waiting_for"] == "champion"
    lineage = api.lineage(MODEL, "2", settings=cfg).lineage
    raw = next(d for d in api.lineage(MODEL, "1", settings=cfg).lineage.data if d.path == "data/prepared/train.csv")
    assert next(d for d in lineage.data if d.path == "data/prepared/train.csv").md5 != raw.md5


def test_trail_verifies_and_history_tells_the_story(ws: Path) -> None:
    cfg = api.settings(ws)
    assert api.verify_audit(settings=cfg).ok
    spans = api.history(MODEL, alias="champion", settings=cfg)
    held = [s.version for s in spans.spans]
    assert held == ["1", "2"], spans
