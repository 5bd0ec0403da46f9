"""End to end on real tools: `dvc repro` of the example pipeline registers a governed version whose MLflow tags match
dvc.lock and `git rev-parse HEAD`; a fine-tuned version records its parent and `mlops lineage` shows the ancestry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import git
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import demo  # noqa: E402

from mlops_layer import api  # noqa: E402
from mlops_layer.adapters import dvc  # noqa: E402
from mlops_layer.adapters.mlflow import MlflowRegistry  # noqa: E402
from mlops_layer.cli.main import app  # noqa: E402

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"


def _repro(ws: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "repro"], cwd=ws, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = demo.prepare_workspace(tmp_path_factory.mktemp("e2e") / "ws")
    _repro(ws)
    return ws


def test_registered_version_matches_dvc_lock_and_git(workspace: Path) -> None:
    cfg = api.settings(workspace)
    registry = MlflowRegistry(cfg.tracking_uri)
    version = registry.get_version(MODEL, "1")
    assert version.tags["mlops.git.commit"] == git(workspace, "rev-parse", "HEAD")
    assert version.tags["mlops.git.dirty"] == "false"
    train = dvc.read_stage(workspace, "train")
    assert train.deps, "the train stage has dependencies in dvc.lock"
    for ref in (*train.deps, *train.outs):
        assert version.tags[f"mlops.data.{ref.role}.{ref.path}"] == f"md5={ref.md5} size={ref.size}"
    run = registry.get_run(version.run_id or "")
    assert run.params["train.n_estimators"] == "60"
    assert {"accuracy", "f1", "roc_auc"} <= set(run.metrics)
    metrics = json.loads((workspace / "metrics.json").read_text())
    assert run.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert version.tags["mlops.audit.seq"].isdigit()


def test_lineage_json_contract(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace)
    result = CliRunner().invoke(app, ["lineage", MODEL, "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"model", "version", "run_id", "git", "data", "params", "parent"} <= set(data)
    assert data["git"]["commit"] == git(workspace, "rev-parse", "HEAD") and data["git"]["dirty"] is False
    lock_md5 = {d.path: d.md5 for d in dvc.read_stage(workspace, "train").deps}
    assert {d["path"]: d["md5"] for d in data["data"] if d["role"] == "dep"} == lock_md5
    assert all({"path", "md5", "size"} <= set(d) for d in data["data"])
    assert data["parent"] is None


def test_fine_tuned_version_records_parent_and_ancestry(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["train"]["parent"] = f"{MODEL}/1"
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(workspace, "add", "-A")
    git(workspace, "commit", "-qm", "fine-tune v1")
    _repro(workspace)
    monkeypatch.chdir(workspace)
    report = api.lineage(MODEL, "2")
    assert report.lineage.parent is not None and report.lineage.parent.version == "1"
    assert [a["version"] for a in report.ancestry] == ["1"]
    result = CliRunner().invoke(app, ["lineage", MODEL, "2"])
    assert result.exit_code == 0 and "ancestry" in result.output
    model = api.load_model(f"{MODEL}/2")
    assert model.n_estimators == 60 + 30  # the parent's trees kept, new ones grown
