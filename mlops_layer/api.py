"""The one facade of mlops_layer: plain functions that open adapters, call the core, close them, return results.

The CLI, the pipeline stages and users' own scripts all call these. Nothing here prints.
Heavy libraries (mlflow, dvc, pandas, evidently) are imported inside functions, never at module top.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_layer.config import Settings, load_settings
from mlops_layer.errors import BackendError, ConfigError, InputError, MlopsError, NotFoundError
from mlops_layer.lineage import TAG_LINEAGE, Lineage


def settings(root: Path | str | None = None, **overrides: Any) -> Settings:
    """Resolve the settings of the project at ``root`` (default: found from the cwd)."""
    return load_settings(Path(root) if root is not None else None, **overrides)


# ---------------------------------------------------------------------------------------------------------------
# foundation: init, lineage, registration, status  (owner: lead)
# ---------------------------------------------------------------------------------------------------------------

GOVERNANCE_GITIGNORE = (".mlops/", "mlflow.db", "mlartifacts/", "mlruns/")


@dataclass(frozen=True)
class InitResult:
    """What ``init`` created (paths relative to the root) and what it left alone."""

    root: Path
    created: tuple[str, ...]
    kept: tuple[str, ...]
    dvc_initialised: bool


def init(root: Path | str | None = None) -> InitResult:
    """Scaffold ``mlops.yaml`` and ``governance/`` in an existing git repository; run ``dvc init`` where needed.

    Never overwrites an existing file.
    """
    from mlops_layer.adapters import dvc
    from mlops_layer.adapters.git import GitRepo
    from mlops_layer.scaffold import scaffold_files

    start = Path(root) if root is not None else Path.cwd()
    repo_root = GitRepo(start).root  # refuses politely outside a git repository
    created: list[str] = []
    kept: list[str] = []
    for rel, text in scaffold_files().items():
        path = repo_root / rel
        if path.exists():
            kept.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(rel)
    ignore = repo_root / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    missing = [p for p in GOVERNANCE_GITIGNORE if p not in lines]
    if missing:
        with ignore.open("a", encoding="utf-8") as fh:
            if lines and lines[-1].strip():
                fh.write("\n")
            fh.write("# mlops_layer local state\n" + "\n".join(missing) + "\n")
        (created if not lines else kept).append(".gitignore")
    dvc_done = dvc.init(repo_root)
    return InitResult(root=repo_root, created=tuple(created), kept=tuple(kept), dvc_initialised=dvc_done)


def _stage_params(root: Path, stage: str) -> dict[str, Any]:
    """The params a dvc.yaml stage declares, with their current values in params.yaml (all params if none)."""
    from mlops_layer.adapters import dvc

    params = dvc.read_params(root)
    declared = dvc.declared_params(root, stage)
    if not declared:
        return _flatten(params)
    return {key: dvc.lookup_param(params, key) for key in declared}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


class GovernedRun:
    """An open MLflow run whose lineage (git, params, environment, parent) was captured when it started."""

    def __init__(self, tracking: Any, run_id: str, settings: Settings, lineage: Lineage) -> None:
        self.tracking = tracking
        self.run_id = run_id
        self.settings = settings
        self.lineage = lineage

    def log_params(self, params: dict[str, Any]) -> None:
        self.tracking.log_params(params)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.tracking.log_metrics(metrics)

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        self.tracking.log_dict(data, artifact_file)

    def log_model(self, model: Any, *, input_example: Any = None, pip_requirements: list[str] | None = None) -> str:
        """Log a scikit-learn model under ``model`` with explicit requirements (no ~8 s inference)."""
        from mlops_layer.lineage import environment_info

        env = environment_info()
        reqs = pip_requirements or [f"scikit-learn=={env.get('scikit-learn', '')}".rstrip("="), "pandas<3"]
        return str(self.tracking.log_sklearn_model(model, "model", reqs, input_example=input_example))

    def log_reference_profile(
        self, frame: Any, *, predictions: Any = None, data_path: str | None = None, **kwargs: Any
    ) -> None:
        """Log the training data's drift reference profile (so drift checks never need the raw data again).

        ``predictions`` (the model's predictions on ``frame``) let later checks compare the prediction distribution;
        ``data_path`` names the DVC-tracked file the frame was read from: its md5 from dvc.lock links the profile to
        that exact data version.
        """
        from mlops_layer.lineage import PROFILE_ARTIFACT

        data_hash = _locked_md5(self.settings.root, data_path) if data_path else None
        kwargs.setdefault("prediction_column", drift_config(settings=self.settings).prediction_column or "prediction")
        profile = profile_for_training(frame, predictions=predictions, data_hash=data_hash, **kwargs)
        self.tracking.log_dict(profile, PROFILE_ARTIFACT)


def _locked_md5(root: Path, path: str) -> str | None:
    """The md5 dvc.lock records for ``path`` (or for the output folder holding it), as an earlier stage wrote it."""
    from mlops_layer.adapters import dvc

    try:
        stages = dvc.read_lock(root)
    except MlopsError:
        return None
    for stage in stages.values():
        for ref in stage.outs:
            if path == ref.path or path.startswith(ref.path.rstrip("/") + "/"):
                return ref.md5
    return None


@contextlib.contextmanager
def governed_run(
    stage: str = "train",
    *,
    root: Path | str | None = None,
    run_name: str | None = None,
    parent: str | None = None,
    settings: Settings | None = None,
) -> Iterator[GovernedRun]:
    """Open an MLflow run with lineage captured from git, params.yaml and the environment.

    ``parent`` ("NAME/VERSION" or "NAME@ALIAS") names the model version this run fine-tunes.
    Example (a DVC stage script)::

        with api.governed_run("train") as run:
            run.log_params({...}); run.log_model(model)
    """
    from mlops_layer.adapters import dvc
    from mlops_layer.adapters.git import GitRepo
    from mlops_layer.adapters.mlflow import MlflowRegistry, MlflowTracking
    from mlops_layer.lineage import TAG_RUN, TAG_STAGE, TAG_TRAINED_BY, ParentRef, environment_info

    cfg = settings or load_settings(Path(root) if root is not None else None)
    # Pipeline outputs are rewritten by the very run being recorded: they do not make the code dirty.
    git = GitRepo(cfg.root).info(exclude=("dvc.lock", *dvc.pipeline_outputs(cfg.root)))
    params = _stage_params(cfg.root, stage)
    parent_ref = None
    if parent:
        from mlops_layer.lineage import parse_model_ref

        name, ref = parse_model_ref(parent)
        info = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri).resolve(name, ref)
        parent_ref = ParentRef(model=info.name, version=info.version, run_id=info.run_id)
    lineage = Lineage(
        git_commit=git.commit,
        git_dirty=git.dirty,
        git_branch=git.branch,
        git_diff_sha256=git.diff_sha256,
        git_remote=git.remote,
        stage=stage,
        params=params,
        environment=environment_info(),
        parent=parent_ref,
    )
    tracking = MlflowTracking(cfg.tracking_uri, cfg.registry_uri)
    experiment_id = tracking.ensure_experiment(cfg.experiment, cfg.artifact_location)
    tags = {**lineage.to_tags(), TAG_STAGE: stage, TAG_TRAINED_BY: cfg.actor}
    with tracking.run(experiment_id, run_name or stage, tags) as run_id:
        tracking.set_tags({TAG_RUN: run_id})
        if params:
            tracking.log_params(params)
        yield GovernedRun(tracking, run_id, cfg, lineage)


def load_model(ref: str, *, settings: Settings | None = None) -> Any:
    """Load a model: ``NAME/VERSION``, ``NAME@ALIAS`` or any MLflow model URI (``runs:/...``, ``models:/...``).

    A registered version is loaded only if its files match the sha256 digests the audit trail recorded when it was
    registered (AuditIntegrityError otherwise).
    """
    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.adapters.mlflow import load_model as _load

    cfg = settings or load_settings()
    if ":/" in ref:
        return _load(ref, cfg.tracking_uri, cfg.registry_uri)
    from mlops_layer.lineage import parse_model_ref

    name, version = parse_model_ref(ref)
    if version is None:
        raise InputError(f"model reference {ref!r} names no version", hint="use NAME/VERSION or NAME@ALIAS")
    info = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri).resolve(name, version)
    return _load_registered(cfg, info.name, info.version)


def _load_registered(cfg: Settings, name: str, version: str) -> Any:
    """Load a registered version after checking its files against the digests recorded at registration."""
    from mlops_layer.adapters.mlflow import load_model as _load
    from mlops_layer.audit import actions

    expected: dict[str, str] | None = None
    with _audit_store(cfg) as trail:
        for entry in trail.entries(model=name, action=actions.MODEL_REGISTERED):
            if str(entry.subject.get("version")) == str(version):
                expected = dict((entry.details or {}).get("artifacts") or {}) or None
    return _load(f"models:/{name}/{version}", cfg.tracking_uri, cfg.registry_uri, expected_digests=expected)


def log_run_metrics(run_id: str, metrics: dict[str, float], *, settings: Settings | None = None) -> None:
    """Add metrics (e.g. evaluation results) to an existing run."""
    from mlops_layer.adapters.mlflow import MlflowTracking

    cfg = settings or load_settings()
    tracking = MlflowTracking(cfg.tracking_uri, cfg.registry_uri)
    with tracking.run("", None, {}, run_id=run_id):
        tracking.log_metrics(metrics)


@dataclass(frozen=True)
class Registration:
    """A governed model version: the version, where it came from, and its audit entry."""

    model: str
    version: str
    run_id: str
    model_uri: str
    lineage: Lineage
    audit_seq: int | None


def register(
    name: str,
    run_id: str,
    *,
    stage: str = "train",
    model_uri: str | None = None,
    root: Path | str | None = None,
    settings: Settings | None = None,
) -> Registration:
    """Register the model logged by ``run_id`` with full lineage: git (from the run), data and params (from dvc.lock).

    The lineage is logged on the run (tags, ``mlflow.log_input`` datasets with the DVC md5 as digest, a JSON
    artifact) and copied onto the model version as tags. Audited before and after.
    """
    from mlops_layer.adapters import dvc
    from mlops_layer.adapters.mlflow import MlflowRegistry, MlflowTracking
    from mlops_layer.audit import actions
    from mlops_layer.governance.cards import validate_model_name
    from mlops_layer.lineage import (
        LINEAGE_ARTIFACT,
        TAG_AUDIT_SEQ,
        TAG_REGISTERED_BY,
        TAG_RUN,
        TAG_TRAINED_BY,
        DataVersion,
    )

    cfg = settings or load_settings(Path(root) if root is not None else None)
    validate_model_name(name)
    lock = dvc.read_stage(cfg.root, stage)
    registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
    run = registry.get_run(run_id)
    base = Lineage.from_dict(json.loads(run.tags[TAG_LINEAGE])) if TAG_LINEAGE in run.tags else None
    if base is None:
        raise InputError(
            f"run {run_id} was not opened by a governed run (no {TAG_LINEAGE} tag)",
            hint="train inside `api.governed_run(...)` so lineage is captured",
        )
    lineage = dataclasses.replace(
        base,
        stage=stage,
        data=tuple(
            DataVersion(path=d.path, md5=d.md5, size=d.size, role=d.role, nfiles=d.nfiles)
            for d in (*lock.deps, *lock.outs)
        ),
        params={**base.params, **lock.params},
    )
    uri = model_uri or f"runs:/{run_id}/model"
    subject = {"model": name}
    with _audit_store(cfg) as trail:
        trail.append(
            actions.MODEL_REGISTER_STARTED,
            actor=cfg.actor,
            subject=subject,
            git_commit=lineage.git_commit,
            dvc_hashes=lineage.data_hashes,
            run_id=run_id,
            details={"model_uri": uri, "stage": stage},
        )
        tracking = MlflowTracking(cfg.tracking_uri, cfg.registry_uri)
        with tracking.run("", None, {}, run_id=run_id):
            tracking.set_tags(lineage.to_tags())
            tracking.log_dict(lineage.to_dict(), LINEAGE_ARTIFACT)
            for d in lineage.data:
                if d.role == "dep":
                    tracking.log_dvc_dataset(d.path, d.md5, d.size, context="training")
        tags = {
            **lineage.to_tags(),
            TAG_RUN: run_id,
            TAG_REGISTERED_BY: cfg.actor,
            TAG_TRAINED_BY: run.tags.get(TAG_TRAINED_BY, run.user or ""),
        }
        digests = registry.artifact_digests(uri)  # before the registry moves: a failure here leaves nothing behind
        version = registry.register(name, uri, run_id, tags)
        entry = trail.append(
            actions.MODEL_REGISTERED,
            actor=cfg.actor,
            subject={"model": name, "version": version.version},
            git_commit=lineage.git_commit,
            dvc_hashes=lineage.data_hashes,
            run_id=run_id,
            details={
                "model_uri": uri,
                "source": version.source,
                "stage": stage,
                "params": lineage.params,
                "artifacts": digests,
            },
        )
    _mirror_tags(registry, name, version.version, {TAG_AUDIT_SEQ: entry.seq})
    return Registration(name, version.version, run_id, uri, lineage, entry.seq)


def _mirror_tags(registry: Any, name: str, version: str, tags: dict[str, Any]) -> None:
    """Mirror governance state to MLflow tags: a side effect that may warn and go on."""
    import warnings

    from mlops_layer.errors import MlopsError

    try:
        registry.set_version_tags(name, version, tags)
    except MlopsError as exc:
        warnings.warn(f"could not mirror tags onto {name} v{version}: {exc}", stacklevel=2)


@contextlib.contextmanager
def _audit_store(cfg: Settings) -> Iterator[Any]:
    from mlops_layer.audit.store import AuditStore

    store = AuditStore.open(cfg.audit_url)
    try:
        yield store
    finally:
        store.close()


@dataclass(frozen=True)
class LineageReport:
    """``mlops lineage`` output: a version, its lineage and its ancestry (parent, grandparent, ...)."""

    model: str
    version: str
    run_id: str | None
    lineage: Lineage
    aliases: tuple[str, ...]
    ancestry: tuple[dict[str, Any], ...]
    audit_seq: str | None

    def to_dict(self) -> dict[str, Any]:
        body = self.lineage.to_dict()
        return {
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "aliases": list(self.aliases),
            "git": body["git"],
            "data": body["data"],
            "params": body["params"],
            "environment": body["environment"],
            "stage": body["stage"],
            "parent": body["parent"],
            "ancestry": list(self.ancestry),
            "audit_seq": self.audit_seq,
        }


def _version_lineage(registry: Any, info: Any) -> Lineage:
    from mlops_layer.lineage import LINEAGE_ARTIFACT

    if TAG_LINEAGE in info.tags:
        return Lineage.from_dict(json.loads(info.tags[TAG_LINEAGE]))
    data = registry.load_json_artifact(info.run_id, LINEAGE_ARTIFACT) if info.run_id else None
    if data is None:
        raise NotFoundError(
            f"{info.name} v{info.version} has no lineage record (registered outside mlops_layer?)",
            hint="register versions with `api.register` / the pipeline's register stage",
        )
    return Lineage.from_dict(data)


def lineage(name: str, version: str, *, settings: Settings | None = None) -> LineageReport:
    """Where a version came from: commit, data hashes, params, run, parent version and the ancestry chain."""
    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.lineage import TAG_AUDIT_SEQ

    cfg = settings or load_settings()
    registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
    info = registry.resolve(name, version)
    record = _version_lineage(registry, info)
    ancestry: list[dict[str, Any]] = []
    parent = record.parent
    seen = {(info.name, info.version)}
    while parent is not None and (parent.model, parent.version) not in seen:
        seen.add((parent.model, parent.version))
        try:
            p_info = registry.get_version(parent.model, parent.version)
            p_lineage = _version_lineage(registry, p_info)
        except NotFoundError:
            ancestry.append({"model": parent.model, "version": parent.version, "missing": True})
            break
        ancestry.append(
            {
                "model": p_info.name,
                "version": p_info.version,
                "run_id": p_info.run_id,
                "git_commit": p_lineage.git_commit,
            }
        )
        parent = p_lineage.parent
    return LineageReport(
        model=info.name,
        version=info.version,
        run_id=info.run_id,
        lineage=record,
        aliases=info.aliases,
        ancestry=tuple(ancestry),
        audit_seq=info.tags.get(TAG_AUDIT_SEQ),
    )


@dataclass(frozen=True)
class VersionStatus:
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    git_commit: str | None
    created: str | None
    decision: dict[str, str]
    drift: str | None


@dataclass(frozen=True)
class ModelStatus:
    name: str
    aliases: dict[str, str]
    versions: tuple[VersionStatus, ...]
    open_alerts: tuple[str, ...] = ()
    pending_approvals: tuple[str, ...] = ()  # "v3 -> @champion approved by alice@example.com", not yet promoted


@dataclass(frozen=True)
class StatusReport:
    tracking_uri: str
    models: tuple[ModelStatus, ...]
    audit: dict[str, Any]


def _pending_approvals(cfg: Settings, model: str, aliases: dict[str, str]) -> tuple[str, ...]:
    """Signed approvals in the trail for a version that does not hold the approved alias yet."""
    from mlops_layer.audit import actions

    pending: dict[tuple[str, str], list[str]] = {}
    try:
        with _audit_store(cfg) as trail:
            for entry in trail.entries(model=model):
                key = (str(entry.subject.get("version")), str(entry.subject.get("alias")))
                if entry.action == actions.APPROVAL_GRANTED:
                    pending.setdefault(key, []).append(entry.actor)
                elif entry.action == actions.ALIAS_SET:
                    pending.pop(key, None)  # the approval was used
    except MlopsError:
        return ()
    return tuple(
        f"v{version} -> @{alias} approved by {', '.join(sorted(set(who)))}"
        for (version, alias), who in sorted(pending.items())
        if aliases.get(alias) != version
    )


def _decision_word(tag: str) -> str:
    """The mirrored decision tag holds JSON; status shows its verdict."""
    try:
        body = json.loads(tag)
    except ValueError:
        return tag
    if isinstance(body, dict) and "allowed" in body:
        return "allowed" if body["allowed"] else "refused"
    return tag


def status(name: str | None = None, *, settings: Settings | None = None) -> StatusReport:
    """Registered models, their versions and aliases, governance tags, and the audit trail's head."""
    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.lineage import TAG_COMMIT

    cfg = settings or load_settings()
    registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
    names = [name] if name else registry.model_names()
    models = []
    for model in names:
        versions = registry.versions(model)
        aliases = registry.get_aliases(model)
        models.append(
            ModelStatus(
                name=model,
                aliases=aliases,
                open_alerts=tuple(_open_alerts(cfg, model)),
                pending_approvals=_pending_approvals(cfg, model, aliases),
                versions=tuple(
                    VersionStatus(
                        version=v.version,
                        aliases=tuple(sorted(a for a, held in aliases.items() if held == v.version)),
                        run_id=v.run_id,
                        git_commit=v.tags.get(TAG_COMMIT),
                        created=v.creation_time.isoformat(timespec="seconds") if v.creation_time else None,
                        decision={
                            k.removeprefix("mlops.decision."): _decision_word(val)
                            for k, val in v.tags.items()
                            if k.startswith("mlops.decision.")
                        },
                        drift=v.tags.get("mlops.drift.status"),
                    )
                    for v in versions
                ),
            )
        )
    audit: dict[str, Any] = {"url": cfg.audit_url}
    try:
        with _audit_store(cfg) as trail:
            size, head = trail.head()
        audit.update(size=size, head=head)
    except MlopsError as exc:
        audit.update(error=str(exc))
    return StatusReport(tracking_uri=cfg.tracking_uri, models=tuple(models), audit=audit)


# ---------------------------------------------------------------------------------------------------------------
# audit trail  (owner: audit)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditCheckpointResult:
    """A signed checkpoint just made: stored in the database, and appended to the checkpoint file if asked."""

    checkpoint: Any  # audit.checkpoints.Checkpoint
    entry_seq: int
    appended_to: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.checkpoint.to_dict(),
            "entry_seq": self.entry_seq,
            "appended_to": str(self.appended_to) if self.appended_to else None,
        }


