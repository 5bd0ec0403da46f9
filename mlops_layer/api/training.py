"""Training and registration: init, governed runs with lineage, governed registration, lineage reports, model loading."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer import tags as tag_names
from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, NotFoundError
from mlops_layer.lineage import TAG_LINEAGE, Lineage

if TYPE_CHECKING:
    from mlops_layer.adapters.mlflow import MlflowRegistry, MlflowTracking, VersionInfo

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


class GovernedRun:
    """An open MLflow run whose lineage (git, params, environment, parent) was captured when it started."""

    def __init__(self, tracking: MlflowTracking, run_id: str, settings: Settings, lineage: Lineage) -> None:
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

    def log_model(
        self,
        model: Any,
        *,
        flavor: str | None = None,
        input_example: Any = None,
        pip_requirements: list[str] | None = None,
    ) -> str:
        """Log ``model`` under ``model`` with its MLflow flavor (scikit-learn, XGBoost, LightGBM, a
        ``mlflow.pyfunc.PythonModel``... detected unless ``flavor`` is given) and explicit pip requirements (no ~8 s
        inference); records the sha256 of every file it wrote. Returns the model URI."""
        from mlops_layer.api._trust import TAG_MODEL_DIGESTS

        uri = str(
            self.tracking.log_model(
                model, "model", flavor=flavor, pip_requirements=pip_requirements, input_example=input_example
            )
        )
        # the bytes as logged: registration refuses files that changed since, loads verify against them
        digests = _wiring.registry(self.settings).artifact_digests(uri)
        self.tracking.set_tags({TAG_MODEL_DIGESTS: json.dumps(digests, sort_keys=True, separators=(",", ":"))})
        return uri

    def log_reference_profile(
        self, frame: Any, *, predictions: Any = None, data_path: str | None = None, **kwargs: Any
    ) -> None:
        """Log the training data's drift reference profile (so drift checks never need the raw data again).

        ``predictions`` (the model's predictions on ``frame``) let later checks compare the prediction distribution;
        ``data_path`` names the DVC-tracked file the frame was read from: its md5 from dvc.lock links the profile to
        that exact data version.
        """
        from mlops_layer.adapters import dvc
        from mlops_layer.api.drift import drift_config, profile_for_training
        from mlops_layer.lineage import PROFILE_ARTIFACT

        data_hash = dvc.locked_md5(self.settings.root, data_path) if data_path else None
        kwargs.setdefault("prediction_column", drift_config(settings=self.settings).prediction_column or "prediction")
        profile = profile_for_training(frame, predictions=predictions, data_hash=data_hash, **kwargs)
        self.tracking.log_dict(profile, PROFILE_ARTIFACT)


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
    from mlops_layer.lineage import TAG_RUN, TAG_STAGE, TAG_TRAINED_BY, ParentRef, environment_info

    cfg = _wiring.resolve(settings, root)
    # Pipeline outputs are rewritten by the very run being recorded: they do not make the code dirty.
    git = GitRepo(cfg.root).info(exclude=("dvc.lock", *dvc.pipeline_outputs(cfg.root)))
    params = dvc.stage_params(cfg.root, stage)
    parent_ref = None
    if parent:
        from mlops_layer.lineage import parse_model_ref

        name, ref = parse_model_ref(parent)
        info = _wiring.registry(cfg).resolve(name, ref)
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
    tracking = _wiring.tracking(cfg)
    experiment_id = tracking.ensure_experiment(cfg.experiment, cfg.artifact_location)
    tags = {**lineage.to_tags(), TAG_STAGE: stage, TAG_TRAINED_BY: cfg.actor}
    with tracking.run(experiment_id, run_name or stage, tags) as run_id:
        tracking.set_tags({TAG_RUN: run_id})
        if cfg.signing_key is not None:
            from mlops_layer.api._trust import identity_proof

            tracking.set_tags({TAG_TRAINER_PROOF: json.dumps(identity_proof(cfg, "trainer", run_id=run_id))})
        if params:
            tracking.log_params(params)
        yield GovernedRun(tracking, run_id, cfg, lineage)


TAG_TRAINER_PROOF = "mlops.identity.trainer"


def log_run_metrics(run_id: str, metrics: dict[str, float], *, settings: Settings | None = None) -> None:
    """Add metrics (e.g. evaluation results) to an existing run."""
    tracking = _wiring.tracking(_wiring.resolve(settings))
    with tracking.run("", None, {}, run_id=run_id):
        tracking.log_metrics(metrics)


@dataclass(frozen=True)
class Registration:
    """A registered model version: the version, where it came from, and its audit entry.

    ``governed`` is False for a model logged outside a governed run (``lineage`` None): it has no lineage to show,
    and a ``lineage_clean`` rule refuses it.
    """

    model: str
    version: str
    run_id: str | None
    model_uri: str
    lineage: Lineage | None
    audit_seq: int | None
    governed: bool = True
    warnings: tuple[str, ...] = ()


def register(
    name: str,
    run_id: str | None = None,
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
    from mlops_layer.api._trust import digests_mismatch, run_digests
    from mlops_layer.audit import actions
    from mlops_layer.governance.cards import validate_model_name
    from mlops_layer.lineage import (
        LINEAGE_ARTIFACT,
        TAG_REGISTERED_BY,
        TAG_RUN,
        TAG_TRAINED_BY,
        DataVersion,
    )

    cfg = _wiring.resolve(settings, root)
    validate_model_name(name)
    if run_id is None and model_uri is None:
        raise InputError("name the run or the model to register", hint="give run_id, model_uri, or both")
    registry = _wiring.registry(cfg)
    if run_id is None and model_uri is not None:
        from mlops_layer.adapters.mlflow import logged_model_run

        run_id = logged_model_run(model_uri, cfg.tracking_uri, cfg.registry_uri)
    run = registry.get_run(run_id) if run_id else None
    if run is None or TAG_LINEAGE not in run.tags:
        return _register_ungoverned(cfg, registry, name, model_uri or f"runs:/{run_id}/model", run)
    assert run_id is not None
    lock = dvc.read_stage(cfg.root, stage)
    base = Lineage.from_dict(json.loads(run.tags[TAG_LINEAGE]))
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
    governed, trail_cm = _registration_trail(cfg)
    with trail_cm as trail:
        trail.append(
            actions.MODEL_REGISTER_STARTED,
            subject=subject,
            git_commit=lineage.git_commit,
            dvc_hashes=lineage.data_hashes,
            run_id=run_id,
            details={"model_uri": uri, "stage": stage},
        )
        tracking = _wiring.tracking(cfg)
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
        if governed:  # the file digests travel as the registrant's claim; the server records them with the rest
            claimed = json.dumps(digests, sort_keys=True, separators=(",", ":"))
            tags = {**tags, tag_names.CLAIMED_FILES: claimed} if len(claimed) <= 4000 else tags
        logged = run_digests(run.tags)
        if logged is not None and logged != digests:
            raise digests_mismatch(
                uri, sorted(p for p in set(logged) | set(digests) if logged.get(p) != digests.get(p))
            )
        # the metrics as they are now are what the rules will read, whatever is logged on the run later
        metrics = registry.run_metrics([run_id]).get(run_id, {})
        proofs: dict[str, Any] = {}
        if TAG_TRAINER_PROOF in run.tags:
            with contextlib.suppress(ValueError):
                proofs["trainer_proof"] = json.loads(run.tags[TAG_TRAINER_PROOF])
        if cfg.signing_key is not None:
            from mlops_layer.api._trust import identity_proof
            from mlops_layer.governance.candidates import content_digest

            proofs["registrant_proof"] = identity_proof(
                cfg, "registrant", model=name, run_id=run_id, digest=content_digest(digests)
            )
        version = registry.register(name, uri, run_id, tags)
        seq = trail.append(
            actions.MODEL_REGISTERED,
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
                "metrics": metrics,
                **proofs,
            },
        )
    seq = _registration_seq(registry, name, version.version, seq, governed)
    if cfg.git_tags and lineage.git_commit:
        from mlops_layer.api.lifecycle import tag_registration, warn_all

        warn_all(tag_registration(cfg, name, version.version, lineage.git_commit))
    return Registration(name, version.version, run_id, uri, lineage, seq)


class _RecordedByServer:
    """Stands in for the trail when the governing server records registrations itself (clients hold no DB URL)."""

    def append(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def _registration_trail(cfg: Settings) -> tuple[bool, contextlib.AbstractContextManager[Any]]:
    """(team mode with the governing server?, the trail a registration appends to): in team mode the server records
    the registration itself, as the authenticated user, so the client appends nothing."""
    governed = _wiring.governing_server(cfg) is not None
    return governed, contextlib.nullcontext(_RecordedByServer()) if governed else _wiring.acting_trail(cfg)


def _registration_seq(registry: MlflowRegistry, name: str, version: str, seq: int | None, governed: bool) -> int | None:
    """The audit seq of a registration: the one the server tagged (team mode), or ours, mirrored onto the version."""
    from mlops_layer.lineage import TAG_AUDIT_SEQ

    if governed:
        recorded = registry.get_version(name, version).tags.get(TAG_AUDIT_SEQ)
        return int(recorded) if recorded and recorded.isdigit() else None
    _wiring.mirror_tags(registry, name, version, {TAG_AUDIT_SEQ: seq})
    return seq


def _register_ungoverned(cfg: Settings, registry: MlflowRegistry, name: str, uri: str, run: Any) -> Registration:
    """Register a model the user logged with ``mlflow.<flavor>.log_model`` themselves: no lineage to copy, so the
    version says so (tag ``mlops.lineage.governed=false``, audit detail ``governed: false``)."""
    from mlops_layer.audit import actions
    from mlops_layer.lineage import TAG_REGISTERED_BY, TAG_RUN, TAG_TRAINED_BY
    from mlops_layer.tags import LINEAGE_GOVERNED

    run_id = run.run_id if run is not None else None
    why = (
        f"run {run_id} was not opened by a governed run" if run_id else f"{uri} was logged outside any run"
    ) + ": the version has no governed lineage (no commit, data hashes or params); a lineage_clean rule refuses it"
    governed, trail_cm = _registration_trail(cfg)
    with trail_cm as trail:
        trail.append(
            actions.MODEL_REGISTER_STARTED,
            subject={"model": name},
            run_id=run_id,
            details={"model_uri": uri, "governed": False},
        )
        digests = registry.artifact_digests(uri)  # before the registry moves: a failure here leaves nothing behind
        # frozen like a governed registration's: the rules read this snapshot, never the run's live metrics
        metrics = registry.run_metrics([run_id]).get(run_id, {}) if run_id else {}
        tags = {LINEAGE_GOVERNED: "false", TAG_REGISTERED_BY: cfg.actor}
        if run is not None:
            tags.update({TAG_RUN: run.run_id, TAG_TRAINED_BY: run.user or ""})
        version = registry.register(name, uri, run_id, tags)
        seq = trail.append(
            actions.MODEL_REGISTERED,
            subject={"model": name, "version": version.version},
            run_id=run_id,
            details={
                "model_uri": uri,
                "source": version.source,
                "governed": False,
                "artifacts": digests,
                "metrics": metrics,
            },
        )
    seq = _registration_seq(registry, name, version.version, seq, governed)
    return Registration(name, version.version, run_id, uri, None, seq, governed=False, warnings=(why,))


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


def _version_lineage(registry: MlflowRegistry, info: VersionInfo) -> Lineage:
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
    from mlops_layer.lineage import TAG_AUDIT_SEQ

    registry = _wiring.registry(_wiring.resolve(settings))
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
