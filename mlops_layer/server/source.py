"""Governance files as the server sees them: the configured git ref of the server's clone, one snapshot per commit.

Each request asks for the current snapshot: the ref is resolved (``git rev-parse`` through the git adapter, cheap),
and when it moved the governance directory at the new commit is extracted once (``git archive``) into ``state_dir/governance/<commit>``, so
policy, cards and ``allowed_signers`` are read exactly as committed — never from the clone's working tree.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mlops_layer.adapters.git import GitCommits
from mlops_layer.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class GovernanceSnapshot:
    """The governance files at one commit of the configured ref."""

    commit: str
    ref: str
    root: Path  # the extracted tree; ``root / governance_dir`` holds policy.yaml
    governance_dir: Path

    @property
    def policy_file(self) -> Path:
        return self.governance_dir / "policy.yaml"

    @property
    def cards_dir(self) -> Path:
        return self.governance_dir / "models"

    @property
    def allowed_signers(self) -> Path:
        return self.governance_dir / "allowed_signers"


class GovernanceSource:
    """Resolves the ref on each call, re-reads the files when it moved; thread-safe, one per worker."""

    def __init__(
        self,
        repo: Path,
        ref: str,
        subdir: str,
        state_dir: Path,
        *,
        fetch_seconds: float = 0.0,
        ref_check_seconds: float = 1.0,
    ) -> None:
        self.repo = repo
        self.git = GitCommits(repo)
        self.ref = ref
        self.subdir = subdir.strip("/") or "governance"
        self.cache = state_dir / "governance"
        self.fetch_seconds = fetch_seconds
        self._lock = threading.Lock()
        self._current: GovernanceSnapshot | None = None
        self._fetched = 0.0
        self.ref_check_seconds = ref_check_seconds
        self._checked = 0.0

    def _git(self, call: Callable[[], T]) -> T:
        """One git operation on the clone (through the git adapter), its failure naming the setting to fix."""
        try:
            return call()
        except ConfigError as exc:
            raise ConfigError(
                f"{exc.message} (the governance clone)",
                hint="governance_repo must be a git clone holding governance_ref",
            ) from None

    def snapshot(self) -> GovernanceSnapshot:
        """The governance files at the commit the ref names now."""
        with self._lock:
            if self._current is not None and time.monotonic() - self._checked < self.ref_check_seconds:
                return self._current  # the ref is re-resolved at most once a second
            self._checked = time.monotonic()
            if self.fetch_seconds > 0 and time.monotonic() - self._fetched > self.fetch_seconds:
                self._fetched = time.monotonic()
                self._git(self.git.fetch)
            commit = self._git(lambda: self.git.commit_of(self.ref))
            if self._current is not None and self._current.commit == commit:
                return self._current
            root = self.cache / commit
            if not (root / ".complete").exists():
                self._extract(commit, root)
            self._current = GovernanceSnapshot(commit, self.ref, root, root / self.subdir)
            return self._current

    def _extract(self, commit: str, root: Path) -> None:
        data = self._git(lambda: self.git.archive(commit, self.subdir))
        tmp = root.with_name(f"{root.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / ".complete").write_text(commit + "\n")
        try:
            tmp.rename(root)
        except OSError:
            # another worker extracted the same commit first: theirs is identical
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