@dataclass(frozen=True)
class AuditExport:
    """An export: its format, how many entries, and where it went (``path``) or its text (``text``)."""

    format: str
    count: int
    size: int
    head: str
    path: Path | None
    text: str | None


@dataclass(frozen=True)
class HistoryReport:
    """``mlops history``: the alias spans of a model (one alias or all) and, with ``at``, who held it then."""

    model: str
    alias: str | None
    at: Any  # datetime | None
    holder: str | None
    spans: tuple[Any, ...]  # audit.history.AliasSpan

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "at": self.at.isoformat() if self.at is not None else None,
            "holder": self.holder,
            "spans": [s.to_dict() for s in self.spans],
        }


def open_audit(*, settings: Settings | None = None) -> Any:
    """Open the project's audit trail (``settings.audit_url``); an ``AuditStore``, usable as a context manager."""
    from mlops_layer.audit.store import AuditStore

    cfg = settings or load_settings()
    return AuditStore.open(cfg.audit_url)


def parse_time(text: str) -> Any:
    """A UTC datetime from ISO 8601 (naive means UTC), ``now``, or an age such as ``7d``, ``12h``, ``30m``."""
    from mlops_layer.audit.entry import parse_when

    return parse_when(text)


def audit_log(
    *,
    model: str | None = None,
    action: str | None = None,
    since: Any = None,
    limit: int | None = None,
    settings: Settings | None = None,
) -> list[Any]:
    """Audit entries, oldest first, filtered by subject model, action and time; ``limit`` keeps the newest N."""
    from collections import deque

    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    cfg = settings or load_settings()
    with _audit_store(cfg) as trail:
        found = trail.entries(model=model, action=action, since=since)
        return list(deque(found, maxlen=limit)) if limit else list(found)


