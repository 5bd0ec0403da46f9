"""Retraining on real tools: a labelled batch becomes a DVC data version, `dvc repro` registers a challenger with
lineage, and the policy promotes it; failures leave the champion untouched and are audited; one retrain at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import git
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import demo  # noqa: E402

from mlops_layer import api  # noqa: E402
from mlops_layer.adapters import dvc  # noqa: E402
from mlops_layer.adapters.mlflow import MlflowRegistry  # noqa: E402
from mlops_layer.audit import actions  # noqa: E402
from mlops_layer.audit.store import AuditStore  # noqa: E402
from mlops_layer.cli.main import app  # noqa: E402
from mlops_layer.errors import ConcurrencyError, InputError, MlopsError  # noqa: E402
from mlops_layer.locks import file_lock, lock_path  # noqa: E402

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"
AUTO_POLICY = """\
version: 1
roles:
  alice@example.com: [model-risk]
targets:
  staging:
    auto_promote: true
    rules:
      - type: metric_threshold
        metric: accuracy
        min: 0.8
  champion:
    auto_promote: true
    rules:
      - type: no_regression
        metric: accuracy
        direction: higher
        min_delta: -0.2
      - type: promotion_order
        must_have_held: staging
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    root = demo.prepare_workspace(tmp_path_factory.mktemp("retrain") / "ws")
    (root / "governance" / "policy.yaml").write_text(AUTO_POLICY)
    git(root, "commit", "-qam", "auto-promoting policy for the retrain tests")
    dvc.repro(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1: dvc.lock, metrics and outputs")
    cfg = api.settings(root)
    for target in ("staging", "champion"):
        assert api.promote(MODEL, "1", target, settings=cfg).moved
    return root


def _batch(ws: Path, name: str, **changes: object) -> Path:
    frame = pd.read_csv(ws / "data" / "raw" / "breast_cancer.csv").sample(120, random_state=3)
    for column, value in changes.items():
        frame[column] = value
    path = ws.parent / name
    frame.to_csv(path, index=False)
    return path


def _trail(ws: Path) -> list[str]:
    with AuditStore.open(api.settings(ws).audit_url) as store:
        return [e.action for e in store.entries(model=MODEL)]


def test_retrain_with_new_data_promotes_a_challenger_with_lineage(ws: Path) -> None:
    cfg = api.settings(ws)
    before_md5 = dvc.read_dvc_file(ws / "data" / "raw.dvc")[0].md5
    result = api.retrain(MODEL, data=_batch(ws, "labels-1.csv"), settings=cfg)
    assert result.ran and result.version == "2"
    assert result.promoted_to == ("staging", "champion") and not result.waiting_for_approval
    assert result.data_version and result.data_version != before_md5
    assert MlflowRegistry(cfg.tracking_uri).get_aliases(MODEL)["champion"] == "2"
    lineage = api.lineage(MODEL, "2", settings=cfg).lineage
    assert lineage.git_commit == git(ws, "rev-parse", "HEAD") or "retrain: new data version" in git(
        ws, "log", "-1", "--format=%s", lineage.git_commit
    )
    assert "retrain: new data version" in git(ws, "log", "--format=%s")
    trail = _trail(ws)
    assert trail.index(actions.RETRAIN_STARTED) < trail.index(
        actions.MODEL_REGISTERED, trail.index(actions.RETRAIN_STARTED)
    )
    assert trail[-1] == actions.RETRAIN_COMPLETED
    # the repository is left clean: a second commit holds what `dvc repro` wrote, naming the retraining and v2
    assert git(ws, "status", "--porcelain") == ""
    assert result.commit == git(ws, "rev-parse", "HEAD") and "dvc.lock" in result.committed
    assert "metrics.json" in result.committed and result.left_to_commit == ()
    assert git(ws, "log", "-1", "--format=%s").startswith(f"retrain: {MODEL} v2 (dvc.lock, metrics and outputs")
    assert git(ws, "log", "-1", "--format=%s", "HEAD~1").startswith("retrain: new data version of data/raw")


def test_failing_pipeline_leaves_champion_untouched_and_is_audited(ws: Path) -> None:
    cfg = api.settings(ws)
    champion = MlflowRegistry(cfg.tracking_uri).get_aliases(MODEL)["champion"]
    bad = _batch(ws, "labels-bad.csv", mean_radius="not-a-number")
    with pytest.raises(MlopsError, match="failed while running the pipeline"):
        api.retrain(MODEL, data=bad, settings=cfg)
    assert MlflowRegistry(cfg.tracking_uri).get_aliases(MODEL)["champion"] == champion
    assert _trail(ws)[-1] == actions.RETRAIN_FAILED
    # put the data back the way it was, for the next tests
    git(ws, "revert", "--no-edit", "HEAD")
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "checkout", "-q"], cwd=ws, check=True)


def test_second_concurrent_retrain_says_so(ws: Path) -> None:
    cfg = api.settings(ws)
    busy = "retraining of 'breast-cancer-classifier' is busy"
    with file_lock(lock_path(cfg.state_dir, "retrain", MODEL), timeout=0), pytest.raises(ConcurrencyError, match=busy):
        api.retrain(MODEL, settings=cfg)


def test_schema_change_is_refused_before_anything_is_written(ws: Path) -> None:
    cfg = api.settings(ws)
    head = git(ws, "rev-parse", "HEAD")
    files = sorted(p.name for p in (ws / "data" / "raw").glob("*.csv"))
    frame = pd.read_csv(_batch(ws, "labels-2.csv")).drop(columns=["mean_area"])
    path = ws.parent / "labels-schema.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match="missing column\\(s\\) mean_area"):
        api.retrain(MODEL, data=path, settings=cfg)
    assert git(ws, "rev-parse", "HEAD") == head
    assert sorted(p.name for p in (ws / "data" / "raw").glob("*.csv")) == files


def test_if_needed_does_nothing_without_alert_or_due_cadence(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ws)
    result = CliRunner().invoke(app, ["retrain", MODEL, "--if-needed", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ran"] is False


def test_no_commit_prints_exactly_what_is_left(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ws)
    head = git(ws, "rev-parse", "HEAD")
    out = CliRunner().invoke(app, ["retrain", MODEL, "--data", str(_batch(ws, "labels-3.csv")), "--no-commit"])
    assert out.exit_code == 0, out.output
    assert git(ws, "log", "-1", "--format=%s").startswith("retrain: new data version")  # the data pointer: committed
    assert git(ws, "rev-parse", "HEAD~1") == head
    dirty = sorted(line.split(maxsplit=1)[1] for line in git(ws, "status", "--porcelain").splitlines())
    listed = out.stdout.split("left to commit (git add + git commit):", 1)[1].split()
    assert "dvc.lock" in dirty and sorted(listed[: len(dirty)]) == dirty
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "commit what retrain left")
