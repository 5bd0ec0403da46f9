"""GTO's git tags written by the layer, read back by the real `gto` CLI: the same versions and stages as MLflow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

from mlops_layer.adapters import gto_tags
from mlops_layer.errors import BackendError

GTO = shutil.which("gto") or str(Path(sys.executable).parent / "gto")


def gto_show(root: Path) -> dict[str, object]:
    out = subprocess.run([GTO, "show", "--json"], cwd=root, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out))


def commits(root: Path, n: int) -> list[str]:
    git(root, "init", "-q")
    out = []
    for i in range(n):
        git(root, "commit", "-q", "--allow-empty", "-m", f"c{i}")
        out.append(git(root, "rev-parse", "HEAD"))
    return out


def test_gto_shows_the_versions_and_stages_the_layer_tagged(tmp_path: Path) -> None:
    c1, c2 = commits(tmp_path, 2)
    assert gto_tags.tag_version(tmp_path, "churn", "1", c1) == "churn@v1.0.0"
    assert gto_tags.tag_version(tmp_path, "churn", "1", c1) is None  # idempotent
    gto_tags.tag_stage(tmp_path, "churn", "staging", "1", c1)
    gto_tags.tag_stage(tmp_path, "churn", "champion", "1", c1)
    gto_tags.tag_version(tmp_path, "churn", "2", c2)
    gto_tags.tag_stage(tmp_path, "churn", "staging", "2", c2)
    assert gto_show(tmp_path)["churn"] == {
        "version": "v2.0.0",
        "stage": {"champion": "v1.0.0", "staging": "v2.0.0"},
        "registered": True,
        "active": True,
    }
    gto_tags.tag_stage(tmp_path, "churn", "champion", "2", c2)
    gto_tags.tag_stage(tmp_path, "churn", "champion", "1", c1)  # a rollback
    assert gto_show(tmp_path)["churn"]["stage"] == {"champion": "v1.0.0", "staging": "v2.0.0"}  # type: ignore[index]
    tags = gto_tags.read_tags(tmp_path, "churn")
    assert tags.stages == {"champion": "1", "staging": "2"}
    assert gto_tags.compare("churn", tags, {"1": c1, "2": c2}, {"champion": "1", "staging": "2"}) == []

    history = subprocess.run(
        [GTO, "history", "churn", "--json"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout
    events = json.loads(history)
    assert [e["event"] for e in events].count("assignment") == 5


def test_deleting_an_alias_unassigns_the_stage_from_every_version(tmp_path: Path) -> None:
    c1, c2 = commits(tmp_path, 2)
    for version, commit in (("1", c1), ("2", c2)):
        gto_tags.tag_version(tmp_path, "churn", version, commit)
        gto_tags.tag_stage(tmp_path, "churn", "staging", version, commit)
    assert gto_tags.tag_stage(tmp_path, "churn", "staging", None, None) is not None
    assert "staging" not in gto_show(tmp_path)["churn"]["stage"]  # type: ignore[index]
    assert gto_tags.read_tags(tmp_path, "churn").stages == {}


def test_a_tag_moved_behind_the_layers_back_is_reported(tmp_path: Path) -> None:
    c1, c2 = commits(tmp_path, 2)
    gto_tags.tag_version(tmp_path, "churn", "1", c1)
    gto_tags.tag_stage(tmp_path, "churn", "champion", "1", c1)
    # someone re-points the version tag at another commit and assigns a stage with gto itself
    git(tmp_path, "tag", "-f", "-a", "churn@v1.0.0", "-m", "moved", c2)
    found = gto_tags.compare("churn", gto_tags.read_tags(tmp_path, "churn"), {"1": c1}, {"champion": "1"})
    kinds = [f.kind for f in found]
    assert "version_tag_moved" in kinds
    assert any("moved behind the layer's back" in f.message for f in found)
    with pytest.raises(BackendError, match="points at"):
        gto_tags.tag_version(tmp_path, "churn", "1", c1)
    subprocess.run(
        [GTO, "assign", "churn", "--version", "v1.0.0", "--stage", "prod"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    found = gto_tags.compare("churn", gto_tags.read_tags(tmp_path, "churn"), {"1": c2}, {"champion": "1"})
    assert any(f.kind == "stage_differs" and "'prod' shows v1" in f.message for f in found)


def test_names_gto_cannot_hold_are_recognised() -> None:
    assert gto_tags.gto_name_ok("breast-cancer-classifier")
    assert not gto_tags.gto_name_ok("model.v2") and not gto_tags.gto_name_ok("-x")
    assert gto_tags.semver("12") == "v12.0.0"
