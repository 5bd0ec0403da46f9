"""Where governance comes from: the policy, the model cards and ``allowed_signers`` as a commit holds them.

The gate believes reviewed git, not the working tree: every file is read from one commit (``HEAD``, or the configured
``governance_ref`` such as ``origin/main``) through a small port the git adapter implements, and uncommitted edits
only produce a warning naming the files. The committed ``allowed_signers`` is copied, by blob id, into the layer's
state folder so signature checks read exactly the committed bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlops_layer.errors import ConfigError
from mlops_layer.governance.cards import ModelCard, card_path, parse_card, validate_model_name
from mlops_layer.governance.located_yaml import git_blob_hash
from mlops_layer.governance.policy import Policy, parse_policy


class CommittedFileView(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def data(self) -> bytes | None: ...
    @property
    def blob(self) -> str | None: ...


class CommitReader(Protocol):
    """What governance needs from git (``adapters.git.GitCommits`` implements it)."""

    def resolve(self, ref: str) -> str | None: ...
    def read(self, commit: str, path: Path) -> CommittedFileView: ...
    def uncommitted(self, paths: list[Path]) -> list[str]: ...
    def is_ignored(self, path: Path) -> bool: ...
    def is_tracked(self, path: Path) -> bool: ...


@dataclass
class GovernanceFiles:
    """The committed governance of one project at one commit."""

    ref: str
    commit: str
    policy: Policy
    allowed_signers: Path  # a private copy of the committed bytes
    signers_blob: str
    cards_dir: Path
    reader: CommitReader
    warnings: tuple[str, ...] = ()
    signers_committed: bool = True  # False: no signers file anywhere (nobody is trusted)
    _cards: dict[str, ModelCard] = field(default_factory=dict)

    @property
    def policy_blob(self) -> str:
        return self.policy.policy_hash

    def card(self, name: str) -> ModelCard:
        """The committed model card of ``name`` (ConfigError when it is absent at the commit)."""
        if name not in self._cards:
            validate_model_name(name)
            path = card_path(self.cards_dir, name)
            found = self.reader.read(self.commit, path)
            if found.data is None:
                raise ConfigError(
                    f"{found.path} is not committed at {self.ref} ({self.commit[:12]})",
                    hint=f"write and commit the model card (`mlops card new {name}`, then git add/commit)",
                )
            self._cards[name] = parse_card(found.data, found.path, name)
        return self._cards[name]

    def record(self, card: ModelCard | None = None) -> dict[str, Any]:
        """What a decision records about the governance it was judged under."""
        body: dict[str, Any] = {
            "ref": self.ref,
            "commit": self.commit,
            "policy_blob": self.policy_blob,
            "allowed_signers_blob": self.signers_blob if self.signers_committed else None,
        }
        if card is not None:
            body["card_blob"] = card.card_hash
        return body


def load_governance(
    reader: CommitReader,
    *,
    policy_file: Path,
    cards_dir: Path,
    allowed_signers: Path,
    ref: str,
    state_dir: Path,
    also_watch: tuple[Path, ...] = (),
) -> GovernanceFiles:
    """Read policy and signers from ``ref``; warn about uncommitted edits; refuse an uncommitted signers file."""
    commit = reader.resolve(ref)
    if commit is None:
        raise ConfigError(
            f"governance is read from git, but {ref!r} names no commit",
            hint="commit governance/ first (git add governance mlops.yaml && git commit)"
            if ref == "HEAD"
            else f"fetch or create {ref}, or change governance_ref in mlops.yaml",
        )
    policy_found = reader.read(commit, policy_file)
    if policy_found.data is None:
        raise ConfigError(
            f"{policy_found.path} is not committed at {ref} ({commit[:12]}); uncommitted governance counts for nothing",
            hint="commit it: git add governance && git commit",
        )
    policy = parse_policy(policy_found.data, policy_found.path)
    signers_found = reader.read(commit, allowed_signers)
    committed = signers_found.data is not None
    if (signers_found.data is None or signers_found.blob is None) and not allowed_signers.exists():
        # no signers anywhere: nobody is trusted, which only matters to rules that need a signature
        signers_found = _Absent(signers_found.path, b"", git_blob_hash(b""))
    if signers_found.data is None or signers_found.blob is None:
        why = "git-ignored" if reader.is_ignored(allowed_signers) else "not committed"
        raise ConfigError(
            f"the allowed signers file {signers_found.path} is {why} at {ref} ({commit[:12]}): "
            "who may approve must come from a commit",
            hint=f"commit it (git add -f {signers_found.path} && git commit); private keys stay out of git",
        )
    copy = materialize(state_dir, signers_found.blob, signers_found.data)
    changed = reader.uncommitted([policy_file.parent, allowed_signers, *also_watch])
    warnings: tuple[str, ...] = ()
    if changed:
        warnings = (
            f"uncommitted changes to {', '.join(changed[:8])} are ignored: the committed content at {ref} "
            f"({commit[:12]}) counts",
        )
    return GovernanceFiles(
        ref=ref,
        commit=commit,
        policy=policy,
        allowed_signers=copy,
        signers_blob=signers_found.blob,
        cards_dir=cards_dir,
        reader=reader,
        warnings=warnings,
        signers_committed=committed,
    )


@dataclass(frozen=True)
class _Absent:
    """A signers file that exists nowhere: read as empty (nobody is trusted)."""

    path: str
    data: bytes | None
    blob: str | None


def materialize(state_dir: Path, blob: str, data: bytes) -> Path:
    """The committed bytes as a file named by their blob id (written once, atomically; never from the work tree)."""
    folder = state_dir / "governance" / blob
    path = folder / "allowed_signers"
    if path.is_file() and path.read_bytes() == data:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".allowed_signers.{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
