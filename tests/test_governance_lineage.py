"""The lineage_clean rule's live checks against a real DVC project: data pushed to the remote, dvc.lock up to date."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mlops_layer import api
from mlops_layer.adapters import dvc
from mlops_layer.adapters.mlflow import VersionInfo
from mlops_layer.governance.policy import LineageClean
from mlops_layer.governance.rules import Candidate, PromotionContext
from mlops_layer.governance.rules import evaluate_rule as rule_result
from mlops_layer.lineage import DataVersion, Lineage


def version_from_lock(root: Path, stage: str) -> VersionInfo:
    lock = dvc.read_stage(root, stage)
    lineage = Lineage(
        git_commit="c" * 40,
        git_dirty=False,
        stage=stage,
        data=tuple(DataVersion(d.path, d.md5, d.size, d.role) for d in (*lock.deps, *lock.outs)),
    )
    return VersionInfo(name="m", version="1", run_id="r", source="runs:/r/model", tags=lineage.to_tags())


def test_live_lineage_probe(git_repo: Path, tmp_path: Path) -> None:
    dvc.init(git_repo)
    remote = tmp_path / "remote"
    dvc.run_dvc(git_repo, "remote", "add", "-d", "local", str(remote))
    (git_repo / "in.txt").write_text("hello\n")
    (git_repo / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"
    )
    dvc.repro(git_repo)
    info = version_from_lock(git_repo, "train")
    from mlops_layer.api.governance import _lineage_probe

    probe = _lineage_probe(api.settings(git_repo))

    status = probe(info, True, True)
    assert status.committed is True and status.lock_up_to_date is True
    assert status.data_in_remote is False and "not pushed: out.txt" in status.detail["data_in_remote"]
    ctx = PromotionContext(candidate=Candidate("m", "1", "r", tags=info.tags), target="staging", lineage=status)
    refused = rule_result(LineageClean(), ctx, policy=None)  # type: ignore[arg-type]
    assert not refused.passed and "data not in the DVC remote: not pushed: out.txt (run `dvc push`)" in refused.message

    dvc.push(git_repo)
    assert probe(info, True, True).data_in_remote is True

    # the workspace moves on: the version's data is no longer what dvc.lock records
    (git_repo / "in.txt").write_text("changed\n")
    stale = probe(info, False, True)
    assert stale.lock_up_to_date is False and "reports changes in train" in stale.detail["lock_up_to_date"]
    dvc.repro(git_repo)
    moved_on = probe(info, True, True)
    assert moved_on.lock_up_to_date is False and "dvc.lock now records other data" in moved_on.detail["lock_up_to_date"]
    assert moved_on.data_in_remote is None  # cannot tell for data the workspace no longer has

    # a version registered outside the layer has no lineage record
    bare = probe(dataclasses.replace(info, tags={}), True, True)
    assert (
        bare.committed is None
        and bare.data_in_remote is None
        and "register it through the layer" in bare.detail["data_in_remote"]
    )