def audit_entry(seq: int, *, settings: Settings | None = None) -> Any:
    """One audit entry by sequence number (NotFoundError if absent)."""
    cfg = settings or load_settings()
    with _audit_store(cfg) as trail:
        return trail.get(seq)


def verify_audit(
    *,
    settings: Settings | None = None,
    checkpoint_file: Path | None = None,
    allowed_signers: Path | None = None,
    export_file: Path | None = None,
    deep: bool = False,
) -> Any:
    """Verify the trail offline: every hash and link, timestamps, and every signed checkpoint (db + file).

    ``export_file`` verifies a ``mlops audit export --format jsonl`` file instead of the database. Returns a
    ``VerifyReport`` (``ok`` False with every problem listed); never raises for a broken chain.
    """
    from mlops_layer.audit.checkpoints import read_checkpoint_file
    from mlops_layer.audit.verify import read_export, verify_rows, verify_trail

    cfg = settings or load_settings()
    cp_file = checkpoint_file or cfg.checkpoint_file
    signers = allowed_signers or cfg.allowed_signers
    if export_file is not None:
        export_file = Path(export_file)
        if not export_file.is_file():
            raise NotFoundError(f"export file {export_file} does not exist")
        cps = read_checkpoint_file(cp_file)
        return verify_rows(
            read_export(export_file),
            checkpoints=list(cps.checkpoints),
            checkpoint_errors=cps.errors,
            allowed_signers=signers if signers.exists() else None,
            deep_rows=read_export(export_file) if deep else None,
            source=str(export_file),
        )
    with _audit_store(cfg) as trail:
        return verify_trail(trail, checkpoint_file=cp_file, allowed_signers=signers, deep=deep)


