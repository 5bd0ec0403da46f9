"""Git adapter (gitpython): the commit, branch, dirty state and blob hashes that lineage and governance record."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_layer.errors import BackendError, ConfigError, InputError

if TYPE_CHECKING:
    import git

# Files the very run being recorded rewrites: they do not make the code "dirty". DVC appends its outputs to the
# .gitignore beside them during `dvc repro`, and ignore rules change no behaviour of the code.
GENERATED_FILES = ("dvc.lock",)
GENERATED_NAMES = (".gitignore",)


@dataclass(frozen=True)
class GitInfo:
    """Where the code came from."""

    commit: str
    branch: str | None
    dirty: bool
    diff_sha256: str | None
    remote: str | None
    changed_files: tuple[str, ...] = ()


def blob_hash(data: bytes) -> str:
    """The git blob id of ``data`` (what ``git hash-object`` prints), computed without git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class GitRepo:
    """A git work tree. Opening a folder that is not in one is a clear InputError."""

    def __init__(self, path: Path) -> None:
        import git

        try:
            self.repo: git.Repo = git.Repo(path, search_parent_directories=True)
        except git.InvalidGitRepositoryError:
            raise InputError(
                f"{path} is not inside a git repository",
                hint="run `git init` (and commit your code) first: lineage records the git commit",
            ) from None
        except git.NoSuchPathError:
            raise InputError(f"{path} does not exist") from None
        except git.GitError as exc:
            raise BackendError(f"git failed on {path}: {exc}") from exc
        self.root = Path(self.repo.working_tree_dir or path)

    def head_commit(self) -> str:
        import git

        try:
            return str(self.repo.head.commit.hexsha)
        except ValueError:
            raise InputError(f"git repository {self.root} has no commits yet", hint="commit your code first") from None
        except git.GitError as exc:
            raise BackendError(f"git failed reading HEAD in {self.root}: {exc}") from exc

    def branch(self) -> str | None:
        try:
            return str(self.repo.active_branch.name)
        except (TypeError, ValueError):
            return None  # detached HEAD

    def remote_url(self) -> str | None:
        try:
            remote = self.repo.remotes["origin"] if "origin" in self.repo.remotes else None  # noqa: SIM401
            if remote is None and self.repo.remotes:
                remote = self.repo.remotes[0]
            return str(next(iter(remote.urls))) if remote is not None else None
        except (StopIteration, ValueError, AttributeError):
            return None

    def changed_files(self, exclude: tuple[str, ...] = GENERATED_FILES) -> list[str]:
        """Tracked files whose working copy differs from HEAD (untracked files do not count)."""
        out = self.repo.git.diff("HEAD", "--name-only", "--no-renames")
        prefixes = tuple(e.rstrip("/") + "/" for e in exclude)
        return sorted(
            p
            for p in out.splitlines()
            if p and p not in exclude and not p.startswith(prefixes) and p.rpartition("/")[2] not in GENERATED_NAMES
        )

    def info(self, exclude: tuple[str, ...] = GENERATED_FILES) -> GitInfo:
        commit = self.head_commit()
        changed = self.changed_files(exclude)
        diff_sha = None
        if changed:
            diff = self.repo.git.diff("HEAD", "--", *changed)
            diff_sha = hashlib.sha256(diff.encode("utf-8", "surrogateescape")).hexdigest()
        return GitInfo(
            commit=commit,
            branch=self.branch(),
            dirty=bool(changed),
            diff_sha256=diff_sha,
            remote=self.remote_url(),
            changed_files=tuple(changed),
        )

    def worktree_changes(self) -> dict[str, str]:
        """Every path that differs from HEAD (tracked or untracked, not ignored) -> its status and content digest.

        Two snapshots tell what a step changed: a path whose entry differs was written in between.
        """
        import git

        try:
            out = self.repo.git.status("--porcelain=v1", "-z", "--untracked-files=all")
        except git.GitError as exc:
            raise BackendError(f"git status failed in {self.root}: {exc}") from exc
        changes: dict[str, str] = {}
        records = iter(out.split("\0"))
        for record in records:
            if len(record) < 4:
                continue
            code, path = record[:2], record[3:]
            if code[0] in "RC":
                next(records, None)  # the rename's source path follows
            file = self.root / path
            digest = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else "-"
            changes[path] = f"{code}:{digest}"
        return changes

    def commit_paths(self, paths: Sequence[str], message: str) -> str:
        """Stage exactly ``paths`` (additions, changes, deletions) and commit only them; returns the new commit."""
        import git

        try:
            self.repo.git.add("-A", "--", *paths)
            self.repo.git.commit("-q", "-m", message, "--", *paths)
        except git.GitError as exc:
            raise BackendError(
                f"git could not commit {', '.join(list(paths)[:5])} in {self.root}: {exc}",
                hint="commit them yourself (`git status` lists them), or fix the git configuration (user.email)",
            ) from exc
        return self.head_commit()

    def head_blob_hash(self, path: Path) -> str | None:
        """The blob id of ``path`` as committed at HEAD, or None when it is not committed."""
        rel = path.resolve().relative_to(self.root.resolve()).as_posix()
        try:
            return str(self.repo.git.rev_parse(f"HEAD:{rel}"))
        except Exception:  # noqa: BLE001 - gitpython raises GitCommandError for a missing path
            return None


