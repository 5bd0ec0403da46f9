"""Trust roots wired to real tools: committed governance (git), bound model bytes (MLflow), anchored trail (signed
checkpoints). The api modules call these; the decisions themselves live in the core (governance/, audit/).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlops_layer.config import CONFIG_FILE, DEFAULT_GOVERNANCE_DIR, Settings, read_config_file
from mlops_layer.errors import AuditIntegrityError, ConfigError, InputError, MlopsError

# Keys of mlops.yaml that decide who and what is trusted: read from the commit, never from the working copy.
SECURITY_KEYS = ("governance_dir", "governance_ref", "allowed_signers", "checkpoint_file", "audit")
TAG_MODEL_DIGESTS = "mlops.model.digests"


# -- governance from git -----------------------------------------------------------------------------------------
def committed_settings(cfg: Settings) -> tuple[Settings, tuple[str, ...]]:
    """``cfg`` with its security-relevant keys taken from the committed mlops.yaml (at HEAD), and any warnings."""
    from mlops_layer.adapters.git import GitCommits

    reader = GitCommits(cfg.root)
    if not reader.is_repo():
        raise ConfigError(
            f"{cfg.root} is not a git repository: governance (policy, cards, allowed_signers) is read from a commit",
            hint="git init, then commit governance/ and mlops.yaml",
        )
    commit = reader.resolve("HEAD")
    committed: dict[str, Any] = {}
    if commit is not None:
        found = reader.read(commit, cfg.root / CONFIG_FILE)
        if found.data is not None:
            with tempfile.TemporaryDirectory(prefix="mlops-cfg-") as tmp:
                (Path(tmp) / CONFIG_FILE).write_bytes(found.data)
                committed = read_config_file(Path(tmp))
    working = read_config_file(cfg.root)
    differs = sorted(k for k in SECURITY_KEYS if working.get(k) != committed.get(k))
    warnings: tuple[str, ...] = ()
    if differs:
        warnings = (
            f"uncommitted {CONFIG_FILE} setting(s) {', '.join(differs)} are ignored: the committed values count",
        )
    root = cfg.root
    gov_dir = (root / str(committed.get("governance_dir") or DEFAULT_GOVERNANCE_DIR)).resolve()
    signers = committed.get("allowed_signers")
    cp_file = committed.get("checkpoint_file")
    audit = committed.get("audit") or {}
    limit = audit.get("max_unanchored") if isinstance(audit, dict) else None
    if limit is None and isinstance(audit, dict) and audit.get("checkpoint_key"):
        limit = 0  # with a key, every append is anchored at once: nothing may follow the newest checkpoint
    out = replace(
        cfg,
        governance_dir=gov_dir,
        allowed_signers=(root / str(signers)).resolve() if signers else gov_dir / "allowed_signers",
        checkpoint_file=(root / str(cp_file)).resolve() if cp_file else gov_dir / "audit-checkpoints.jsonl",
        governance_ref=str(committed.get("governance_ref") or "HEAD"),
        max_unanchored=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
    )
    return out, warnings


def governance_files(cfg: Settings) -> Any:
    """The committed governance of the project (``governance.source.GovernanceFiles``), with warnings."""
    from mlops_layer.adapters.git import GitCommits
    from mlops_layer.governance.source import load_governance

    safe, warnings = committed_settings(cfg)
    files = load_governance(
        GitCommits(cfg.root),
        policy_file=safe.policy_file,
        cards_dir=safe.cards_dir,
        allowed_signers=safe.allowed_signers,
        ref=safe.governance_ref,
        state_dir=cfg.state_dir,
        also_watch=(cfg.root / CONFIG_FILE,),
    )
    files.warnings = (*warnings, *files.warnings)
    return files


def committed_datasets(cfg: Settings, files: Any) -> tuple[Callable[[str], str], tuple[str, ...]]:
    """For the drift gate: (DVC path -> md5 DVC records for it at the governance commit, warnings naming datasets
    the policy names whose working-copy DVC record differs: that edit counts for nothing)."""
    from mlops_layer.adapters import dvc
    from mlops_layer.adapters.git import GitCommits

    md5 = dvc.dataset_md5_at(GitCommits(cfg.root), files.commit, files.ref, cfg.root)
    warnings = []
    for path in sorted(files.policy.drift_datasets()):
        try:
            here, there = dvc.tracked(cfg.root, path), md5(path)
        except MlopsError:
            continue  # not tracked at the commit: the gate says so when a rule it evaluates names the path
        if here is not None and here.md5 != there:
            warnings.append(_uncommitted_dvc(path, here.md5, there, files.ref))
    return md5, tuple(warnings)


def _uncommitted_dvc(path: str, working: str, committed: str, ref: str) -> str:
    return (
        f"uncommitted DVC record of {path} is ignored (working copy md5 {working}, committed at {ref} {committed}): "
        "the committed one counts"
    )


def dvc_evidence(cfg: Settings, current: Any) -> tuple[dict[str, str], tuple[str, ...]]:
    """(``dvc_path``/``dvc_md5`` details, warnings): the checked file as DVC records it *at the governance ref*.

    Recorded only when the file's bytes have the md5 that its ``.dvc`` file or dvc.lock records at that commit (the
    one the policy is read from), so a ``drift_passed`` rule naming that DVC path can count the check; an
    uncommitted edit of the ``.dvc`` file or dvc.lock counts for nothing."""
    from mlops_layer.adapters import dvc
    from mlops_layer.adapters.git import GitCommits

    if not isinstance(current, (str, Path)) or not Path(current).is_file():
        return {}, ()
    try:
        rel = Path(current).resolve().relative_to(cfg.root.resolve()).as_posix()
    except ValueError:
        return {}, ()
    working = dvc.tracked(cfg.root, rel)
    no_evidence = "this check is no evidence for a drift_passed rule naming that dataset"
    reader = GitCommits(cfg.root)
    if not reader.is_repo():
        if working is None:
            return {}, ()
        return {}, (
            f"{cfg.root} is not a git repository and the md5 DVC records for {rel} is read from a commit: "
            f"{no_evidence}",
        )
    ref = committed_settings(cfg)[0].governance_ref
    commit = reader.resolve(ref)
    committed = dvc.committed_tracked(reader, commit, cfg.root, rel) if commit else None
    if committed is None:
        if working is None:
            return {}, ()
        return {}, (
            f"{rel} is tracked by DVC in the working copy only, not at {ref}: uncommitted DVC files count "
            f"for nothing, so {no_evidence}",
        )
    notes: tuple[str, ...] = ()
    if working is not None and working.md5 != committed.md5:
        notes = (_uncommitted_dvc(rel, working.md5, committed.md5, ref),)
    md5 = dvc.file_md5(Path(current))
    if md5 != committed.md5:
        return {}, (
            *notes,
            f"{rel} differs from what DVC records for it at {ref} (md5 {md5}, recorded {committed.md5}): {no_evidence}",
        )
    assert commit is not None
    return {"dvc_path": rel, "dvc_md5": md5, "dvc_commit": commit}, notes


def committed_signers(cfg: Settings, safe: Settings) -> tuple[Path | None, tuple[str, ...]]:
    """A private copy of ``allowed_signers`` as the governance ref holds it (None when it is not committed)."""
    from mlops_layer.adapters.git import GitCommits
    from mlops_layer.governance.source import materialize

    reader = GitCommits(cfg.root)
    commit = reader.resolve(safe.governance_ref)
    if commit is None:
        return None, (f"{safe.governance_ref!r} names no commit: checkpoint signatures cannot be checked",)
    found = reader.read(commit, safe.allowed_signers)
    if found.data is None or found.blob is None:
        return None, (f"{found.path} is not committed at {safe.governance_ref}: checkpoint signatures go unchecked",)
    notes: tuple[str, ...] = ()
    if reader.uncommitted([safe.allowed_signers]):
        notes = (f"uncommitted changes to {found.path} are ignored: the committed signers count",)
    return materialize(cfg.state_dir, found.blob, found.data), notes


# -- the trail, anchored -----------------------------------------------------------------------------------------
def open_store(cfg: Settings) -> Any:
    """The audit store; with ``audit.checkpoint_key``, closing it after an append signs a checkpoint."""
    from mlops_layer.audit.store import AuditStore

    store = AuditStore.open(cfg.audit_url)
    if cfg.checkpoint_key is not None:
        if not cfg.checkpoint_key.is_file():
            store.close()
            raise ConfigError(
                f"audit.checkpoint_key {cfg.checkpoint_key} does not exist",
                hint="point audit.checkpoint_key (mlops.yaml) or MLOPS_CHECKPOINT_KEY at a private key",
            )
        store.checkpoint_key = cfg.checkpoint_key
    return store


# -- bound model bytes -------------------------------------------------------------------------------------------
def recorded_digests(store: Any, model: str, version: str) -> dict[str, str] | None:
    """The digests the first registration of ``model`` v``version`` fixed, or a migration filled in (None: nothing
    recorded)."""
    from mlops_layer.audit import actions
    from mlops_layer.audit.registrations import registration_records

    entries = store.entries(model=model, action=[actions.MODEL_REGISTERED, actions.MODEL_SNAPSHOT])
    records = registration_records(entries)
    record = records.get((model, str(version)))
    return dict(record.artifacts) if record is not None and record.artifacts else None


def check_files(registry: Any, source: str, expected: Mapping[str, str]) -> list[str]:
    """The files of ``source`` whose sha256 differs from ``expected`` (added and missing files too)."""
    actual = registry.artifact_digests(source)
    return sorted(p for p in set(expected) | set(actual) if expected.get(p) != actual.get(p))


def run_digests(tags: Mapping[str, str]) -> dict[str, str] | None:
    raw = tags.get(TAG_MODEL_DIGESTS)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def unverified_load_refused(uri: str) -> InputError:
    return InputError(
        f"{uri} has no recorded sha256 digests: loading it would unpickle unverified bytes",
        hint="load a registered version (NAME/VERSION, NAME@ALIAS, models:/...), a governed run's runs:/ URI, "
        "or pass allow_unverified=True if you accept the risk",
    )


def digests_mismatch(uri: str, changed: list[str]) -> AuditIntegrityError:
    return AuditIntegrityError(
        f"the files of {uri} differ from the sha256 digests recorded when it was logged/registered: "
        f"{', '.join(changed[:8])}",
        hint="the artifact store was changed afterwards; restore it or train and register a new version",
    )


# -- verification beyond the chain -------------------------------------------------------------------------------
def committed_checkpoints(cfg: Settings, safe: Settings) -> tuple[Any, tuple[str, ...]]:
    """The checkpoint file as the governance ref holds it (the working copy's edits do not count), with warnings."""
    from mlops_layer.adapters.git import GitCommits
    from mlops_layer.audit.checkpoints import CheckpointFile, parse_checkpoint_lines

    reader = GitCommits(cfg.root)
    commit = reader.resolve(safe.governance_ref)
    path = safe.checkpoint_file
    if commit is None:
        return CheckpointFile(path, (), ()), ()
    found = reader.read(commit, path)
    warnings: tuple[str, ...] = ()
    if path.exists() and reader.uncommitted([path]):
        warnings = (
            f"uncommitted changes to {found.path} are ignored: the checkpoints committed at "
            f"{safe.governance_ref} count (commit new checkpoints to anchor with them)",
        )
    if found.data is None:
        return CheckpointFile(path, (), ()), warnings
    return parse_checkpoint_lines(found.data, path, f"{found.path}@{commit[:12]}"), warnings


def governance_problems(store: Any, cfg: Settings, safe: Settings) -> list[Any]:
    """Entries whose recorded governance blobs are not in the history of the governance ref (not committed there)."""
    from mlops_layer.adapters.git import GitCommits
    from mlops_layer.audit import actions
    from mlops_layer.audit.verify import Problem

    wanted: dict[int, dict[str, str]] = {}
    for e in store.entries(action=[actions.PROMOTION_DECIDED, actions.ROLLBACK_DECIDED]):
        gov = (e.details or {}).get("governance")
        if isinstance(gov, dict):
            blobs = {k: str(v) for k, v in gov.items() if k.endswith("_blob") and v}
            if blobs:
                wanted[e.seq] = blobs
    if not wanted:
        return []
    ref = safe.governance_ref
    reader = GitCommits(cfg.root)
    if reader.resolve(ref) is None:
        return [Problem("governance_unverifiable", f"{ref!r} names no commit: recorded governance cannot be checked")]
    reachable = reader.blobs_reachable(ref, {b for blobs in wanted.values() for b in blobs.values()})
    what = "reviewed (reachable from " + ref + ")" if ref != "HEAD" else "committed (reachable from HEAD)"
    problems = []
    for seq, blobs in sorted(wanted.items()):
        missing = [f"{k[:-5]} {v[:12]}" for k, v in sorted(blobs.items()) if v not in reachable]
        if missing:
            problems.append(
                Problem(
                    "governance_not_committed",
                    f"entry {seq}: decided under governance that was never {what}: {', '.join(missing)}",
                    seq=seq,
                )
            )
    return problems


def registration_problems(store: Any) -> list[Any]:
    from mlops_layer.audit import actions
    from mlops_layer.audit.registrations import conflicting_registrations
    from mlops_layer.audit.verify import Problem

    entries = store.entries(action=[actions.MODEL_REGISTERED, actions.MODEL_SNAPSHOT])
    return [Problem("registration_conflict", msg, seq=seq) for seq, msg in conflicting_registrations(entries)]


def read_expected_checkpoint(path: Path) -> Any:
    """The checkpoint an auditor kept (one JSON object, or the last line of a checkpoint file)."""
    from mlops_layer.audit.checkpoints import parse_checkpoint

    if not path.is_file():
        raise InputError(f"expected checkpoint file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        try:
            data = json.loads(text)  # `mlops audit checkpoint --json` output
        except ValueError:
            data = json.loads(lines[-1])  # the last line of a checkpoint file
        if isinstance(data, dict) and isinstance(data.get("checkpoint"), dict):
            data = data["checkpoint"]  # `mlops audit checkpoint --json` output
        return parse_checkpoint(data, f"expect:{path.name}")
    except (ValueError, IndexError, TypeError) as exc:
        raise InputError(
            f"{path} is not a checkpoint ({exc})",
            hint="keep the output of `mlops audit checkpoint --json` or a line of the checkpoint file",
        ) from None


def signers_of_their_time(cfg: Settings, safe: Settings) -> Callable[[Any], Path | None]:
    """For a checkpoint, the ``allowed_signers`` committed (on the governance ref) at the checkpoint's time: a key
    added later never vouches for an earlier checkpoint."""
    from mlops_layer.adapters.git import GitCommits
    from mlops_layer.governance.source import materialize

    reader = GitCommits(cfg.root)
    history = reader.file_history(safe.governance_ref, safe.allowed_signers)
    cache: dict[str, Path] = {}

    def at(checkpoint: Any) -> Path | None:
        moment = checkpoint.timestamp.timestamp()
        blob = None
        for when, found in history:
            if when <= moment + 1:  # commit times have one-second resolution
                blob = found
        if blob is None:
            return None
        if blob not in cache:
            data = reader.read_blob(blob)
            if data is None:
                return None
            cache[blob] = materialize(cfg.state_dir, blob, data)
        return cache[blob]

    return at


def identity_proof(cfg: Settings, role: str, **about: str | None) -> dict[str, Any]:
    """A statement of who trained/registered what, signed with ``signing_key`` as the principal the committed
    signers trust it for (namespace ``mlops-training`` / ``mlops-registration``)."""
    from mlops_layer.governance.identity import (
        REGISTRATION_NAMESPACE,
        TRAINING_NAMESPACE,
        identity_statement,
        principal_for_key,
        sign_identity,
    )

    assert cfg.signing_key is not None
    namespace = TRAINING_NAMESPACE if role == "trainer" else REGISTRATION_NAMESPACE
    principal = principal_for_key(governance_files(cfg).allowed_signers, cfg.signing_key, namespace)
    return sign_identity(identity_statement(role, principal, **about), cfg.signing_key, namespace)