def _default_signing_key(root: Path) -> Path | None:
    """git's ``user.signingkey`` when it names a key file (the key people already sign commits with)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "config", "user.signingkey"], cwd=root, capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out or out.startswith(("ssh-", "key::")):
        return None
    path = Path(out).expanduser()
    return path if path.is_file() else None


def checkpoint_audit(
    *,
    key: Path | None = None,
    append_file: bool = False,
    settings: Settings | None = None,
) -> AuditCheckpointResult:
    """Sign the trail's (size, head, time), store it in the database and, with ``append_file``, in the checkpoint file.

    ``key``: an SSH private key (or a raw Ed25519 PEM key); default git's ``user.signingkey``. An
    ``audit.checkpoint`` entry is appended first, so the checkpoint covers its own record.
    """
    from datetime import datetime, timezone

    from mlops_layer import signing
    from mlops_layer.audit import actions
    from mlops_layer.audit.checkpoints import append_checkpoint_file, make_checkpoint

    cfg = settings or load_settings()
    key_path = Path(key) if key is not None else _default_signing_key(cfg.root)
    if key_path is None:
        raise InputError(
            "no signing key for the checkpoint",
            hint="pass --key PATH (an SSH or Ed25519 private key), or set git config user.signingkey",
        )
    if not key_path.is_file():
        raise NotFoundError(f"signing key {key_path} does not exist", hint="pass --key PATH to a private key")
    fingerprint = signing.fingerprint(signing.public_key(key_path))
    with _audit_store(cfg) as trail:
        entry = trail.append(
            actions.CHECKPOINT,
            actor=cfg.actor,
            details={"key": fingerprint, "file": str(cfg.checkpoint_file) if append_file else None},
        )
        size, head = trail.head()
        checkpoint = make_checkpoint(size, head, datetime.now(timezone.utc), key_path, cfg.allowed_signers)
        trail.add_checkpoint(checkpoint)
    if append_file:
        append_checkpoint_file(cfg.checkpoint_file, checkpoint)
    return AuditCheckpointResult(checkpoint, entry.seq, cfg.checkpoint_file if append_file else None)


def export_audit(
    fmt: str = "jsonl",
    *,
    out: Path | None = None,
    model: str | None = None,
    action: str | None = None,
    since: Any = None,
    settings: Settings | None = None,
) -> AuditExport:
    """Export the trail as ``jsonl`` (exact records; unfiltered it verifies offline with ``verify --export``) or
    ``in-toto`` (Statement v1: subjects = model artifacts and data with their digests; predicate = the entries).

    Written to ``out`` when given, else returned as ``text``.
    """
    from mlops_layer.audit.export import FORMATS, dvc_cache_resolver, in_toto_statement, jsonl_lines

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    cfg = settings or load_settings()
    with _audit_store(cfg) as trail:
        size, head = trail.head()
        entries = trail.entries(model=model, action=action, since=since)
        count = 0
        if fmt == "jsonl":
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("w", encoding="utf-8") as fh:
                    for line in jsonl_lines(entries):
                        fh.write(line)
                        count += 1
                return AuditExport(fmt, count, size, head, out, None)
            lines = list(jsonl_lines(entries))
            return AuditExport(fmt, len(lines), size, head, None, "".join(lines))
        chosen = list(entries)
        filters = {k: v for k, v in {"model": model, "action": action}.items() if v is not None}
        if since is not None:
            filters["since"] = since.isoformat()
        statement = in_toto_statement(
            chosen,
            size=size,
            head=head,
            checkpoints=trail.checkpoints(),
            filters=filters,
            resolve=dvc_cache_resolver(cfg.root),
        )
    text = json.dumps(statement, indent=2, ensure_ascii=False) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        return AuditExport(fmt, len(chosen), size, head, out, None)
    return AuditExport(fmt, len(chosen), size, head, None, text)


def reconcile_audit(
    *,
    settings: Settings | None = None,
    registry: Any = None,
    record_incident: bool = False,
) -> Any:
    """Compare the registry's aliases and versions with what the trail says they should be.

    ``registry``: anything with ``model_names()``, ``get_aliases(model)``, ``list_versions(model)`` (default: the
    MLflow registry of the settings). With ``record_incident``, each finding is appended as ``reconcile.incident``.
    Returns a ``ReconcileReport`` (``ok`` False when there are findings).
    """
    from mlops_layer.audit.reconcile import reconcile, record_incidents

    cfg = settings or load_settings()
    if registry is None:
        from mlops_layer.adapters.mlflow import MlflowRegistry

        registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
    with _audit_store(cfg) as trail:
        report = reconcile(trail, registry)
        if record_incident and report.findings:
            entries = record_incidents(trail, report.findings, cfg.actor)
            report = dataclasses.replace(report, incident_seqs=tuple(e.seq for e in entries))
    return report


def history(
    name: str,
    *,
    alias: str | None = None,
    at: Any = None,
    settings: Settings | None = None,
) -> HistoryReport:
    """Which version held each alias of ``name`` and when, answered from the trail alone (no registry needed).

    With ``at`` (an aware datetime) and ``alias``, ``holder`` is the version that held the alias at that moment.
    """
    from mlops_layer.audit.history import alias_history

    if at is not None and alias is None:
        raise InputError("--at needs --alias", hint="e.g. mlops history NAME --alias champion --at 2025-01-31")
    cfg = settings or load_settings()
    with _audit_store(cfg) as trail:
        if next(trail.entries(model=name), None) is None:
            raise NotFoundError(
                f"the audit trail has no entries for model {name!r}",
                hint="check the name (`mlops audit log` lists what the trail holds)",
            )
        spans = alias_history(trail, name, alias)
    holder = next((s.version for s in spans if s.holds_at(at)), None) if at is not None else None
    return HistoryReport(model=name, alias=alias, at=at, holder=holder, spans=tuple(spans))


# ---------------------------------------------------------------------------------------------------------------
# governance: cards, policy checks, approvals, promotion, rollback  (owner: governance)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardValidation:
    """A valid model card: where it is, its git blob hash, and the audit entry when its content changed."""

    model: str
    path: str
    card_hash: str
    valid: bool = True
    changed: bool = False
    audit_seq: int | None = None


def card_show(name: str, *, settings: Settings | None = None) -> Any:
    """The validated model card of ``name`` (``governance/models/NAME.yaml``) as a ``ModelCard``."""
    from mlops_layer.governance.cards import load_card

    cfg = settings or load_settings()
    return load_card(cfg.cards_dir, name)


def card_validate(name: str, *, settings: Settings | None = None) -> CardValidation:
    """Validate the card (ConfigError naming file, field and line); audit a content change with its blob hash."""
    card = card_show(name, settings=settings)
    cfg = settings or load_settings()
    with _governance_trail(cfg) as trail:
        seq = _record_card_change(trail, card)
    return CardValidation(name, card.path, card.card_hash, True, seq is not None, seq)


def _record_card_change(trail: Any, card: Any) -> int | None:
    from mlops_layer.audit import actions

    if trail.last_card_hash(card.name) == card.card_hash:
        return None
    seq: int = trail.record(
        actions.CARD_CHANGED,
        subject={"model": card.name},
        details={"card_hash": card.card_hash, "path": card.path},
    )
    return seq


def _record_policy_change(trail: Any, policy: Any) -> int | None:
    from mlops_layer.audit import actions

    if trail.last_policy_hash() == policy.policy_hash:
        return None
    seq: int = trail.record(
        actions.POLICY_CHANGED, subject={}, details={"policy_hash": policy.policy_hash, "path": policy.path}
    )
    return seq


@contextlib.contextmanager
def _governance_trail(cfg: Settings) -> Iterator[Any]:
    from mlops_layer.audit.store import AuditStore
    from mlops_layer.governance.trail import AuditTrailView

    store = AuditStore.open(cfg.audit_url)
    try:
        yield AuditTrailView(store, cfg.actor)
    finally:
        store.close()


def _lineage_probe(cfg: Settings) -> Any:
    """Live lineage checks for the ``lineage_clean`` rule: the version's tags plus DVC's view of the workspace."""
    from mlops_layer.governance.rules import LineageStatus, lineage_from_tags

    def probe(info: Any, need_remote: bool, need_lock: bool) -> LineageStatus:
        from mlops_layer.adapters import dvc

        base = lineage_from_tags(info.tags)
        detail = dict(base.detail)
        if TAG_LINEAGE not in info.tags:
            why = "the version has no mlops.lineage tag; register it through the layer"
            detail.setdefault("data_in_remote", why)
            detail.setdefault("lock_up_to_date", why)
            return LineageStatus(base.committed, None, None, detail)
        record = Lineage.from_dict(json.loads(info.tags[TAG_LINEAGE]))
        mismatches: list[str] | None = None
        lock_ok: bool | None = None
        in_remote: bool | None = None
        if need_lock or need_remote:
            try:
                lock = dvc.read_stage(cfg.root, record.stage or "train")
                now = {r.path: r.md5 for r in (*lock.deps, *lock.outs)}
                mismatches = [d.path for d in record.data if now.get(d.path) not in (None, d.md5)]
            except MlopsError as exc:
                detail["lock_up_to_date"] = detail["data_in_remote"] = exc.message
        if need_lock and mismatches is not None:
            if mismatches:
                lock_ok = False
                detail["lock_up_to_date"] = f"dvc.lock now records other data for {', '.join(mismatches[:5])}"
            else:
                try:
                    stale = dvc.pipeline_status(cfg.root)
                    lock_ok = not stale
                    if stale:
                        detail["lock_up_to_date"] = f"`dvc status` reports changes in {', '.join(sorted(stale)[:5])}"
                except MlopsError as exc:
                    detail["lock_up_to_date"] = exc.message
        if need_remote and mismatches is not None:
            if mismatches:
                detail["data_in_remote"] = (
                    "the version's data differs from the workspace's dvc.lock; check out its commit"
                )
            else:
                try:
                    missing = set(dvc.missing_in_remote(cfg.root, cfg.dvc_remote))
                    absent = [d.path for d in record.data if d.path in missing]
                    in_remote = not absent
                    if absent:
                        detail["data_in_remote"] = f"not pushed: {', '.join(absent[:5])} (run `dvc push`)"
                except MlopsError as exc:
                    detail["data_in_remote"] = exc.message
        return LineageStatus(base.committed, in_remote, lock_ok, detail)

    return probe


@contextlib.contextmanager
def _governance(cfg: Settings) -> Iterator[Any]:
    """The promotion flow wired to MLflow, the audit trail, the governance files and the signers file."""
    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.governance.approvals import default_verifier
    from mlops_layer.governance.cards import load_card
    from mlops_layer.governance.policy import load_policy
    from mlops_layer.governance.promotion import Governance, file_locks

    policy = load_policy(cfg.policy_file)
    registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
    with _governance_trail(cfg) as trail:
        yield Governance(
            registry=registry,
            trail=trail,
            policy=policy,
            load_card=lambda model: load_card(cfg.cards_dir, model),
            allowed_signers=cfg.allowed_signers,
            verifier=default_verifier(),
            locks=file_locks(cfg.state_dir),
            lineage_probe=_lineage_probe(cfg),
        )


def check(name: str, version: str, to: str, *, automatic: bool = False, settings: Settings | None = None) -> Any:
    """Evaluate the promotion policy for ``name`` v``version`` -> ``to`` without acting; returns a ``Decision``.

    ``automatic=True`` asks as the retraining loop would (the target must allow ``auto_promote``).
    """
    from mlops_layer.governance.policy import check_alias

    cfg = settings or load_settings()
    check_alias(to)
    with _governance(cfg) as gov:
        return gov.check(name, str(version), to, automatic=automatic)


def promote(name: str, version: str, to: str, *, automatic: bool = False, settings: Settings | None = None) -> Any:
    """Move alias ``to`` to ``version`` only if every rule passes; returns a ``PromotionResult``, never raises on no.

    The decision is audited first (allowed or refused, with every rule); the alias holder is re-read under a lock
    right before the move and a change since the evaluation refuses; then the registry moves and a completion entry
    is appended. Decision, approvers and policy hash are mirrored as MLflow version tags (that part may only warn).
    """
    from mlops_layer.governance.policy import check_alias

    cfg = settings or load_settings()
    check_alias(to)
    with _governance(cfg) as gov:
        _record_policy_change(gov.trail, gov.policy)
        with contextlib.suppress(MlopsError):  # an absent/invalid card is reported by the rules that need it
            _record_card_change(gov.trail, gov.load_card(name))
        return gov.promote(name, str(version), to, automatic=automatic)


def rollback(name: str, to: str, *, settings: Settings | None = None) -> Any:
    """Return alias ``to`` to the version that held it before its current holder (from the audit trail).

    The policy's ``rollback: {requires_approvals: N}`` decides whether signed rollback approvals are needed.
    Returns a ``PromotionResult`` (``decision.action == "rollback"``); audited like a promotion.
    """
    from mlops_layer.governance.policy import check_alias

    cfg = settings or load_settings()
    check_alias(to)
    with _governance(cfg) as gov:
        return gov.rollback(name, to)


def approve(
    name: str,
    version: str,
    to: str,
    *,
    key_path: Path | str,
    comment: str | None = None,
    reject: bool = False,
    principal: str | None = None,
    action: str = "promote",
    settings: Settings | None = None,
) -> Any:
    """Sign an approval (or, with ``reject=True``, a rejection) of ``name`` v``version`` for alias ``to``.

    The signer is whoever ``allowed_signers`` trusts the key for (never the actor name); their roles come from
    policy.yaml. The statement binds the version's content (run id, source, model id), so it cannot be replayed for
    another version or alias. Stored in the audit trail (APPROVAL_GRANTED/REJECTED, with the signature) and mirrored
    as the MLflow tag ``mlops.approvals.<alias>``. Returns the ``Approval`` (statement, signature, audit_seq).
    """
    from dataclasses import replace

    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.errors import ApprovalError
    from mlops_layer.governance.approvals import (
        NAMESPACE,
        check_approvals,
        default_signer,
        default_verifier,
        make_statement,
        sign_statement,
    )
    from mlops_layer.governance.identity import principal_for_key
    from mlops_layer.governance.policy import check_alias, load_policy
    from mlops_layer.governance.promotion import approvals_tag, approvals_tag_value, identity_of

    cfg = settings or load_settings()
    check_alias(to)
    policy = load_policy(cfg.policy_file)
    if policy.target(name, to) is None:
        raise InputError(
            f"policy.yaml has no target '{to}'", hint=f"targets: {', '.join(sorted(policy.targets)) or 'none'}"
        )
    key = Path(key_path).expanduser()
    signer_principal = principal_for_key(cfg.allowed_signers, key, NAMESPACE, principal)
    roles = policy.roles_of(signer_principal)
    if not roles:
        raise ApprovalError(
            f"{signer_principal} holds no role in {cfg.policy_file}",
            hint="roles are assigned under 'roles:' in policy.yaml (reviewed in git)",
        )
    registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
    info = registry.get_version(name, str(version))
    identity = identity_of(info)
    with _governance_trail(cfg) as trail:
        registrant = trail.registered_by(name, identity.version) or info.tags.get("mlops.registered_by")
        trainer = info.tags.get("mlops.trained_by")
        for who, did in ((registrant, "registered"), (trainer, "trained")):
            if action == "promote" and who and who.lower() == signer_principal.lower():
                raise ApprovalError(
                    f"{signer_principal} {did} {name} v{identity.version}: separation of duties forbids approving it",
                    hint="ask another holder of the approver roles",
                )
        statement = make_statement(
            identity, to, signer_principal, decision="reject" if reject else "approve", action=action, comment=comment
        )
        signed = sign_statement(statement, key, default_signer())
        verified = check_approvals(
            [signed], identity, to, action, cfg.allowed_signers, default_verifier(), policy.roles_of
        )[0]
        if not verified.valid:
            raise ApprovalError(f"the new approval does not verify: {verified.reason}")
        seq = trail.record_approval(signed)
        standing = check_approvals(
            [a for a in trail.approvals(name, identity.version, to) if a.statement.action == action],
            identity,
            to,
            action,
            cfg.allowed_signers,
            default_verifier(),
            policy.roles_of,
        )
    latest: dict[str, str] = {}
    for c in sorted((c for c in standing if c.valid and c.principal), key=lambda c: c.time):
        latest[str(c.principal)] = c.decision
    _mirror_governance_tags(registry, name, identity.version, {approvals_tag(to): approvals_tag_value(latest)})
    return replace(signed, audit_seq=seq)


def _mirror_governance_tags(registry: Any, name: str, version: str, tags: dict[str, str]) -> None:
    import warnings

    try:
        registry.set_version_tags(name, version, tags)
    except MlopsError as exc:
        warnings.warn(f"could not mirror governance tags onto {name} v{version}: {exc}", stacklevel=3)


# ---------------------------------------------------------------------------------------------------------------
# drift  (owner: drift)
# ---------------------------------------------------------------------------------------------------------------

TAG_DRIFT_STATUS = "mlops.drift.status"  # passed | drift | schema
TAG_DRIFT_CHECKED_AT = "mlops.drift.checked_at"
TAG_DRIFT_SHARE = "mlops.drift.share"
TAG_DRIFT_RUN = "mlops.drift.run_id"
TAG_DRIFT_AUDIT_SEQ = "mlops.drift.audit_seq"
DRIFT_RESULT_ARTIFACT = "mlops/drift_result.json"


def drift_config(model: str | None = None, *, settings: Settings | None = None) -> Any:
    """The drift settings of the project: the ``drift:`` section of governance/policy.yaml (defaults when absent).

    ``models: {NAME: {...}}`` inside it overrides settings per model. Returns a
    :class:`mlops_layer.drift.config.DriftConfig`.
    """
    from mlops_layer.drift.config import DriftConfig

    cfg = settings or load_settings()
    path = cfg.policy_file
    if not path.is_file():
        return DriftConfig()
    from mlops_layer.governance.located_yaml import Located, parse_located

    root = parse_located(path.read_bytes(), path.name)
    section = root.value.get("drift") if isinstance(root.value, dict) else None
    if section is None:
        return DriftConfig()
    try:
        return DriftConfig.from_dict(section.plain(), model=model, source="drift")
    except ConfigError as exc:
        # point at the line: the message starts with the dotted field path, e.g. drift.thresholds.psi
        lines: dict[str, int] = {}

        def walk(node: Located) -> None:
            lines[node.field] = node.line
            if isinstance(node.value, dict):
                children = list(node.value.values())
            else:
                children = node.value if isinstance(node.value, list) else []
            for child in children:
                walk(child)

        walk(section)
        field = exc.message.split(":", 1)[0]
        while field and field not in lines:
            field = field.rpartition(".")[0]
        line = lines.get(field, section.line)
        raise ConfigError(f"{path.name}:{line}: {exc.message}", hint=exc.hint) from None


def profile_for_training(
    df: Any,
    *,
    columns: list[str] | None = None,
    exclude: list[str] | None = None,
    data_hash: str | None = None,
    predictions: Any = None,
    prediction_column: str = "prediction",
) -> dict[str, Any]:
    """The reference profile of training features as a JSON-able dict (log it as ``mlops/reference_profile.json``).

    ``predictions`` (the model's predictions on ``df``) are profiled as ``prediction_column`` so later checks can
    compare the prediction distribution too.
    """
    from mlops_layer.drift.profile import build_profile

    frame = df
    if predictions is not None:
        frame = df.assign(
            **{prediction_column: list(predictions) if not hasattr(predictions, "shape") else predictions}
        )
    return build_profile(frame, columns=columns, exclude=exclude, data_hash=data_hash, source="training").to_dict()


def _model_reference(registry: Any, name: str, ref: str | None) -> tuple[Any, Any]:
    """(version info, reference profile) of a registered version; a clear NotFoundError when it has none."""
    from mlops_layer.drift.profile import ReferenceProfile
    from mlops_layer.lineage import PROFILE_ARTIFACT

    info = registry.resolve(name, ref)
    hint = (
        f"re-run the train stage (`dvc repro`), which logs {PROFILE_ARTIFACT}, and register the new version; "
        f"or compare against the training data file: `mlops drift {name}/{info.version} --current FILE "
        "--reference TRAINING_DATA.csv`"
    )
    data = registry.load_json_artifact(info.run_id, PROFILE_ARTIFACT) if info.run_id else None
    if data is None:
        raise NotFoundError(
            f"{name} v{info.version} has no drift reference profile "
            f"({'its run ' + info.run_id if info.run_id else 'it has no run'} has no artifact {PROFILE_ARTIFACT}; "
            "it was probably logged before drift profiles existed)",
            hint=hint,
        )
    return info, ReferenceProfile.from_dict(data)


def reference_profile(name_ref: str, *, settings: Settings | None = None) -> Any:
    """The reference profile logged with a model version (``NAME@ALIAS``, ``NAME/VERSION``; bare ``NAME`` = newest)."""
    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.lineage import parse_model_ref

    cfg = settings or load_settings()
    name, ref = parse_model_ref(name_ref)
    _, profile = _model_reference(MlflowRegistry(cfg.tracking_uri, cfg.registry_uri), name, ref)
    return profile


def _metric_key(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)[:250]


def _log_drift_run(cfg: Settings, result: Any, name: str, version: str, report: Path | None) -> str:
    """Mirror a model check to MLflow: a run under ``<experiment>-drift`` with per-column metrics and the report."""
    from mlops_layer.adapters.mlflow import MlflowTracking

    tracking = MlflowTracking(cfg.tracking_uri, cfg.registry_uri)
    experiment = tracking.ensure_experiment(f"{cfg.experiment}-drift", cfg.artifact_location)
    tags = {
        "mlops.drift.model": name,
        "mlops.drift.version": version,
        TAG_DRIFT_STATUS: result.status,
        "mlops.drift.reference": result.reference or "",
        "mlops.drift.current": result.current or "",
    }
    metrics: dict[str, float] = {
        "drift_share": float(result.share),
        "drift_detected": 1.0 if result.drift else 0.0,
        "schema_problems": float(len(result.schema_problems)),
        "n_current": float(result.n_current),
    }
    for col in (*result.columns, *([result.prediction] if result.prediction else [])):
        if col.score is not None:
            metrics[_metric_key(f"{col.name}.{col.method}")] = float(col.score)
            metrics[_metric_key(f"{col.name}.drifted")] = 1.0 if col.drifted else 0.0
    with tracking.run(experiment, f"drift {name} v{version}", tags) as run_id:
        tracking.log_metrics(metrics)
        tracking.log_dict(result.to_dict(), DRIFT_RESULT_ARTIFACT)
        if report is not None and report.is_file():
            tracking.log_artifact(report, "mlops")
    return run_id


def drift_check(
    name_ref: str | None,
    current: Path | str | Any,
    *,
    reference: Path | str | Any | None = None,
    columns: list[str] | None = None,
    exclude: list[str] | None = None,
    report: Path | str | None = None,
    prediction_column: str | None = None,
    settings: Settings | None = None,
    config: Any = None,
    log: bool = True,
    progress: Any = None,
) -> Any:
    """Check a batch for drift; returns a :class:`mlops_layer.drift.result.DriftResult` (``passed`` says go/no-go).

    - Model mode: ``name_ref`` = ``NAME@ALIAS`` / ``NAME/VERSION`` (bare ``NAME`` = newest version) and no
      ``reference``: the version's profile (run artifact ``mlops/reference_profile.json``) is the reference.
    - Ad hoc mode: ``reference`` (a CSV/Parquet path, a DataFrame or a ReferenceProfile) is profiled on the fly;
      needs no MLflow when ``name_ref`` is None. With a ``name_ref`` too, the result is recorded for that version.
    ``current`` is a CSV/Parquet path or a DataFrame. ``config`` is a DriftConfig or a plain mapping (default: the
    ``drift:`` section of policy.yaml). With ``log`` (and a model), the result is mirrored to MLflow (a run under
    ``<experiment>-drift``, tags ``mlops.drift.status``/``mlops.drift.checked_at`` on the version) and appended to
    the audit trail as ``drift.checked``; an audit failure stops the check, an MLflow failure only warns.
    ``report`` writes Evidently's HTML report configured with the same methods and thresholds.
    ``progress(message, done, total)`` is called as the work goes on (``total`` None: a phase without a count).
    """
    from datetime import datetime, timezone

    from mlops_layer.drift import gate
    from mlops_layer.drift.config import DriftConfig
    from mlops_layer.drift.io import file_digest, read_table
    from mlops_layer.drift.profile import ReferenceProfile, build_profile
    from mlops_layer.lineage import parse_model_ref

    if name_ref is None and reference is None:
        raise InputError(
            "name a model version or give a reference file",
            hint="mlops drift NAME@ALIAS --current FILE, or mlops drift --reference TRAIN.csv --current FILE",
        )
    cfg = settings or load_settings()
    name, ref = parse_model_ref(name_ref) if name_ref else (None, None)
    if config is None:
        drift_cfg = drift_config(name, settings=cfg)
    elif isinstance(config, DriftConfig):
        drift_cfg = config
    else:
        drift_cfg = DriftConfig.from_dict(config, model=name)
    drift_cfg = drift_cfg.with_columns(tuple(columns) if columns else None, tuple(exclude or ()))
    if prediction_column:
        drift_cfg = dataclasses.replace(drift_cfg, prediction_column=prediction_column)
    say = progress or (lambda _m, _d, _t: None)

    say("reading the batch", None, None)
    if isinstance(current, (str, Path)):
        frame = read_table(current, what="batch")
        current_desc = f"{Path(current).name} {file_digest(current)}"
    else:
        frame = current
        current_desc = "in-memory frame"
    if len(frame) == 0:
        raise InputError("the batch has no rows", hint="an empty batch cannot be checked for drift")

    registry: Any = None
    info: Any = None
    ref_frame: Any = None
    if reference is not None:
        if isinstance(reference, ReferenceProfile):
            profile = reference
        else:
            say("profiling the reference", None, None)
            if isinstance(reference, (str, Path)):
                ref_frame = read_table(reference, what="reference")
                digest = file_digest(reference)
                source = f"{Path(reference).name} {digest}"
            else:
                ref_frame, digest, source = reference, None, "in-memory frame"
            wanted = None
            if drift_cfg.include:
                wanted = [c for c in ref_frame.columns if c in drift_cfg.include or c == drift_cfg.prediction_column]
            profile = build_profile(
                ref_frame, columns=wanted, exclude=drift_cfg.exclude, data_hash=digest, source=source
            )
        reference_desc = profile.source or "given profile"
    if name is not None:
        from mlops_layer.adapters.mlflow import MlflowRegistry

        registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
        if reference is None:
            say("loading the reference profile", None, None)
            info, profile = _model_reference(registry, name, ref)
            reference_desc = f"{name} v{info.version} profile" + (
                f" ({profile.data_hash})" if profile.data_hash else ""
            )
        else:
            info = registry.resolve(name, ref)

    notes: list[str] = []
    pred_col = drift_cfg.prediction_column
    if pred_col and pred_col not in frame.columns:
        # A plain batch carries features only; `mlops monitor` scores it with the model and compares predictions.
        drift_cfg = dataclasses.replace(drift_cfg, prediction_column=None).with_columns(None, (pred_col,))
        notes.append(f"prediction drift not checked: the batch has no {pred_col!r} column (`mlops monitor` scores it)")
    result = gate.check(profile, frame, drift_cfg, progress=lambda d, t, c: say(f"checking {c}", d, t))
    checked_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = dataclasses.replace(
        result,
        warnings=(*result.warnings, *notes),
        model=name,
        version=info.version if info is not None else None,
        reference=reference_desc,
        current=current_desc,
        checked_at=checked_at,
    )
    warnings: list[str] = []
    report_path = Path(report) if report is not None else None
    if report_path is not None:
        from mlops_layer.adapters.evidently_report import write_report

        say("building the Evidently report", None, None)
        written = write_report(
            report_path,
            profile,
            frame,
            result,
            reference=ref_frame,
            drift_share=drift_cfg.drift_share,
            step=lambda m: say(m, None, None),
        )
        # small batches: the gate also needs a significant test, the report shows effect sizes only
        for col in result.columns if not result.significance_tested else ():
            if col.name in written.drifted and written.drifted[col.name] != col.drifted:
                warnings.append(
                    f"{col.name}: the report's sample says {'drift' if written.drifted[col.name] else 'no drift'} "
                    f"({written.methods[col.name]} {written.scores[col.name]:.4g}); the gate, on every row, "
                    f"{'drift' if col.drifted else 'no drift'} ({col.method} {col.score:.4g})"
                )
        result = dataclasses.replace(result, report=str(written.path), report_scores=dict(written.scores))

    if log and name is not None and info is not None:
        from mlops_layer.audit import actions

        say("recording the result", None, None)
        run_id: str | None = None
        try:
            run_id = _log_drift_run(cfg, result, name, info.version, report_path)
        except MlopsError as exc:
            warnings.append(f"could not log the drift check to MLflow: {exc}")
        drifted = [c.name for c in result.columns if c.drifted]
        with _audit_store(cfg) as trail:
            entry = trail.append(
                actions.DRIFT_CHECKED,
                actor=cfg.actor,
                subject={"model": name, "version": info.version},
                run_id=run_id,
                decision="passed" if result.passed else "failed",
                reasons=list(result.schema_problems) + ([result.summary()] if result.drift else []),
                details={
                    "passed": result.passed,
                    "status": result.status,
                    "summary": result.summary(),
                    "drift": result.drift,
                    "share": round(result.share, 6),
                    "drift_share": result.drift_share,
                    "drifted_columns": drifted,
                    "schema_problems": list(result.schema_problems)[:50],
                    "prediction_drifted": result.prediction.drifted if result.prediction is not None else None,
                    "n_current": result.n_current,
                    "n_reference": result.n_reference,
                    "reference": result.reference,
                    "current": result.current,
                    "checked_at": checked_at,
                    "model_run_id": info.run_id,
                    "config": drift_cfg.to_dict(),
                },
            )
        result = dataclasses.replace(result, mlflow_run_id=run_id, audit_seq=entry.seq)
        tags = {
            TAG_DRIFT_STATUS: result.status,
            TAG_DRIFT_CHECKED_AT: checked_at,
            TAG_DRIFT_SHARE: f"{result.share:.4f}",
            TAG_DRIFT_AUDIT_SEQ: entry.seq,
        }
        if run_id:
            tags[TAG_DRIFT_RUN] = run_id
        try:
            registry.set_version_tags(name, info.version, tags)
        except MlopsError as exc:
            warnings.append(f"could not tag {name} v{info.version} with the drift status: {exc}")
    if warnings:
        result = dataclasses.replace(result, warnings=tuple(warnings))
    return result


# ---------------------------------------------------------------------------------------------------------------
# monitoring, alerts, retraining  (owner: monitoring)
# ---------------------------------------------------------------------------------------------------------------


class _MonitoringTrail:
    """The audit trail as the monitoring flow's port: every entry by the acting user."""

    def __init__(self, store: Any, actor: str) -> None:
        self.store = store
        self.actor = actor

    def append(
        self,
        action: str,
        *,
        subject: Any,
        run_id: str | None = None,
        decision: str | None = None,
        details: Any = None,
    ) -> int:
        entry = self.store.append(
            action, actor=self.actor, subject=dict(subject), run_id=run_id, decision=decision, details=details
        )
        return int(entry.seq)


class _MonitoringTracking:
    """Each batch as a point in time: one MLflow run per serving version in experiment ``monitoring/<model>``,
    metrics logged with step = batch number and the batch's timestamp, so the MLflow UI charts them."""

    def __init__(self, cfg: Settings, model: str, experiment: str) -> None:
        from mlops_layer.adapters.mlflow import MlflowRegistry, MlflowTracking

        self.cfg = cfg
        self.model = model
        self.experiment = experiment
        self.tracking = MlflowTracking(cfg.tracking_uri, cfg.registry_uri)
        self.registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)

    def log_batch(
        self,
        *,
        version: str,
        run_id: str | None,
        seq: int,
        timestamp: Any,
        metrics: Any,
        summary: Any,
        promoted: Any,
    ) -> tuple[str, str]:
        from mlops_layer.errors import BackendError

        experiment_id = self.tracking.ensure_experiment(self.experiment, self.cfg.artifact_location)
        tags = {"mlops.monitoring.model": self.model, "mlops.monitoring.version": version}
        if run_id is not None:
            try:
                return self._log(experiment_id, run_id, version, tags, seq, timestamp, metrics, summary, promoted)
            except BackendError:
                run_id = None  # the remembered run is gone (store reset): start a new one
        return self._log(experiment_id, None, version, tags, seq, timestamp, metrics, summary, promoted)

    def _log(
        self,
        experiment_id: str,
        run_id: str | None,
        version: str,
        tags: dict[str, str],
        seq: int,
        timestamp: Any,
        metrics: Any,
        summary: Any,
        promoted: Any,
    ) -> tuple[str, str]:
        with self.tracking.run(experiment_id, f"{self.model} v{version}", tags, run_id=run_id) as rid:
            if run_id is None and promoted:
                self.tracking.log_params({f"promoted.{k}": v for k, v in promoted.items()})
            self.tracking.log_metrics(metrics, step=seq, timestamp_ms=int(timestamp.timestamp() * 1000))
            self.tracking.log_dict(summary, f"batches/{seq:06d}.json")
        return rid, self.registry.run_url(rid, experiment_id)

    def attach(self, run_id: str, path: Path, seq: int) -> None:
        with self.tracking.run("", None, {}, run_id=run_id):
            self.tracking.log_artifact(path, f"reports/batch-{seq:06d}")