def config_value(root: Path, key: str) -> str | None:
    """``git config KEY`` as seen from ``root`` (repository, then global), or None when unset or git is missing."""
    try:
        out = subprocess.run(
            ["git", "config", key], cwd=root, capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def user_email(root: Path) -> str | None:
    """The committer e-mail git would use in ``root``: the declared identity of local mode."""
    return config_value(root, "user.email")


def signing_key_file(root: Path) -> Path | None:
    """git's ``user.signingkey`` when it names a key file (the key people already sign commits with)."""
    value = config_value(root, "user.signingkey")
    if not value or value.startswith(("ssh-", "key::")):
        return None
    path = Path(value).expanduser()
    return path if path.is_file() else None


def is_git_repo(path: Path) -> bool:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"],
            cwd=path,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == "true"


def read_blob(root: Path, blob: str) -> bytes | None:
    """The content of the git blob ``blob`` in the repository at ``root`` (None when git does not have it)."""
    if not blob or any(c not in "0123456789abcdef" for c in blob.lower()):
        return None
    return GitCommits(root).read_blob(blob)


def file_before(root: Path, path: Path, when: str) -> tuple[str, bytes] | None:
    """(commit, content) of ``path`` in the newest commit of HEAD's history made at or before ``when`` (ISO 8601)."""
    commits = GitCommits(root)
    proc = commits._git("rev-list", "-1", f"--before={when}", "HEAD")
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    commit = proc.stdout.decode("ascii", "replace").strip()
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
    shown = commits._git("show", f"{commit}:{rel}")
    return (commit, shown.stdout) if shown.returncode == 0 else None


@dataclass(frozen=True)
class CommittedFile:
    """A file as one commit holds it: its bytes and git blob id (``None`` data: absent at that commit)."""

    path: str
    data: bytes | None
    blob: str | None


class GitCommits:
    """Read-only access to committed content (``git show REF:path``), for governance that believes commits only.

    Unlike :class:`GitRepo` it never looks at the working copy except to list what differs from the commit.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _git(
        self, *args: str, input_bytes: bytes | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                ["git", "-C", str(self.root), *args],
                input=input_bytes,
                capture_output=True,
                check=False,
                timeout=timeout,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendError(f"git {args[0]} failed in {self.root}: {exc}") from exc

    def _must(self, *args: str, timeout: float = 60) -> bytes:
        """``git ARGS``'s output; ConfigError with git's own message when it fails (a wrong clone or ref)."""
        out = self._git(*args, timeout=timeout)
        if out.returncode != 0:
            raise ConfigError(
                f"git {' '.join(args[:2])} failed in {self.root}: {out.stderr.decode(errors='replace').strip()[-300:]}"
            )
        return out.stdout

    def fetch(self) -> None:
        """``git fetch`` from the clone's default remote."""
        self._must("fetch", "--quiet")

    def commit_of(self, ref: str) -> str:
        """The commit ``ref`` names; ConfigError naming git's complaint when it names none."""
        return self._must("rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()

    def archive(self, commit: str, folder: str) -> bytes:
        """A tar of ``folder`` (relative to the repository's top) exactly as ``commit`` holds it."""
        return self._must("archive", "--format=tar", commit, "--", folder)

    def is_repo(self) -> bool:
        out = self._git("rev-parse", "--is-inside-work-tree")
        return out.returncode == 0 and out.stdout.strip() == b"true"

    def top(self) -> Path:
        out = self._git("rev-parse", "--show-toplevel")
        if out.returncode != 0:
            raise InputError(
                f"{self.root} is not inside a git repository",
                hint="governance files are read from a commit: `git init` and commit governance/",
            )
        return Path(out.stdout.decode().strip())

    def resolve(self, ref: str) -> str | None:
        """The commit ``ref`` names, or None (no commits yet / unknown ref)."""
        out = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return out.stdout.decode().strip() or None if out.returncode == 0 else None

    def rel(self, path: Path) -> str:
        top = self.top().resolve()
        try:
            return Path(path).resolve().relative_to(top).as_posix()
        except ValueError:
            raise InputError(f"{path} is outside the git repository {top}") from None

    def read(self, commit: str, path: Path) -> CommittedFile:
        """``path`` (absolute, inside the work tree) as ``commit`` holds it."""
        rel = self.rel(path)
        out = self._git("rev-parse", "--verify", "--quiet", f"{commit}:{rel}")
        if out.returncode != 0:
            return CommittedFile(rel, None, None)
        blob = out.stdout.decode().strip()
        data = self._git("cat-file", "blob", blob)
        if data.returncode != 0:
            raise BackendError(f"git cannot read blob {blob} ({rel}): {data.stderr.decode(errors='replace').strip()}")
        return CommittedFile(rel, data.stdout, blob)

    def list_dir(self, commit: str, folder: Path) -> list[str]:
        """Names of the files directly under ``folder`` at ``commit``."""
        rel = self.rel(folder)
        out = self._git("ls-tree", "--name-only", f"{commit}:{rel}")
        return [n for n in out.stdout.decode().splitlines() if n] if out.returncode == 0 else []

    def uncommitted(self, paths: list[Path]) -> list[str]:
        """Which of ``paths`` (files or folders) differ from HEAD in the working copy, or are untracked."""
        rels = [self.rel(p) for p in paths]
        if not rels:
            return []
        out = self._git("status", "--porcelain", "--untracked-files=all", "--", *rels)
        found = []
        for line in out.stdout.decode(errors="replace").splitlines():
            if len(line) > 3:
                found.append(line[3:].strip().strip('"'))
        return sorted(set(found))

    def is_ignored(self, path: Path) -> bool:
        out = self._git("check-ignore", "-q", "--no-index", self.rel(path))
        return out.returncode == 0

    def is_tracked(self, path: Path) -> bool:
        out = self._git("ls-files", "--error-unmatch", self.rel(path))
        return out.returncode == 0

    def blob_exists(self, blob: str) -> bool:
        out = self._git("cat-file", "-e", f"{blob}^{{blob}}")
        return out.returncode == 0

    def blobs_reachable(self, ref: str, blobs: set[str]) -> set[str]:
        """Which of ``blobs`` appear in some commit reachable from ``ref`` (one ``rev-list --objects`` pass)."""
        if not blobs:
            return set()
        out = self._git("rev-list", "--objects", ref)
        if out.returncode != 0:
            raise BackendError(f"git rev-list {ref} failed: {out.stderr.decode(errors='replace').strip()}")
        found = set()
        for line in out.stdout.decode(errors="replace").splitlines():
            sha = line.split(" ", 1)[0]
            if sha in blobs:
                found.add(sha)
        return found

    def read_blob(self, blob: str) -> bytes | None:
        """The bytes of blob ``blob`` (None when the repository does not hold it)."""
        out = self._git("cat-file", "blob", blob)
        return out.stdout if out.returncode == 0 else None

    def file_history(self, ref: str, path: Path) -> list[tuple[int, str | None]]:
        """(commit time as a Unix timestamp, blob id or None when deleted) of every commit reachable from ``ref``
        that changed ``path``, in commit order (parents first)."""
        out = self._git(
            "log",
            "--topo-order",
            "--reverse",
            "--format=C %ct",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            ref,
            "--",
            self.rel(path),
        )
        if out.returncode != 0:
            return []
        history: list[tuple[int, str | None]] = []
        when = 0
        for line in out.stdout.decode(errors="replace").splitlines():
            if line.startswith("C "):
                when = int(line[2:].strip() or 0)
            elif line.startswith(":"):
                blob = line.split()[3]
                history.append((when, None if set(blob) == {"0"} else blob))
        return history  # in commit order (commits made in the same second stay in order)
