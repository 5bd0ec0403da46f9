"""Datasets a ``drift_passed`` rule names by DVC path, as the governing server holds them: the md5 DVC records for
the path at the governance commit of the server's clone (its ``.dvc`` file, else dvc.lock), read through the git
adapter — never from the clone's working tree, never from what a client says."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def project_root(gov: Any) -> Path:
    """The DVC project inside the clone: the folder holding the governance directory."""
    return Path(gov.source.repo) / Path(gov.source.subdir).parent


def dataset_md5(gov: Any, snap: Any) -> Callable[[str], str]:
    """DVC path -> md5 recorded at ``snap``'s commit (ConfigError naming the path and the ref when untracked)."""
    from mlops_layer.adapters.dvc import dataset_md5_at

    return dataset_md5_at(gov.source.git, snap.commit, snap.ref, project_root(gov))


def claim_problem(gov: Any, snap: Any, claimed: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(what disagrees, the committed facts) when a drift claim names a dataset the committed policy names by DVC
    path with an md5 other than the one DVC records for it at the governance commit; None when it agrees (or names
    no such dataset)."""
    path = str(claimed.get("dvc_path") or "")
    if not path or path not in gov.policy(snap).drift_datasets():
        return None
    expected = dataset_md5(gov, snap)(path)
    md5 = str(claimed.get("dvc_md5") or "")
    if md5 == expected:
        return None
    facts = {"dvc_path": path, "dvc_md5": expected, "governance_commit": snap.commit, "governance_ref": snap.ref}
    return f"dvc_md5 of {path}: claimed {md5 or 'none'}, committed at {snap.ref} ({snap.commit[:12]}) {expected}", facts
