"""Shared fixtures: isolated environment, real git repos and project folders under tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_fixtures import *  # noqa: F401,F403  (PostgreSQL server fixtures)

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


_LEAKY = ("MLOPS_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's MLflow/mlops settings or git identity, nor what an earlier test left behind.

    ``mlflow.set_tracking_uri`` exports MLFLOW_TRACKING_URI into the process environment; without the clean-up after
    each test, a later module-scoped fixture's `dvc repro` would train into an earlier test's store.
    """
    for var in list(os.environ):
        if var.startswith("MLOPS_") or var.startswith("MLFLOW_TRACKING") or var.startswith("MLFLOW_REGISTRY"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "author@example.com")
    home = tmp_path / "_home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    subprocess.run(["git", "config", "--global", "init.defaultBranch", "main"], check=True)
    subprocess.run(["git", "config", "--global", "user.email", "author@example.com"], check=True)
    subprocess.run(["git", "config", "--global", "user.name", "Test Author"], check=True)
    yield
    for var in list(os.environ):
        if var.startswith(_LEAKY):
            os.environ.pop(var, None)
    if "mlflow" in sys.modules:  # the fluent API's process-wide URIs, set by the adapter or a test
        import mlflow.tracking._model_registry.utils as registry_utils
        import mlflow.tracking._tracking_service.utils as tracking_utils

        tracking_utils._tracking_uri = None
        registry_utils._registry_uri = None


# A dvc.lock as `dvc repro` writes it for a one-stage `train` pipeline: for tests that need lineage without running DVC.
TRAIN_LOCK = """schema: '2.0'
stages:
  train:
    cmd: python train.py
    deps:
    - path: data/train.csv
      hash: md5
      md5: 0123456789abcdef0123456789abcdef
      size: 1234
    params:
      params.yaml:
        train.C: 0.5
    outs:
    - path: model.pkl
      hash: md5
      md5: fedcba9876543210fedcba9876543210
      size: 99
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> Iterator[Path]:
    """An empty git repository with one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("test repo\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-qm", "initial")
    yield repo


def commit_governance(root: Path, message: str = "governance") -> str:
    """Commit ``governance/`` and ``mlops.yaml`` (git-initialising ``root`` if needed): governance counts only once
    committed. Returns the new HEAD."""
    if not (root / ".git").exists():
        git(root, "init", "-q")
    paths = [p for p in ("governance", "mlops.yaml") if (root / p).exists()]
    if paths:
        git(root, "add", "-A", "--", *paths)
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")
