"""Governed registration through the api on a real git repo, a hand-written dvc.lock and a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TRAIN_LOCK, git

from mlops_layer import api
from mlops_layer.adapters.mlflow import MlflowRegistry
from mlops_layer.audit import actions
from mlops_layer.audit.store import AuditStore
from mlops_layer.config import Settings
from mlops_layer.errors import InputError


@pytest.fixture
def project(git_repo: Path) -> Settings:
    (git_repo / "params.yaml").write_text("train:\n  C: 0.5\n")
    (git_repo / "dvc.lock").write_text(TRAIN_LOCK)
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "project")
    return api.settings(git_repo)


def _governed_run_id(cfg: Settings) -> tuple[str, str]:
    with api.governed_run("train", settings=cfg) as run:
        run.log_metrics({"accuracy": 0.9})
        run.log_dict({"dummy": True}, "model/placeholder.json")
    return run.run_id, f"runs:/{run.run_id}/model"


def test_register_copies_lineage_and_audits(project: Settings) -> None:
    run_id, uri = _governed_run_id(project)
    reg = api.register("m", run_id, model_uri=uri, settings=project)
    assert reg.version == "1"
    version = MlflowRegistry(project.tracking_uri).get_version("m", "1")
    assert version.tags["mlops.git.commit"] == git(project.root, "rev-parse", "HEAD")
    assert version.tags["mlops.data.dep.data/train.csv"] == "md5=0123456789abcdef0123456789abcdef size=1234"
    assert version.tags["mlops.data.out.model.pkl"] == "md5=fedcba9876543210fedcba9876543210 size=99"
    assert version.tags["mlops.audit.seq"] == str(reg.audit_seq)
    assert version.tags["mlops.registered_by"] == project.actor
    with AuditStore.open(project.audit_url) as trail:
        entries = list(trail.entries(model="m"))
    assert [e.action for e in entries] == [actions.MODEL_REGISTER_STARTED, actions.MODEL_REGISTERED]
    assert entries[-1].seq == reg.audit_seq
    assert entries[-1].run_id == run_id
    assert entries[-1].dvc_hashes == {
        "data/train.csv": "0123456789abcdef0123456789abcdef",
        "model.pkl": "fedcba9876543210fedcba9876543210",
    }


def test_dirty_code_is_recorded_with_a_diff_hash(project: Settings) -> None:
    (project.root / "README.md").write_text("uncommitted edit\n")
    run_id, uri = _governed_run_id(project)
    api.register("m", run_id, model_uri=uri, settings=project)
    report = api.lineage("m", "1", settings=project)
    assert report.lineage.git_dirty is True
    assert report.lineage.git_diff_sha256 and len(report.lineage.git_diff_sha256) == 64


def test_a_run_without_lineage_registers_as_ungoverned_and_says_so(project: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    from mlops_layer.adapters.mlflow import MlflowTracking

    tracking = MlflowTracking(project.tracking_uri)
    exp = tracking.ensure_experiment("plain", str(project.root / "art"))
    with tracking.run(exp, "bare", {}) as run_id:
        tracking.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "model")
        tracking.log_metrics({"accuracy": 0.91})
    reg = api.register("m", run_id, settings=project)
    assert reg.governed is False and reg.lineage is None and reg.model_uri == f"runs:/{run_id}/model"
    assert "no governed lineage" in reg.warnings[0]
    version = MlflowRegistry(project.tracking_uri).get_version("m", reg.version)
    assert version.tags["mlops.lineage.governed"] == "false" and "mlops.git.commit" not in version.tags
    with AuditStore.open(project.audit_url) as trail:
        registered = list(trail.entries(model="m", action=actions.MODEL_REGISTERED))[-1]
    assert registered.details["governed"] is False and "model.pkl" in registered.details["artifacts"]
    # its metrics are frozen like a governed version's (the metric rules read this snapshot, not the run)
    assert {k: float(v) for k, v in registered.details["metrics"].items()} == {"accuracy": 0.91}


def test_register_needs_the_stage_in_dvc_lock(project: Settings) -> None:
    run_id, uri = _governed_run_id(project)
    with pytest.raises(InputError, match="stage 'fit' is not in"):
        api.register("m", run_id, stage="fit", model_uri=uri, settings=project)
    assert MlflowRegistry(project.tracking_uri).model_names() == []  # nothing half-written


def test_register_rejects_a_bad_model_name(project: Settings) -> None:
    run_id, uri = _governed_run_id(project)
    with pytest.raises(InputError, match="model name"):
        api.register("bad name!", run_id, model_uri=uri, settings=project)


def test_a_model_changed_in_the_artifact_store_is_never_loaded(project: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    from mlops_layer.errors import AuditIntegrityError

    with api.governed_run("train", settings=project) as run:
        model_uri = run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    api.register("m", run.run_id, model_uri=model_uri, settings=project)
    assert api.load_model("m/1", settings=project).predict([[1.0]])[0] == 1
    pickled = next(project.root.joinpath("mlartifacts").rglob("model.pkl"))
    import hashlib
    import json

    statement = json.loads(api.export_audit("in-toto", settings=project).text or "{}")
    subjects = {s["name"]: s["digest"] for s in statement["subject"]}
    assert subjects["model:m/v1/model.pkl"]["sha256"] == hashlib.sha256(pickled.read_bytes()).hexdigest()
    pickled.write_bytes(pickled.read_bytes() + b"\x00")  # someone edits the artifact store behind our back
    with pytest.raises(AuditIntegrityError, match=r"differ from what was registered: model.pkl"):
        api.load_model("m/1", settings=project)


def test_status_lists_approvals_not_yet_used(project: Settings) -> None:
    from mlops_layer.api.status import pending_approvals as _pending_approvals

    with AuditStore.open(project.audit_url) as trail:
        for version in ("1", "2"):
            trail.append(
                actions.APPROVAL_GRANTED,
                actor="alice@example.com",
                subject={"model": "m", "version": version, "alias": "champion"},
            )
        trail.append(actions.ALIAS_SET, actor="dana", subject={"model": "m", "version": "1", "alias": "champion"})
    assert _pending_approvals(project, "m", {"champion": "1"}) == ("v2 -> @champion approved by alice@example.com",)
    assert _pending_approvals(project, "m", {"champion": "2"}) == ()
