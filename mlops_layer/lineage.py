"""Lineage: the one record tying a model version to its git commit, DVC data hashes, params and environment.

A plain value object with a stable mapping to MLflow tags, so the MLflow UI shows it and the layer can read it back.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from mlops_layer import tags as _tags

TAG_PREFIX = _tags.PREFIX
TAG_LINEAGE = _tags.LINEAGE
TAG_COMMIT = _tags.COMMIT
TAG_BRANCH = _tags.BRANCH
TAG_DIRTY = _tags.DIRTY
TAG_DIFF = _tags.DIFF
TAG_REMOTE = _tags.REMOTE
TAG_STAGE = _tags.STAGE
TAG_DATA_PREFIX = _tags.DATA_PREFIX
TAG_PARENT = _tags.PARENT
TAG_RUN = _tags.RUN
TAG_TRAINED_BY = _tags.TRAINED_BY
TAG_REGISTERED_BY = _tags.REGISTERED_BY
TAG_AUDIT_SEQ = _tags.AUDIT_SEQ
LINEAGE_ARTIFACT = "mlops/lineage.json"
PROFILE_ARTIFACT = "mlops/reference_profile.json"
MAX_TAG_VALUE = 5000  # MLflow's limit for a model version tag value

KEY_PACKAGES = ("mlops_layer", "mlflow", "dvc", "scikit-learn", "pandas", "numpy", "evidently")


@dataclass(frozen=True)
class DataVersion:
    """A DVC-tracked dependency or output: its path, md5 and size exactly as dvc.lock records them."""

    path: str
    md5: str
    size: int | None
    role: str = "dep"
    nfiles: int | None = None


@dataclass(frozen=True)
class ParentRef:
    """The model version a run fine-tuned."""

    model: str
    version: str
    run_id: str | None = None


@dataclass(frozen=True)
class Lineage:
    """Where a model came from."""

    git_commit: str
    git_dirty: bool
    git_branch: str | None = None
    git_diff_sha256: str | None = None
    git_remote: str | None = None
    stage: str | None = None
    data: tuple[DataVersion, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    parent: ParentRef | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "git": {
                "commit": self.git_commit,
                "dirty": self.git_dirty,
                "branch": self.git_branch,
                "diff_sha256": self.git_diff_sha256,
                "remote": self.git_remote,
            },
            "stage": self.stage,
            "data": [
                {"path": d.path, "md5": d.md5, "size": d.size, "role": d.role}
                | ({"nfiles": d.nfiles} if d.nfiles is not None else {})
                for d in self.data
            ],
            "params": dict(self.params),
            "environment": dict(self.environment),
            "parent": None
            if self.parent is None
            else {"model": self.parent.model, "version": self.parent.version, "run_id": self.parent.run_id},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lineage:
        git = data.get("git") or {}
        parent = data.get("parent")
        return cls(
            git_commit=str(git.get("commit") or ""),
            git_dirty=bool(git.get("dirty")),
            git_branch=git.get("branch"),
            git_diff_sha256=git.get("diff_sha256"),
            git_remote=git.get("remote"),
            stage=data.get("stage"),
            data=tuple(
                DataVersion(
                    path=str(d["path"]),
                    md5=str(d["md5"]),
                    size=d.get("size"),
                    role=str(d.get("role", "dep")),
                    nfiles=d.get("nfiles"),
                )
                for d in data.get("data") or []
            ),
            params=dict(data.get("params") or {}),
            environment=dict(data.get("environment") or {}),
            parent=None
            if not parent
            else ParentRef(model=str(parent["model"]), version=str(parent["version"]), run_id=parent.get("run_id")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)

    def to_tags(self) -> dict[str, str]:
        """Tags for the MLflow run and model version: readable one by one in the UI, and the whole as JSON."""
        tags = {
            TAG_COMMIT: self.git_commit,
            TAG_DIRTY: "true" if self.git_dirty else "false",
        }
        if self.git_branch:
            tags[TAG_BRANCH] = self.git_branch
        if self.git_diff_sha256:
            tags[TAG_DIFF] = self.git_diff_sha256
        if self.git_remote:
            tags[TAG_REMOTE] = self.git_remote
        if self.stage:
            tags[TAG_STAGE] = self.stage
        for d in self.data:
            size = "" if d.size is None else f" size={d.size}"
            tags[f"{TAG_DATA_PREFIX}{d.role}.{d.path}"] = f"md5={d.md5}{size}"
        if self.parent is not None:
            tags[TAG_PARENT] = f"{self.parent.model}/{self.parent.version}"
        blob = self.to_json()
        if len(blob) <= MAX_TAG_VALUE:
            tags[TAG_LINEAGE] = blob
        return tags

    @property
    def data_hashes(self) -> dict[str, str]:
        return {d.path: d.md5 for d in self.data}


def environment_info() -> dict[str, str]:
    """Python and key package versions, read from metadata (nothing is imported)."""
    env = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in KEY_PACKAGES:
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return env


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """``NAME@ALIAS`` / ``NAME/VERSION`` / ``NAME`` -> (name, alias-or-version or None)."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return name, alias or None
    if "/" in ref:
        name, _, version = ref.rpartition("/")
        return name, version or None
    return ref, None
