"""What retraining leaves in git: the pipeline's writes are found by comparing work-tree snapshots (real git)."""

from __future__ import annotations

from pathlib import Path

from conftest import git

from mlops_layer.adapters.git import GitRepo
from mlops_layer.retrain import commit_message, pipeline_changes


def _repo(tmp_path: Path) -> GitRepo:
    git(tmp_path, "init", "-q")
    (tmp_path / "dvc.lock").write_text("v1\n")
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.9}\n')
    (tmp_path / "notes.md").write_text("mine\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "start")
    return GitRepo(tmp_path)


def test_only_what_the_pipeline_wrote_is_committed_and_the_users_edits_stay(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (tmp_path / "notes.md").write_text("my uncommitted edit\n")  # the user's, before the retraining
    (tmp_path / "scratch.txt").write_text("untracked, mine\n")
    before = repo.worktree_changes()
    (tmp_path / "dvc.lock").write_text("v2\n")  # what `dvc repro` writes
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.93}\n')
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.json").write_text("[]\n")
    changes = pipeline_changes(before, repo.worktree_changes())
    assert changes.written == ("dvc.lock", "metrics.json", "plots/roc.json")
    assert changes.already_dirty == ()

    sha = repo.commit_paths(list(changes.written), commit_message("churn", "2", ("alert open: drift",), "abc"))
    assert sha == repo.head_commit()
    body = git(tmp_path, "log", "-1", "--format=%B")
    assert body.startswith("retrain: churn v2 (dvc.lock, metrics and outputs of the retraining)")
    assert "alert open: drift" in body and "abc" in body
    assert sorted(repo.worktree_changes()) == ["notes.md", "scratch.txt"]  # the user's edits, untouched


def test_a_file_the_user_had_changed_and_the_pipeline_rewrote_is_left_to_them(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.1, "edited": true}\n')
    before = repo.worktree_changes()
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.95}\n')
    (tmp_path / "dvc.lock").write_text("v2\n")
    changes = pipeline_changes(before, repo.worktree_changes())
    assert changes.written == ("dvc.lock",)
    assert changes.already_dirty == ("metrics.json",)


def test_nothing_written_nothing_to_commit(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    snapshot = repo.worktree_changes()
    assert snapshot == {}
    assert pipeline_changes(snapshot, repo.worktree_changes()).written == ()
