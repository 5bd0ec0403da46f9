"""Evidence bundles and period archives: gather one version's evidence into a signed zip; verify a bundle offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, MlopsError, NotFoundError


@dataclass(frozen=True)
class BundleExport:
    """A bundle written: where, what it covers, and what the auditor should know."""

    path: Path
    model: str
    version: str
    from_seq: int
    to_seq: int
    checkpoint_size: int
    about_version: int
    other_subjects: tuple[str, ...]
    members: int
    signer_key: str
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "model": self.model,
            "version": self.version,
            "segment": [self.from_seq, self.to_seq],
            "checkpoint_size": self.checkpoint_size,
            "entries_about_version": self.about_version,
            "other_subjects": list(self.other_subjects),
            "members": self.members,
            "signer_key": self.signer_key,
            "notes": list(self.notes),
        }


def _signing_key(cfg: Settings, key: Path | str | None) -> Path:
    from mlops_layer.adapters.git import signing_key_file

    path = Path(key).expanduser() if key is not None else signing_key_file(cfg.root)
    if path is None:
        raise InputError(
            "no key to sign the bundle's manifest",
            hint="pass --key PATH (the trail custodian's SSH or Ed25519 key), or set git config user.signingkey",
        )
    if not path.is_file():
        raise NotFoundError(f"signing key {path} does not exist", hint="pass --key PATH to a private key")
    return path


def _lineage(cfg: Settings, name: str, version: str, registration: Any, notes: list[str]) -> dict[str, Any]:
    """The version's lineage from the registry (with ancestry); from its registration entry when the registry fails."""
    from mlops_layer.api.training import lineage

    try:
        return {"source": "MLflow registry (mlops.lineage tag)", **lineage(name, version, settings=cfg).to_dict()}
    except MlopsError as exc:
        notes.append(f"lineage from the registration entry only: the registry said {exc.message}")
    if registration is None:
        return {"source": "none", "note": "no registration entry and no registry record"}
    return {
        "source": f"audit entry {registration.seq}",
        "git": {"commit": registration.git_commit},
        "data": [{"path": p, "md5": h} for p, h in sorted(registration.dvc_hashes.items())],
        "params": registration.details.get("params") or {},
        "run_id": registration.run_id,
    }


def _evaluation(cfg: Settings, run_id: str | None, notes: list[str]) -> dict[str, Any]:
    if not run_id:
        return {"note": "the version names no training run"}
    try:
        metrics = _wiring.registry(cfg).run_metrics([run_id]).get(run_id, {})
    except MlopsError as exc:
        notes.append(f"no evaluation metrics: {exc.message}")
        return {"run_id": run_id, "note": exc.message}
    return {
        "run_id": run_id,
        "metrics": dict(sorted(metrics.items())),
        "source": "the training run's metrics in MLflow at export time (the decisions record what the rules saw)",
    }


def _signers_at(cfg: Settings, entry: Any, notes: list[str]) -> Any:
    """``allowed_signers`` as of an entry: from the newest commit before it, else the file on disk (with a note)."""
    from mlops_layer.adapters.git import file_before
    from mlops_layer.audit.bundle import GovernanceFile

    when = entry.body.get("timestamp")
    found = file_before(cfg.root, cfg.allowed_signers, str(when)) if when else None
    if found is not None:
        return GovernanceFile("allowed_signers", found[1], f"git {found[0]} (newest commit before entry {entry.seq})")
    if cfg.allowed_signers.is_file():
        notes.append(f"{cfg.allowed_signers.name} is not in git: the current file stands for it at every decision")
        return GovernanceFile(
            "allowed_signers", cfg.allowed_signers.read_bytes(), "working tree at export time (not found in git)"
        )
    return None


def _governance(cfg: Settings, decision: Any, notes: list[str]) -> Any:
    """The policy, card and allowed_signers as of one decision: by blob hash from git, else the working tree."""
    from mlops_layer.adapters.git import read_blob
    from mlops_layer.audit.bundle import DecisionGovernance, GovernanceFile, git_blob_hash

    def by_hash(kind: str, recorded: Any, working: Path) -> GovernanceFile | None:
        if not recorded:
            return None
        data = read_blob(cfg.root, str(recorded))
        if data is not None:
            return GovernanceFile(kind, data, f"git blob {recorded}")
        if working.is_file() and git_blob_hash(working.read_bytes()) == recorded:
            return GovernanceFile(kind, working.read_bytes(), "working tree (the same content, not committed)")
        notes.append(f"decision {decision.seq}: the {kind} it used ({recorded}) is neither in git nor on disk")
        return None

    policy = by_hash("policy", decision.details.get("policy_hash"), cfg.policy_file)
    card = by_hash("card", decision.details.get("card_hash"), cfg.cards_dir / f"{decision.model}.yaml")
    signers = _signers_at(cfg, decision, notes)
    return DecisionGovernance(decision.seq, policy, card, signers)


