"""The governing server's governance source on a real git clone: committed files only, re-read when the ref moves,
and a wrong clone or ref is a configuration error naming the setting (git runs through the git adapter)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git

from mlops_layer.errors import ConfigError
from mlops_layer.server.source import GovernanceSource


def _policy(repo: Path, text: str) -> str:
    (repo / "governance").mkdir(exist_ok=True)
    (repo / "governance" / "policy.yaml").write_text(text)
    git(repo, "add", "governance")
    git(repo, "commit", "-qm", text)
    return git(repo, "rev-parse", "HEAD").strip()


def test_snapshot_holds_the_committed_files_and_follows_the_ref(git_repo: Path, tmp_path: Path) -> None:
    first = _policy(git_repo, "version: 1\n")
    (git_repo / "governance" / "policy.yaml").write_text("uncommitted: [")  # the working copy never counts
    branch = git(git_repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    source = GovernanceSource(git_repo, branch, "governance", tmp_path / "state", ref_check_seconds=0)
    snap = source.snapshot()
    assert snap.commit == first and snap.policy_file.read_text() == "version: 1\n"
    assert source.snapshot() is snap  # the ref did not move: the same snapshot
    second = _policy(git_repo, "version: 1\ntargets: {}\n")
    moved = source.snapshot()
    assert moved.commit == second and moved.policy_file.read_text() == "version: 1\ntargets: {}\n"
    assert snap.policy_file.read_text() == "version: 1\n"  # each commit extracted once, kept apart


def test_a_wrong_ref_or_clone_is_a_config_error(git_repo: Path, tmp_path: Path) -> None:
    _policy(git_repo, "version: 1\n")
    with pytest.raises(ConfigError, match="git rev-parse --verify failed") as bad_ref:
        GovernanceSource(git_repo, "no-such-branch", "governance", tmp_path / "s1").snapshot()
    assert bad_ref.value.hint and "governance_ref" in bad_ref.value.hint
    not_a_clone = tmp_path / "plain"
    not_a_clone.mkdir()
    with pytest.raises(ConfigError, match="governance clone"):
        GovernanceSource(not_a_clone, "main", "governance", tmp_path / "s2", fetch_seconds=1).snapshot()