class _ServingModel:
    """The serving version's model as the monitoring flow's port (a scikit-learn-like estimator)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        names = getattr(model, "feature_names_in_", None)
        self.feature_names: tuple[str, ...] | None = tuple(str(n) for n in names) if names is not None else None

    def predict(self, features: Any) -> Any:
        import numpy as np

        from mlops_layer.monitoring.monitor import Predictions

        try:
            if hasattr(self.model, "predict_proba"):
                proba = np.asarray(self.model.predict_proba(features))
                classes = np.asarray(self.model.classes_)
                return Predictions(classes[proba.argmax(axis=1)], proba, classes, "classifier")
            return Predictions(np.asarray(self.model.predict(features)), None, None, "regressor")
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"the model could not score the batch: {exc}",
                hint="a column holds values of another type than in training; check the batch's schema",
            ) from None


class _MonitorDrift:
    """The drift gate against the serving version's reference profile (the ``drift:`` section of the policy), and
    the Evidently report people open from an alert."""

    def __init__(self, cfg: Settings, registry: Any, info: Any, warnings: list[str]) -> None:
        self.profile: Any = None
        self.current: Any = None
        self.verdict: Any = None
        try:
            _, self.profile = _model_reference(registry, info.name, info.version)
        except NotFoundError as exc:
            warnings.append(f"drift was not checked: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            return
        self.config = drift_config(info.name, settings=cfg)
        pred_col = self.config.prediction_column
        if pred_col and pred_col not in self.profile.columns:
            warnings.append(f"the reference profile has no {pred_col!r} column: prediction drift was not checked")
            self.config = dataclasses.replace(self.config, prediction_column=None)

    def check(self, frame: Any, predictions: Any) -> Any:
        from mlops_layer.drift.gate import check

        if self.profile is None:
            return None
        pred_col = self.config.prediction_column
        columns = [c for c in frame.columns if str(c) in self.profile.columns and str(c) != pred_col]
        current = frame[columns]
        if pred_col:
            current = current.assign(**{pred_col: predictions})
        self.current = current
        self.verdict = check(self.profile, current, self.config)
        return self.verdict

    def report(self, path: Path) -> str:
        from mlops_layer.adapters.evidently_report import write_report

        written = write_report(path, self.profile, self.current, self.verdict, drift_share=self.config.drift_share)
        return str(written.path)


def monitor(
    name_at_alias: str,
    batch: Path | str,
    *,
    labels: str | None = None,
    report: Path | str | None = None,
    at: Any = None,
    rules: Any = None,
    notifications: Any = None,
    settings: Settings | None = None,
) -> Any:
    """Monitor one production batch of the version serving ``NAME@ALIAS`` (or ``NAME/VERSION``).

    Drift against the version's reference profile, the prediction distribution, and with ``labels`` (the column
    holding true outcomes) the metrics the version was promoted on; the batch is logged as a point in time in the
    MLflow experiment ``monitoring/<model>`` and audited (``monitor.batch``); the policy's alert rules run and the
    model card's stakeholders are notified when an alert fires or clears (``alert.fired``/``alert.cleared``; a
    failed delivery is ``notification.failed`` and waits in the outbox). ``at`` (a datetime) backdates the batch;
    ``rules`` (AlertRule list) and ``notifications`` (NotifierConfig) override the project's files.
    Returns a :class:`mlops_layer.monitoring.monitor.MonitorResult`.
    """
    import time
    from datetime import datetime, timezone

    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.drift.io import file_digest
    from mlops_layer.lineage import parse_model_ref
    from mlops_layer.monitoring import dispatch as notices
    from mlops_layer.monitoring.alerts import load_alert_rules
    from mlops_layer.monitoring.monitor import BatchInput, read_batch, run_batch
    from mlops_layer.monitoring.notifiers import deliver, dispatch, notice_payload
    from mlops_layer.monitoring.scoring import promoted_metrics
    from mlops_layer.monitoring.state import monitoring_dir

    cfg = settings or load_settings()
    name, ref = parse_model_ref(name_at_alias)
    if ref is None:
        raise InputError(f"{name_at_alias!r} names no serving version", hint="use NAME@ALIAS, e.g. churn@champion")
    alias = ref if "@" in name_at_alias else None
    when = at or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    alert_rules = list(rules) if rules is not None else load_alert_rules(cfg.policy_file)
    factory = notices.notifier_factory(cfg, notifications)
    path = Path(batch)
    started = time.perf_counter()
    frame = read_batch(path)
    digest = file_digest(path).removeprefix("sha256:")
    read_s = time.perf_counter() - started
    warnings: list[str] = []

    started = time.perf_counter()
    registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
    info = registry.resolve(name, ref)
    promoted = promoted_metrics(registry.get_run(info.run_id).metrics) if info.run_id else {}
    model = _ServingModel(_load_registered(cfg, info.name, info.version))
    drift = _MonitorDrift(cfg, registry, info, warnings)
    load_s = time.perf_counter() - started
    recipients = notices.stakeholders(cfg, info.name, warnings)
    outbox = notices.outbox(cfg)
    experiment = f"monitoring/{info.name}"
    report_dir = monitoring_dir(cfg.state_dir) / "reports" / info.name
    inp = BatchInput(
        model=info.name,
        alias=alias,
        version=info.version,
        batch_path=path.resolve(),
        frame=frame,
        labels=labels,
        promoted=promoted,
        experiment=experiment,
        timestamp=when,
        batch_sha256=digest,
    )
    with _audit_store(cfg) as store:
        result = run_batch(
            inp,
            model=model,
            drift=drift.check,
            report=(
                lambda seq: drift.report(Path(report) if report is not None else report_dir / f"batch-{seq:06d}.html")
            )
            if drift.profile is not None
            else None,
            report_always=report is not None,
            tracking=_MonitoringTracking(cfg, info.name, experiment),
            trail=_MonitoringTrail(store, cfg.actor),
            notify=lambda events: dispatch(events, recipients, factory, outbox),
            notify_rejected=lambda problems: deliver(
                notice_payload(
                    "batch.rejected",
                    f"{info.name} v{info.version}: production batch {path.name} refused (schema changed)",
                    {"model": info.name, "version": info.version, "batch": str(path), "problems": list(problems)},
                ),
                [r for r in recipients if r.wants_any("batch.rejected", "schema")],
                factory,
                outbox,
                reference=f"{info.name}:batch.rejected",
            ),
            rules=alert_rules,
            state_dir=cfg.state_dir,
        )
    result = dataclasses.replace(
        result,
        warnings=(*warnings, *result.warnings),
        timings={"read": read_s, "load_model": load_s, **result.timings},
    )
    return result


@dataclass(frozen=True)
class AlertStatus:
    """Where the alerts of one model stand: open alerts, each rule's last assessment, queued notifications."""

    model: str
    last_batch: int
    rules: tuple[dict[str, Any], ...]
    open_alerts: tuple[str, ...]
    queued_notifications: int
    runs: dict[str, str]