def export_bundle(
    name: str,
    version: str,
    out: Path | str,
    *,
    key: Path | str | None = None,
    settings: Settings | None = None,
) -> BundleExport:
    """Write the evidence bundle of ``name`` v``version`` to ``out`` (a .zip), its manifest signed with ``key``.

    The chain segment runs from the first entry about the version to the smallest signed checkpoint covering every
    such entry; without one, InputError (make a checkpoint first: ``mlops audit checkpoint``).
    """
    from datetime import datetime, timezone

    from mlops_layer import signing
    from mlops_layer.audit import actions
    from mlops_layer.audit.bundle import BundleContent, covering_checkpoint, involved, write_bundle
    from mlops_layer.audit.checkpoints import merge, read_checkpoint_file, verify_signature
    from mlops_layer.audit.entry import AuditEntry

    cfg = _wiring.resolve(settings)
    if _wiring.governing_server(cfg) is not None:
        raise InputError(
            "an evidence bundle is cut from the trail and signed next to it: the governing server's trail is not here",
            hint="export the trail (`mlops audit export --format in-toto`), or cut the bundle on the server's host",
        )
    version = str(version)
    out_path = Path(out)
    if out_path.suffix.lower() != ".zip":
        raise InputError(f"--bundle {out_path} must end in .zip")
    key_path = _signing_key(cfg, key)
    notes: list[str] = []
    with _wiring.audit_store(cfg) as store:
        size, head = store.head()
        mine = involved(store.entries(model=name), name, version)
        if not mine:
            raise NotFoundError(
                f"the audit trail has no entries about {name} v{version}",
                hint="check the name and version (`mlops audit log --model NAME`)",
            )
        first, last = mine[0].seq, mine[-1].seq
        candidates = []
        for cp in merge(store.checkpoints(), read_checkpoint_file(cfg.checkpoint_file).checkpoints):
            try:
                verify_signature(cp, cfg.allowed_signers)
            except MlopsError:
                continue
            if cp.size <= size and store.get(cp.size).entry_hash == cp.head:
                candidates.append(cp)
        chosen = covering_checkpoint(candidates, last, size)
        if chosen is None:
            raise InputError(
                f"no valid signed checkpoint covers entry {last} (the last about {name} v{version})",
                hint="make one first: mlops audit checkpoint --key KEY --append-file",
            )
        segment = tuple(
            AuditEntry(s, ph.hex(), eh.hex(), bytes(b))
            for s, ph, eh, b in store.rows(after_seq=first - 1, upto_seq=chosen.size)
        )
    registration = next((e for e in mine if e.action == actions.MODEL_REGISTERED), None)
    decisions = [e for e in mine if e.action in actions.ALIAS_DECISIONS]
    content = BundleContent(
        model=name,
        version=version,
        segment=segment,
        checkpoint=chosen,
        lineage=_lineage(cfg, name, version, registration, notes),
        evaluation=_evaluation(cfg, registration.run_id if registration else None, notes),
        governance=tuple(_governance(cfg, d, notes) for d in decisions),
        approval_signers=tuple(
            (e.seq, _signers_at(cfg, e, notes))
            for e in mine
            if e.action in (actions.APPROVAL_GRANTED, actions.APPROVAL_REJECTED)
        ),
        trail_size=size,
        trail_head=head,
        exported_by=cfg.actor,
        notes=tuple(dict.fromkeys(notes)),
    )
    man = write_bundle(
        out_path,
        content,
        lambda data, namespace: signing.sign(data, key_path, namespace),
        datetime.now(timezone.utc),
    )
    seg = man["segment"]
    return BundleExport(
        path=out_path,
        model=name,
        version=version,
        from_seq=seg["from_seq"],
        to_seq=seg["to_seq"],
        checkpoint_size=chosen.size,
        about_version=len(seg["about_this_version"]),
        other_subjects=tuple(seg["other_subjects"]),
        members=len(man["members"]) + 2,
        signer_key=signing.fingerprint(signing.public_key(key_path)),
        notes=content.notes,
    )


def verify_bundle(path: Path | str, *, trust: tuple[str, ...] = (), allowed_signers: Path | str | None = None) -> Any:
    """Verify a bundle offline against the auditor's anchor; a ``BundleReport`` (``ok`` False lists the failures).

    Needs no settings, stores or network: only the zip and ``trust`` (key fingerprints) or ``allowed_signers``.
    """
    from mlops_layer.audit.bundle import TrustAnchor
    from mlops_layer.audit.bundle import verify_bundle as verify

    fingerprints = tuple(t if t.startswith("SHA256:") else f"SHA256:{t}" for t in trust)
    anchor = TrustAnchor(fingerprints, Path(allowed_signers) if allowed_signers is not None else None)
    return verify(Path(path), anchor)
