"""Live lineage checks for the ``lineage_clean`` rule: a version's recorded lineage against a workspace's DVC state.

The workspace is a port (``adapters.dvc.DvcWorkspace`` in the real world); this module only decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from mlops_layer.errors import MlopsError
from mlops_layer.governance.context import LineageStatus
from mlops_layer.governance.rules_evidence import lineage_from_tags
from mlops_layer.lineage import Lineage
from mlops_layer.tags import LINEAGE


class WorkspacePort(Protocol):
    def locked_hashes(self, stage: str) -> dict[str, str]: ...
    def stale_stages(self) -> list[str]: ...
    def missing_in_remote(self) -> set[str]: ...


LineageProbe = Callable[[Any, bool, bool], LineageStatus]


def lineage_probe(workspace: WorkspacePort) -> LineageProbe:
    """A probe for the promotion flow: the version's tags plus the workspace's dvc.lock, ``dvc status`` and remote."""

    def probe(info: Any, need_remote: bool, need_lock: bool) -> LineageStatus:
        base = lineage_from_tags(info.tags)
        detail = dict(base.detail)
        if LINEAGE not in info.tags:
            why = "the version has no mlops.lineage tag; register it through the layer"
            detail.setdefault("data_in_remote", why)
            detail.setdefault("lock_up_to_date", why)
            return LineageStatus(base.committed, None, None, detail)
        record = Lineage.from_dict(json.loads(info.tags[LINEAGE]))
        mismatches: list[str] | None = None
        lock_ok: bool | None = None
        in_remote: bool | None = None
        if need_lock or need_remote:
            try:
                now = workspace.locked_hashes(record.stage or "train")
                mismatches = [d.path for d in record.data if now.get(d.path) not in (None, d.md5)]
            except MlopsError as exc:
                detail["lock_up_to_date"] = detail["data_in_remote"] = exc.message
        if need_lock and mismatches is not None:
            if mismatches:
                lock_ok = False
                detail["lock_up_to_date"] = f"dvc.lock now records other data for {', '.join(mismatches[:5])}"
            else:
                try:
                    stale = workspace.stale_stages()
                    lock_ok = not stale
                    if stale:
                        detail["lock_up_to_date"] = f"`dvc status` reports changes in {', '.join(stale[:5])}"
                except MlopsError as exc:
                    detail["lock_up_to_date"] = exc.message
        if need_remote and mismatches is not None:
            if mismatches:
                detail["data_in_remote"] = (
                    "the version's data differs from the workspace's dvc.lock; check out its commit"
                )
            else:
                try:
                    missing = workspace.missing_in_remote()
                    absent = [d.path for d in record.data if d.path in missing]
                    in_remote = not absent
                    if absent:
                        detail["data_in_remote"] = f"not pushed: {', '.join(absent[:5])} (run `dvc push`)"
                except MlopsError as exc:
                    detail["data_in_remote"] = exc.message
        return LineageStatus(base.committed, in_remote, lock_ok, detail)

    return probe


class RemotePort(Protocol):
    """A DVC remote reachable without a workspace (``adapters.dvc.DvcRemote``)."""

    url: str

    def missing(self, data: Iterable[tuple[str, str]]) -> list[str]: ...


NOT_CHECKED = "not checked: the governing server has no DVC workspace"


def recorded_probe(remote: RemotePort | None, no_remote: str) -> LineageProbe:
    """A probe for the governing server: the recorded lineage (dirty flag, DVC md5s) decides; the data-in-remote check
    looks the recorded md5s up in ``remote`` when there is one, otherwise reports ``no_remote`` (not checked).
    dvc.lock is never checked here: the server has no workspace."""

    def probe(info: Any, need_remote: bool, need_lock: bool) -> LineageStatus:
        base = lineage_from_tags(info.tags)
        detail = dict(base.detail)
        if need_lock:
            detail.setdefault("lock_up_to_date", NOT_CHECKED)
        if not need_remote:
            return LineageStatus(base.committed, None, None, detail)
        in_remote: bool | None = None
        if remote is None:
            detail.setdefault("data_in_remote", no_remote)
        elif LINEAGE not in info.tags:
            detail.setdefault("data_in_remote", "not checked: the version has no mlops.lineage tag (no recorded md5s)")
        else:
            try:
                record = Lineage.from_dict(json.loads(info.tags[LINEAGE]))
                missing = remote.missing([(d.path, d.md5) for d in record.data])
            except (ValueError, KeyError, TypeError) as exc:
                detail["data_in_remote"] = f"not checked: the mlops.lineage tag cannot be read ({exc})"
            except MlopsError as exc:
                detail["data_in_remote"] = f"not checked: {exc.message}"
            else:
                in_remote = not missing
                detail["data_in_remote"] = (
                    f"missing from DVC remote {remote.url}: {', '.join(missing[:5])}"
                    + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                    if missing
                    else f"every recorded md5 is in DVC remote {remote.url}"
                )
        return LineageStatus(base.committed, in_remote, None, detail)

    return probe