def alert_status(name: str, *, settings: Settings | None = None) -> AlertStatus:
    """The persisted alert state of ``name`` (no MLflow needed)."""
    from mlops_layer.monitoring.alerts import load_alert_rules
    from mlops_layer.monitoring.dispatch import outbox
    from mlops_layer.monitoring.state import load_state

    cfg = settings or load_settings()
    state = load_state(cfg.state_dir, name)
    configured = {r.name: r for r in load_alert_rules(cfg.policy_file) if r.applies_to(name)}
    rows = []
    for rule_name in sorted(set(configured) | set(state.rules)):
        st = state.rules.get(rule_name)
        rows.append(
            {
                "rule": rule_name,
                "configured": rule_name in configured,
                "status": st.status if st else "closed",
                "fired_seq": st.fired_seq if st else None,
                "fired_at": st.fired_at if st else None,
                "alert_id": st.alert_id if st else None,
                "suppressed": st.suppressed if st else 0,
                "last": st.last if st else None,
            }
        )
    queued = [e for e in outbox(cfg).entries() if str(e.get("alert_id", "")).startswith(f"{name}:")]
    return AlertStatus(
        model=name,
        last_batch=state.last_seq,
        rules=tuple(rows),
        open_alerts=tuple(state.open_alerts()),
        queued_notifications=len(queued),
        runs=dict(state.runs),
    )


