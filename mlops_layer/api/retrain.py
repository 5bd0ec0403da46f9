"""Retraining through the facade: new labelled data becomes a DVC data version, the pipeline registers a challenger,
and the challenger goes through the same policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.api import _wiring
from mlops_layer.api.governance import promote
from mlops_layer.config import Settings
from mlops_layer.errors import BackendError, MlopsError, NotFoundError

if TYPE_CHECKING:
    from mlops_layer.adapters.git import GitRepo
    from mlops_layer.governance.decisions import Decision


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
    decision: Decision | None = None
    waiting_for_approval: bool = False
    notified: tuple[str, ...] = ()
    audit_seqs: tuple[int, ...] = ()
    commit: str | None = None  # the second commit: what `dvc repro` wrote
    committed: tuple[str, ...] = ()
    left_to_commit: tuple[str, ...] = ()  # with commit=False, or files the user had changed before
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        decision = self.decision.to_dict() if self.decision is not None else None
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
            "commit": self.commit,
            "committed": list(self.committed),
            "left_to_commit": list(self.left_to_commit),
            "warnings": list(self.warnings),
        }


def _last_trained(cfg: Settings, name: str) -> datetime | None:
    from mlops_layer.audit import actions

    last = None
    if (server := _wiring.governing_server(cfg)) is not None:  # team mode: the registrations are the server's
        for entry in server.audit_entries(model=name, action=actions.MODEL_REGISTERED, since=None, limit=None):
            last = entry.timestamp
        return last
    with _wiring.audit_store(cfg) as trail:
        for entry in trail.entries(model=name, action=actions.MODEL_REGISTERED):
            last = entry.timestamp
    return last


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
    GitRepo(cfg.root).commit_paths((f"{data_dir}.dvc",), f"retrain: new data version of {data_dir} ({dest.name})")
    if dvc.has_remote(cfg.root):
        dvc.push(cfg.root)
    return refs[0].md5 if refs else ""


def _notify_waiting(cfg: Settings, name: str, version: str, target: str, decision: Decision | None) -> tuple[str, ...]:
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
    commit: bool = True,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetrainResult:
    """Retrain ``name``: new labelled data becomes a DVC data version, ``dvc repro`` registers a challenger, and the
    challenger goes through the same policy (automatic where the policy allows it, else it waits for approvals and
    the approvers are told). Every step is audited; a failure leaves the current aliases untouched.

    The data pointer is committed before ``dvc repro`` (the challenger's lineage names a commit holding its data);
    what the pipeline then wrote (dvc.lock, metrics, outputs tracked by git) is committed in a second commit naming
    the retraining and the new version, before the policy runs. ``commit=False`` leaves those files and lists them
    in ``left_to_commit``; files the user had changed before the retraining are never committed for them.
    """
    from datetime import datetime, timezone

    from mlops_layer.adapters import dvc
    from mlops_layer.adapters.git import GitRepo
    from mlops_layer.audit import actions
    from mlops_layer.governance.cards import load_card
    from mlops_layer.governance.policy import load_policy
    from mlops_layer.locks import file_lock, lock_path
    from mlops_layer.monitoring.state import open_alerts
    from mlops_layer.retrain import commit_message, retrain_need

    cfg = _wiring.resolve(settings)
    say = progress or (lambda _step: None)
    registry = _wiring.registry(cfg)
    try:
        cadence = load_card(cfg.cards_dir, name).retraining.cadence
    except NotFoundError:
        cadence = None
    need = retrain_need(
        open_alerts=open_alerts(cfg.state_dir, name),
        cadence=cadence,
        last_trained=_last_trained(cfg, name),
        now=datetime.now(timezone.utc),
    )
    reasons = need.reasons or (("new labelled data",) if data else ("requested",))
    if if_needed and not need.needed:
        return RetrainResult(model=name, ran=False, reasons=("not needed: no open alert and no cadence due",))
    batch = Path(data).resolve() if data is not None else None
    targets = load_policy(cfg.policy_file).promotion_chain(name, to)
    seqs: list[int] = []
    with (
        file_lock(
            lock_path(cfg.state_dir, "retrain", name),
            timeout=0,
            what=f"retraining of {name!r}",
            hint="another `mlops retrain` of this model is running; wait for it and check `mlops status`",
        ),
        _wiring.evidence_trail(cfg) as trail,
    ):
        before = {v.version for v in registry.versions(name)} if registry.model_exists(name) else set()
        aliases_before = registry.get_aliases(name) if before else {}
        seqs.append(
            trail.append(
                actions.RETRAIN_STARTED,
                subject={"model": name},
                details={"reasons": list(reasons), "data": str(batch) if batch else None, "targets": targets},
            )
        )
        step = "bringing in the new data"
        try:
            say(step)
            data_md5 = _commit_new_data(cfg, batch, data_dir) if batch else None
            repo = GitRepo(cfg.root)
            before_repro = repo.worktree_changes()
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
                    subject={"model": name},
                    details={"step": step, "error": str(exc), "aliases_unchanged": aliases_before},
                )
            )
            raise type(exc)(f"retraining {name} failed while {step}: {exc.message}", hint=exc.hint) from exc
        say("committing what the pipeline wrote" if commit else "listing what the pipeline wrote")
        written = _commit_outputs(repo, before_repro, commit, commit_message(name, challenger, reasons, data_md5))
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
    with _wiring.evidence_trail(cfg) as trail:
        seqs.append(
            trail.append(
                actions.RETRAIN_COMPLETED,
                subject={"model": name, "version": challenger},
                details={
                    "reasons": list(reasons),
                    "data_md5": data_md5,
                    "promoted_to": promoted,
                    "waiting_for": None if not waiting else targets[len(promoted)],
                    "notified": list(notified),
                    "commit": written.commit,
                    "left_to_commit": list(written.left),
                },
            )
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
        commit=written.commit,
        committed=written.committed,
        left_to_commit=written.left,
        warnings=written.warnings,
    )


@dataclass(frozen=True)
class _Written:
    commit: str | None
    committed: tuple[str, ...]
    left: tuple[str, ...]
    warnings: tuple[str, ...]


def _commit_outputs(repo: GitRepo, before: dict[str, str], commit: bool, message: str) -> _Written:
    """Commit what `dvc repro` wrote (the second commit of a retraining); a git failure only warns."""
    from mlops_layer.retrain import pipeline_changes

    changes = pipeline_changes(before, repo.worktree_changes())
    notes = []
    if changes.already_dirty:
        notes.append(f"not committed, you had changed them before the retraining: {', '.join(changes.already_dirty)}")
    if commit and changes.written:
        try:
            sha = repo.commit_paths(changes.written, message)
            return _Written(sha, changes.written, changes.already_dirty, tuple(notes))
        except MlopsError as exc:
            notes.append(f"the pipeline's outputs were not committed: {exc.message}")
    return _Written(None, (), (*changes.written, *changes.already_dirty), tuple(notes))
