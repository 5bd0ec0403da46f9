"""DVC adapter: reads dvc.lock, .dvc files and params.yaml; runs `dvc repro`, `dvc status`, `dvc push`.

DVC is driven through its command line (in this interpreter's environment) so its own locking and output stay DVC's;
the lock and params files are read directly, which needs no DVC import at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_layer.errors import BackendError, ConfigError, InputError, MlopsError

LOCK_FILE = "dvc.lock"
PIPELINE_FILE = "dvc.yaml"
PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class DataRef:
    """One DVC-tracked file or folder as dvc.lock (or a .dvc file) records it."""

    path: str
    md5: str
    size: int | None = None
    nfiles: int | None = None
    role: str = "dep"  # dep | out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "md5": self.md5, "size": self.size, "role": self.role}
        if self.nfiles is not None:
            d["nfiles"] = self.nfiles
        return d


@dataclass(frozen=True)
class StageLock:
    """One stage of dvc.lock."""

    name: str
    cmd: str
    deps: tuple[DataRef, ...]
    outs: tuple[DataRef, ...]
    params: dict[str, Any] = field(default_factory=dict)


def _load_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    return _parse_yaml(text, path, what)


def _parse_yaml(text: str, path: Path | str, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(
            f"{path}{where}: corrupt {what} ({getattr(exc, 'problem', None) or exc})",
            hint=f"fix the YAML syntax of {Path(path).name}",
        ) from None


def _refs(items: Any, role: str, source: Path | str) -> tuple[DataRef, ...]:
    refs = []
    for item in items or []:
        if not isinstance(item, dict) or "path" not in item:
            raise ConfigError(f"{source}: unexpected entry {item!r} in {role}s")
        md5 = item.get("md5") or item.get("etag") or item.get("checksum")
        if md5 is None:
            continue
        size = item.get("size")
        nfiles = item.get("nfiles")
        refs.append(
            DataRef(
                path=str(item["path"]),
                md5=str(md5),
                size=int(size) if size is not None else None,
                nfiles=int(nfiles) if nfiles is not None else None,
                role=role,
            )
        )
    return tuple(refs)


def flatten_params(params: Any) -> dict[str, Any]:
    """{"params.yaml": {"train.seed": 1}} -> {"train.seed": 1} (other files keep a ``file:`` prefix)."""
    flat: dict[str, Any] = {}
    if not isinstance(params, dict):
        return flat
    for file, values in params.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            flat[key if file == PARAMS_FILE else f"{file}:{key}"] = value
    return flat


def read_lock(root: Path) -> dict[str, StageLock]:
    """All stages of ``dvc.lock``; a missing file says to run ``dvc repro``."""
    path = root / LOCK_FILE
    if not path.is_file():
        raise InputError(
            f"no {LOCK_FILE} in {root} yet",
            hint="run `dvc repro` first: lineage is read from what DVC recorded",
        )
    return _lock_stages(_load_yaml(path, "DVC lock file"), path)


def _lock_stages(data: Any, path: Path | str) -> dict[str, StageLock]:
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise ConfigError(f"{path}: no 'stages' mapping; is this a DVC 3 lock file?", hint="rerun `dvc repro`")
    stages: dict[str, StageLock] = {}
    for name, body in data["stages"].items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: stage '{name}' is not a mapping")
        stages[str(name)] = StageLock(
            name=str(name),
            cmd=str(body.get("cmd", "")),
            deps=_refs(body.get("deps"), "dep", path),
            outs=_refs(body.get("outs"), "out", path),
            params=flatten_params(body.get("params")),
        )
    return stages


def read_stage(root: Path, stage: str) -> StageLock:
    stages = read_lock(root)
    if stage not in stages:
        have = ", ".join(sorted(stages)) or "none"
        raise InputError(
            f"stage '{stage}' is not in {root / LOCK_FILE} (stages: {have})",
            hint=f"run `dvc repro {stage}` so DVC records it",
        )
    return stages[stage]


def read_pipeline(root: Path) -> dict[str, dict[str, Any]]:
    """The stages of ``dvc.yaml`` ({} when there is none); corrupt YAML names the line."""
    path = root / PIPELINE_FILE
    if not path.is_file():
        return {}
    data = _load_yaml(path, "DVC pipeline file") or {}
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        raise ConfigError(f"{path}: no 'stages' mapping", hint="see https://dvc.org/doc/user-guide/project-structure")
    return {str(name): body if isinstance(body, dict) else {} for name, body in stages.items()}


def declared_params(root: Path, stage: str) -> list[str]:
    """The params keys a dvc.yaml stage declares (``- key`` and ``- file.yaml: [keys]`` forms)."""
    declared: list[str] = []
    for item in read_pipeline(root).get(stage, {}).get("params") or []:
        if isinstance(item, str):
            declared.append(item)
        elif isinstance(item, dict):
            for values in item.values():
                declared.extend(str(v) for v in values or [])
    return declared


def pipeline_outputs(root: Path) -> tuple[str, ...]:
    """Every path dvc.yaml declares as an output (outs, metrics, plots) of any stage."""
    outs: list[str] = []
    for body in read_pipeline(root).values():
        for key in ("outs", "metrics", "plots"):
            for item in body.get(key) or []:
                if isinstance(item, str):
                    outs.append(item)
                elif isinstance(item, dict):
                    outs.extend(str(k) for k in item)
    return tuple(outs)


def read_dvc_file(path: Path) -> tuple[DataRef, ...]:
    """The outputs a ``.dvc`` file tracks."""
    return _dvc_file_refs(_load_yaml(path, ".dvc file"), path)


def _dvc_file_refs(data: Any, path: Path | str) -> tuple[DataRef, ...]:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a .dvc file")
    return _refs(data.get("outs"), "out", path)


def read_params(root: Path, file: str = PARAMS_FILE) -> dict[str, Any]:
    """``params.yaml`` as a mapping; corrupt YAML names the line."""
    path = root / file
    if not path.is_file():
        return {}
    data = _load_yaml(path, "params file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of parameters, got {type(data).__name__}")
    return data


def lookup_param(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _dvc_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("dvc")
    return [str(exe)] if exe.exists() else ([shutil.which("dvc") or "dvc"])


def run_dvc(root: Path, *args: str, timeout: float | None = None, check: bool = True) -> str:
    """Run a DVC command in ``root``; failures become BackendError with DVC's own last lines."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    try:
        proc = subprocess.run(
            [*_dvc_cmd(), *args],
            cwd=root,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise BackendError("the `dvc` command is not installed", hint="pip install dvc") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"`dvc {' '.join(args)}` did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise BackendError(f"`dvc {' '.join(args)}` failed in {root} (exit {proc.returncode}): {tail}")
    return proc.stdout


def is_dvc_repo(root: Path) -> bool:
    return (root / ".dvc").is_dir()


def init(root: Path) -> bool:
    """``dvc init`` unless already initialised; returns whether it did anything."""
    if is_dvc_repo(root):
        return False
    run_dvc(root, "init", "-q")
    return True


def repro(root: Path, *targets: str, force: bool = False) -> str:
    args = ["repro", *targets]
    if force:
        args.append("--force")
    return run_dvc(root, *args)


def pipeline_status(root: Path) -> dict[str, Any]:
    """``dvc status --json``: {} when every stage and output matches dvc.lock."""
    out = run_dvc(root, "status", "--json")
    try:
        data = json.loads(out or "{}")
    except ValueError as exc:
        raise BackendError(f"`dvc status --json` printed something unexpected: {out[:200]}") from exc
    return data if isinstance(data, dict) else {}


def missing_in_remote(root: Path, remote: str | None = None) -> list[str]:
    """Paths whose data is not in the DVC remote (``dvc status --cloud``); [] when everything is pushed."""
    args = ["status", "--cloud", "--json"]
    if remote:
        args += ["--remote", remote]
    out = run_dvc(root, *args)
    try:
        data = json.loads(out or "{}")
    except ValueError as exc:
        raise BackendError(f"`dvc status --cloud` printed something unexpected: {out[:200]}") from exc
    return sorted(str(path) for path, state in (data or {}).items() if state != "deleted")


def push(root: Path, remote: str | None = None) -> None:
    run_dvc(root, "push", "-q", *(["--remote", remote] if remote else []))


def has_remote(root: Path) -> bool:
    """Whether a DVC remote is configured (``dvc remote list`` prints one)."""
    return bool(run_dvc(root, "remote", "list").strip())


def _flatten_nested(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_nested(value, name + "."))
        else:
            out[name] = value
    return out


def stage_params(root: Path, stage: str) -> dict[str, Any]:
    """The params a dvc.yaml stage declares, with their current values in params.yaml (all params, dotted, if none)."""
    params = read_params(root)
    declared = declared_params(root, stage)
    if not declared:
        return _flatten_nested(params)
    return {key: lookup_param(params, key) for key in declared}


def locked_md5(root: Path, path: str) -> str | None:
    """The md5 dvc.lock records for ``path`` (or for the output folder holding it), as an earlier stage wrote it."""
    try:
        stages = read_lock(root)
    except MlopsError:
        return None
    for stage in stages.values():
        for ref in stage.outs:
            if path == ref.path or path.startswith(ref.path.rstrip("/") + "/"):
                return ref.md5
    return None


class DvcWorkspace:
    """DVC's view of a workspace, as the ``lineage_clean`` rule asks it (``governance.workspace.WorkspacePort``)."""

    def __init__(self, root: Path, remote: str | None = None) -> None:
        self.root = root
        self.remote = remote

    def locked_hashes(self, stage: str) -> dict[str, str]:
        lock = read_stage(self.root, stage)
        return {r.path: r.md5 for r in (*lock.deps, *lock.outs)}

    def stale_stages(self) -> list[str]:
        return sorted(pipeline_status(self.root))

    def missing_in_remote(self) -> set[str]:
        return set(missing_in_remote(self.root, self.remote))


def tracked(root: Path, path: str) -> DataRef | None:
    """How DVC records ``path`` (a file): its ``.dvc`` file, else the dvc.lock stage that outputs or reads it."""
    rel = path.strip("/")
    dvc_file = root / f"{rel}.dvc"
    refs = read_dvc_file(dvc_file) if dvc_file.is_file() else ()
    stages = read_lock(root) if (root / LOCK_FILE).is_file() else {}
    return _tracked_in(rel, refs, stages)


def committed_tracked(reader: Any, commit: str, root: Path, path: str) -> DataRef | None:
    """How DVC records ``path`` as ``commit`` holds its ``.dvc`` file or dvc.lock (``reader``: the git adapter's
    ``GitCommits`` of the repository holding ``root``); the working copy is never read."""
    rel = path.strip("/")
    dvc_file = reader.read(commit, root / f"{rel}.dvc")
    lock_file = reader.read(commit, root / LOCK_FILE)
    where = f"@{commit[:12]}"
    refs: tuple[DataRef, ...] = ()
    if dvc_file.data is not None:
        text = dvc_file.data.decode("utf-8", errors="replace")
        refs = _dvc_file_refs(_parse_yaml(text, dvc_file.path + where, ".dvc file"), dvc_file.path + where)
    stages: dict[str, StageLock] = {}
    if lock_file.data is not None:
        text = lock_file.data.decode("utf-8", errors="replace")
        stages = _lock_stages(_parse_yaml(text, lock_file.path + where, "DVC lock file"), lock_file.path + where)
    return _tracked_in(rel, refs, stages)


def dataset_md5_at(reader: Any, commit: str, ref: str, root: Path) -> Callable[[str], str]:
    """For the drift gate: ``path -> md5`` as DVC records the dataset at ``commit`` (of ``ref``), the same commit the
    policy is read from; a path DVC does not track there is a ConfigError naming the path and the ref."""
    cache: dict[str, str] = {}

    def md5(path: str) -> str:
        if path not in cache:
            found = committed_tracked(reader, commit, root, path)
            if found is None:
                raise ConfigError(
                    f"the policy names dataset {path}, but DVC does not track it at {ref} ({commit[:12]}): no "
                    f"committed {path}.dvc and no {LOCK_FILE} entry for it",
                    hint=f"`dvc add {path}` (or output it from a pipeline stage) and commit the .dvc file/{LOCK_FILE}; "
                    "uncommitted DVC files count for nothing",
                )
            cache[path] = found.md5
        return cache[path]

    return md5


def _tracked_in(rel: str, refs: tuple[DataRef, ...], stages: dict[str, StageLock]) -> DataRef | None:
    for ref in refs:
        if ref.path in (rel, Path(rel).name):
            return DataRef(rel, ref.md5, ref.size, ref.nfiles, "out")
    if stages:
        for stage in stages.values():
            for ref in stage.outs:
                if ref.path == rel:
                    return ref
        for stage in stages.values():
            for ref in stage.deps:
                if ref.path == rel:
                    return ref
    return None


def file_md5(path: Path) -> str:
    """The md5 DVC (3.x) records for a file: of its bytes, read in chunks."""
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DvcRemote:
    """A DVC remote read by URL, without a workspace: which recorded md5s it holds (the governing server's check).

    DVC 3 stores an object under ``files/md5/<first 2 hex>/<other 30>``; a folder's ``<md5>.dir`` object lists its
    files, each of which must be there too. The URL is any remote DVC understands (a folder, s3://, ssh://, ...; the
    scheme's DVC plugin must be installed).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._fs: Any = None
        self._root = ""

    def _open(self) -> tuple[Any, str]:
        if self._fs is None:
            from dvc.fs import get_cloud_fs

            try:
                cls, conf, root = get_cloud_fs({}, url=self.url)
                fs = cls(**conf)
                found = fs.exists(root)
            except Exception as exc:  # noqa: BLE001 - any plugin's failure means: cannot reach the remote
                raise BackendError(f"DVC remote {self.url} cannot be opened: {type(exc).__name__}: {exc}") from None
            if not found:
                raise BackendError(f"DVC remote {self.url} does not exist (or is not readable here)")
            self._fs, self._root = fs, root
        return self._fs, self._root

    def object_path(self, md5: str) -> str:
        fs, root = self._open()
        return str(fs.join(root, "files", "md5", md5[:2], md5[2:]))

    def _has(self, md5: str) -> bool:
        fs, _root = self._open()
        try:
            return bool(fs.exists(self.object_path(md5)))
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"DVC remote {self.url}: cannot look up {md5}: {type(exc).__name__}: {exc}") from None

    def _listing(self, md5: str) -> list[tuple[str, str]]:
        fs, _root = self._open()
        path = self.object_path(md5)
        try:
            entries = json.loads(fs.cat_file(path))
        except Exception as exc:  # noqa: BLE001 - unreadable or not JSON: the folder's listing is unusable
            raise BackendError(f"DVC remote {self.url}: cannot read the folder listing {path}: {exc}") from None
        if not isinstance(entries, list):
            raise BackendError(f"DVC remote {self.url}: {path} is not a DVC folder listing")
        return [(str(e.get("relpath", "")), str(e.get("md5", ""))) for e in entries if isinstance(e, dict)]

    def missing(self, data: Iterable[tuple[str, str]]) -> list[str]:
        """``path (md5 <md5>)`` for each recorded (path, md5) whose data is not in the remote; for a folder, each of
        its files missing as ``path/relpath (md5 <md5>)``. Raises BackendError when the remote cannot be read."""
        out: list[str] = []
        for path, md5 in data:
            if not self._has(md5):
                out.append(f"{path} (md5 {md5})")
                continue
            if md5.endswith(".dir"):
                out.extend(
                    f"{path.rstrip('/')}/{rel} (md5 {file_md5})"
                    for rel, file_md5 in self._listing(md5)
                    if not file_md5 or not self._has(file_md5)
                )
        return out