def flush_notifications(*, settings: Settings | None = None) -> Any:
    """Retry every queued (failed) notification; returns a FlushResult (delivered / still failed).

    Deliveries that fail again stay queued; nothing is audited twice (the first failure was).
    """
    from mlops_layer.monitoring import dispatch as notices

    cfg = settings or load_settings()
    return notices.outbox(cfg).flush(notices.notifier_factory(cfg).build)


# ---------------------------------------------------------------------------------------------------------------
# retraining  (owner: lead)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainResult:
    """What ``retrain`` did: why, on which data version, which challenger, and what the policy said."""

    model: str
    ran: bool
    reasons: tuple[str, ...]
    data_version: str | None = None
    version: str | None = None
    target: str | None = None
    promoted_to: tuple[str, ...] = ()
    decision: Any = None
    waiting_for_approval: bool = False
    notified: tuple[str, ...] = ()
    audit_seqs: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        decision = self.decision.to_dict() if hasattr(self.decision, "to_dict") else self.decision
        return {
            "model": self.model,
            "ran": self.ran,
            "reasons": list(self.reasons),
            "data_version": self.data_version,
            "version": self.version,
            "target": self.target,
            "promoted_to": list(self.promoted_to),
            "waiting_for_approval": self.waiting_for_approval,
            "decision": decision,
            "notified": list(self.notified),
            "audit_seqs": list(self.audit_seqs),
        }


def _last_trained(cfg: Settings, name: str) -> Any:
    from mlops_layer.audit import actions

    last = None
    with _audit_store(cfg) as trail:
        for entry in trail.entries(model=name, action=actions.MODEL_REGISTERED):
            last = entry.timestamp
    return last


def _open_alerts(cfg: Settings, name: str) -> list[str]:
    try:
        from mlops_layer.monitoring.state import load_state
    except ImportError:  # monitoring not installed in this build
        return []
    return list(load_state(cfg.state_dir, name).open_alerts())


def _targets_in_order(cfg: Settings, name: str, to: str) -> list[str]:
    """``to`` preceded by the aliases its promotion_order rules require it to have held (staging before champion)."""
    from mlops_layer.governance.policy import PromotionOrder, load_policy

    policy = load_policy(cfg.policy_file)
    chain = [to]
    while True:
        target = policy.targets.get(chain[0])
        before = [r.must_have_held for r in (target.rules if target else ()) if isinstance(r, PromotionOrder)]
        if not before or before[0] in chain:
            return chain
        chain.insert(0, before[0])


def _commit_new_data(cfg: Settings, batch: Path, data_dir: str) -> str:
    """Copy the labelled batch into the DVC-tracked folder, ``dvc add`` it and commit: a new data version."""
    import shutil
    from datetime import datetime, timezone

    from mlops_layer.adapters import dvc
    from mlops_layer.adapters.git import GitRepo
    from mlops_layer.retrain import check_new_batch

    folder = cfg.root / data_dir
    check_new_batch(batch, sorted(folder.glob("*.csv")))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    dest = folder / f"{batch.stem}-{stamp}{batch.suffix.lower()}"
    shutil.copy2(batch, dest)
    try:
        dvc.run_dvc(cfg.root, "add", "-q", data_dir)
    except MlopsError:
        dest.unlink(missing_ok=True)  # leave no half-added data behind
        raise
    refs = dvc.read_dvc_file(cfg.root / f"{data_dir}.dvc")
    repo = GitRepo(cfg.root)
    repo.repo.git.add(f"{data_dir}.dvc")
    repo.repo.git.commit("-q", "-m", f"retrain: new data version of {data_dir} ({dest.name})", "--", f"{data_dir}.dvc")
    if dvc.has_remote(cfg.root):
        dvc.push(cfg.root)
    return refs[0].md5 if refs else ""


def _notify_waiting(cfg: Settings, name: str, version: str, target: str, decision: Any) -> tuple[str, ...]:
    """Tell the card's stakeholders that a challenger waits for their approval (best effort, failures audited)."""
    from mlops_layer.governance.cards import load_card
    from mlops_layer.governance.policy import load_policy
    from mlops_layer.monitoring import dispatch

    reasons = [r.message for r in getattr(decision, "rules", ()) if not r.passed]
    try:
        wanted = set(load_card(cfg.cards_dir, name).approver_roles)
    except MlopsError:
        wanted = set()
    roles = load_policy(cfg.policy_file).roles
    approvers = sorted(p for p, held in roles.items() if wanted & set(held) and "@" in p)
    return tuple(
        dispatch.notify_stakeholders(
            cfg,
            name,
            kind="approval.requested",
            subject=f"{name} v{version} waits for approval to become @{target}",
            details={"model": name, "version": version, "target": target, "failing_rules": reasons},
            also=approvers,
        )
    )


def retrain(
    name: str,
    *,
    data: Path | str | None = None,
    if_needed: bool = False,
    to: str = "champion",
    data_dir: str = "data/raw",
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetrainResult:
    """Retrain ``name``: new labelled data becomes a DVC data version, ``dvc repro`` registers a challenger, and the
    challenger goes through the same policy (automatic where the policy allows it, else it waits for approvals and
    the approvers are told). Every step is audited; a failure leaves the current aliases untouched.
    """
    from datetime import datetime, timezone

    from mlops_layer.adapters import dvc
    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.audit import actions
    from mlops_layer.governance.cards import load_card
    from mlops_layer.locks import file_lock, lock_path
    from mlops_layer.retrain import retrain_need

    cfg = settings or load_settings()
    say = progress or (lambda _step: None)
    registry = MlflowRegistry(cfg.tracking_uri, cfg.registry_uri)
    try:
        cadence = load_card(cfg.cards_dir, name).retraining.cadence
    except NotFoundError:
        cadence = None
    need = retrain_need(
        open_alerts=_open_alerts(cfg, name),
        cadence=cadence,
        last_trained=_last_trained(cfg, name),
        now=datetime.now(timezone.utc),
    )
    reasons = need.reasons or (("new labelled data",) if data else ("requested",))
    if if_needed and not need.needed:
        return RetrainResult(model=name, ran=False, reasons=("not needed: no open alert and no cadence due",))
    batch = Path(data).resolve() if data is not None else None
    targets = _targets_in_order(cfg, name, to)
    seqs: list[int] = []
    with (
        file_lock(
            lock_path(cfg.state_dir, "retrain", name),
            timeout=0,
            what=f"retraining of {name!r}",
            hint="another `mlops retrain` of this model is running; wait for it and check `mlops status`",
        ),
        _audit_store(cfg) as trail,
    ):
        before = {v.version for v in registry.versions(name)} if registry.model_exists(name) else set()
        aliases_before = registry.get_aliases(name) if before else {}
        seqs.append(
            trail.append(
                actions.RETRAIN_STARTED,
                actor=cfg.actor,
                subject={"model": name},
                details={"reasons": list(reasons), "data": str(batch) if batch else None, "targets": targets},
            ).seq
        )
        step = "bringing in the new data"
        try:
            say(step)
            data_md5 = _commit_new_data(cfg, batch, data_dir) if batch else None
            step = "running the pipeline (dvc repro)"
            say(step)
            dvc.repro(cfg.root)
            if dvc.has_remote(cfg.root):
                step = "pushing the new data and outputs to the DVC remote"
                dvc.push(cfg.root)
            step = "finding the challenger"
            new = [v for v in registry.versions(name) if v.version not in before]
            if not new:
                raise BackendError(
                    f"`dvc repro` finished but registered no new version of {name}",
                    hint="does the pipeline's register stage depend on the changed data?",
                )
            challenger = new[-1].version
        except MlopsError as exc:
            seqs.append(
                trail.append(
                    actions.RETRAIN_FAILED,
                    actor=cfg.actor,
                    subject={"model": name},
                    details={"step": step, "error": str(exc), "aliases_unchanged": aliases_before},
                ).seq
            )
            raise type(exc)(f"retraining {name} failed while {step}: {exc.message}", hint=exc.hint) from exc
    promoted: list[str] = []
    decision = None
    for target in targets:
        say(f"sending v{challenger} through the policy to @{target}")
        result = promote(name, challenger, target, automatic=True, settings=cfg)
        decision = result.decision
        if not result.moved:
            break
        promoted.append(target)
    waiting = len(promoted) < len(targets)
    notified = _notify_waiting(cfg, name, challenger, targets[len(promoted)], decision) if waiting else ()
    with _audit_store(cfg) as trail:
        seqs.append(
            trail.append(
                actions.RETRAIN_COMPLETED,
                actor=cfg.actor,
                subject={"model": name, "version": challenger},
                details={
                    "reasons": list(reasons),
                    "data_md5": data_md5,
                    "promoted_to": promoted,
                    "waiting_for": None if not waiting else targets[len(promoted)],
                    "notified": list(notified),
                },
            ).seq
        )
    return RetrainResult(
        model=name,
        ran=True,
        reasons=tuple(reasons),
        data_version=data_md5,
        version=challenger,
        target=to,
        promoted_to=tuple(promoted),
        decision=decision,
        waiting_for_approval=waiting,
        notified=notified,
        audit_seqs=tuple(seqs),
    )
