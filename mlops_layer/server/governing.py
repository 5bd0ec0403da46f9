"""What the governing server does, independent of HTTP: decide alias moves as the authenticated user, record
registrations and guarded changes, verify approvals, recover interrupted promotions.

One :class:`ServerGovernance` per worker process holds the long-lived pieces (audit store, registry client on the
backend store, promotion locks, governance source); every call builds a fresh trail view acting as the caller.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops_layer import tags
from mlops_layer.audit import actions
from mlops_layer.config import Settings
from mlops_layer.errors import ApprovalError, InputError, MlopsError
from mlops_layer.server import stores
from mlops_layer.server.config import ServerConfig
from mlops_layer.server.locks import LockFactory, promotion_locks
from mlops_layer.server.source import GovernanceSnapshot, GovernanceSource

SERVER_ACTOR = "mlops-server"
# tags only the server writes (from the authenticated requests); clients may not set them
SERVER_OWNED_TAGS = (tags.TRAINED_BY, tags.REGISTERED_BY, tags.TRAINED_VIA)


@dataclass(frozen=True)
class AliasMove:
    """The outcome of a guarded alias move: the promotion result and the governance commit it was judged under."""

    result: Any  # governance.ports.PromotionResult
    commit: str

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = self.result.to_dict()
        body["governance_commit"] = self.commit
        return body


def _no_lock(_model: str, _alias: str) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class ServerGovernance:
    """The long-lived governance state of one server worker."""

    def __init__(self, config: ServerConfig, backend_store_uri: str, registry_store_uri: str | None = None) -> None:
        from mlops_layer.adapters.mlflow import MlflowRegistry
        from mlops_layer.audit.store import AuditStore

        self.config = config
        self.backend_store_uri = backend_store_uri
        self.source = GovernanceSource(
            config.governance_repo,
            config.governance_ref,
            config.governance_dir,
            config.state_dir,
            fetch_seconds=config.fetch_seconds,
        )
        self.store = AuditStore.open(config.audit_url)
        self.registry = MlflowRegistry(backend_store_uri, registry_store_uri)
        self.locks: LockFactory = promotion_locks(config.audit_url, config.state_dir)
        self._policies: dict[str, Any] = {}
        self._guard = threading.Lock()
        self._backed_runs: set[str] = set()

    # -- wiring ----------------------------------------------------------------------------------------------------
    def snapshot(self) -> GovernanceSnapshot:
        return self.source.snapshot()

    def settings(self, user: str, snap: GovernanceSnapshot | None = None) -> Settings:
        """Settings as the api expects them, pointing at the server's stores and the snapshot's files."""
        snap = snap or self.snapshot()
        return Settings(
            root=snap.root,
            tracking_uri=self.backend_store_uri,
            registry_uri=self.registry.registry_uri,
            artifact_location="",
            audit_url=self.config.audit_url,
            experiment="mlops-layer",
            governance_dir=snap.governance_dir,
            allowed_signers=snap.allowed_signers,
            checkpoint_file=self.config.state_dir / "audit-checkpoints.jsonl",
            dvc_remote=None,
            actor=self.principal(user, snap),
        )

    def principal(self, user: str, snap: GovernanceSnapshot | None = None) -> str:
        """The principal an MLflow login acts as under the committed policy (``principals:``; unmapped: itself)."""
        return str(self.policy(snap or self.snapshot()).principals.principal_of(user))

    def policy(self, snap: GovernanceSnapshot) -> Any:
        from mlops_layer.governance.policy import load_policy

        with self._guard:
            if snap.commit not in self._policies:
                self._policies[snap.commit] = load_policy(snap.policy_file)
            return self._policies[snap.commit]

    def governance(self, user: str, snap: GovernanceSnapshot) -> Any:
        """The promotion flow acting as ``user`` under the governance files of ``snap``.

        Its own lock is a no-op: callers hold the alias's advisory lock around evaluation and move together, so
        concurrent requests are decided one after the other against the registry as it is.
        """
        from mlops_layer.governance.approvals import default_verifier
        from mlops_layer.governance.cards import load_card
        from mlops_layer.governance.promotion import Governance
        from mlops_layer.governance.trail import AuditTrailView
        from mlops_layer.server.identity import LoginStore

        return Governance(
            registry=self.registry,
            trail=AuditTrailView(LoginStore(self.store, user), self.principal(user, snap)),
            policy=self.policy(snap),
            load_card=lambda model: load_card(snap.cards_dir, model),
            allowed_signers=snap.allowed_signers,
            verifier=default_verifier(),
            locks=_no_lock,
            lineage_probe=stores.lineage_probe(self.config),
            file_check=stores.file_check(self.registry),
            decision_details={"governance_commit": snap.commit, "governance_ref": snap.ref, "via": "server"},
        )

    # -- decisions -------------------------------------------------------------------------------------------------
    def check(self, user: str, model: str, version: str, alias: str) -> tuple[Any, str]:
        from mlops_layer.governance.policy import check_alias

        check_alias(alias)
        snap = self.snapshot()
        return self.governance(user, snap).check(model, str(version), alias), snap.commit

    def move_alias(self, user: str, model: str, alias: str, version: str, *, rollback: bool = False) -> AliasMove:
        """Set ``model@alias`` to ``version`` if the policy allows it, as ``user``; audited either way.

        Setting an alias back to its immediately previous holder is judged as a rollback. ``rollback=True`` with
        ``version=""`` means "back to the previous holder", whatever it is.
        """
        from mlops_layer.governance.execution import previous_holder
        from mlops_layer.governance.policy import check_alias

        check_alias(alias)
        snap = self.snapshot()
        with self.locks(model, alias):
            self.recover(model, alias)
            gov = self.governance(user, snap)
            self._record_governance_files(gov, model, snap)
            current = self.registry.get_aliases(model).get(alias)
            history = [h for h in gov.trail.alias_history(model) if h.alias == alias]
            back = previous_holder(history, current)
            if rollback or (version and back is not None and str(version) == back and current is not None):
                if rollback and version and str(version) != back:
                    raise InputError(
                        f"{model}@{alias}: a rollback goes back to v{back or '-'} (the previous holder), not v{version}"
                    )
                result = gov.rollback(model, alias)
            else:
                result = gov.promote(model, str(version), alias)
        self.checkpoint()
        return AliasMove(result, snap.commit)

    def _record_governance_files(self, gov: Any, model: str, snap: GovernanceSnapshot) -> None:
        """A policy/card change since the last decision is recorded with the commit it came from."""
        policy = gov.policy
        if gov.trail.last_policy_hash() != policy.policy_hash:
            gov.trail.record(
                actions.POLICY_CHANGED,
                subject={},
                details={"policy_hash": policy.policy_hash, "path": policy.path, "governance_commit": snap.commit},
            )
        with contextlib.suppress(MlopsError):
            card = gov.load_card(model)
            if gov.trail.last_card_hash(model) != card.card_hash:
                gov.trail.record(
                    actions.CARD_CHANGED,
                    subject={"model": model},
                    details={"card_hash": card.card_hash, "path": card.path, "governance_commit": snap.commit},
                )

    def recover(self, model: str, alias: str) -> int:
        """Complete promotions a killed worker left half-done; the caller holds the alias lock.

        An allowed decision whose alias move reached the registry but whose completion entry was never appended
        gets that entry now (``via: recovered``, naming the decision). Returns how many were recovered.
        """
        pending: dict[str, int] = {}
        for e in self.store.entries(model=model, action=[*actions.ALIAS_DECISIONS, *actions.ALIAS_EVENTS]):
            if e.alias != alias:
                continue
            if e.action in actions.ALIAS_EVENTS:
                pending.clear()
            elif e.decision == "allowed" and e.version:
                pending[e.version] = e.seq
        if not pending:
            return 0
        holder = self.registry.get_aliases(model).get(alias)
        if holder is None or holder not in pending:
            return 0
        self.store.append(
            actions.ALIAS_SET,
            actor=SERVER_ACTOR,
            subject={"model": model, "version": holder, "alias": alias},
            details={"via": "recovered", "decision_seq": pending[holder], "previous": None},
        )
        return 1

    def recover_all(self) -> int:
        """Recover every alias with an interrupted promotion (at worker start and before reconciling)."""
        keys: set[tuple[str, str]] = set()
        for e in self.store.entries(action=list(actions.ALIAS_DECISIONS)):
            if e.decision == "allowed" and e.model and e.alias:
                keys.add((e.model, e.alias))
        done = 0
        for model, alias in sorted(keys):
            with self.locks(model, alias):
                done += self.recover(model, alias)
        return done

    # -- approvals -------------------------------------------------------------------------------------------------
    def approval_identity(self, model: str, version: str) -> dict[str, Any]:
        """What an approval of this version must bind (the client signs a statement over it)."""
        ident = stores.bound_identity(self.store, self.registry.get_version(model, str(version)))
        return {
            "model": ident.model,
            "version": ident.version,
            "run_id": ident.run_id,
            "source": ident.source,
            "digest": ident.digest,
        }

    def approve(self, user: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Record a signed approval/rejection submitted by ``user``: the signer must be ``user``, the signature must
        verify against the committed ``allowed_signers``, and separation of duties is judged from the trail."""
        from mlops_layer.governance.approvals import SignedApproval, check_approvals, default_verifier
        from mlops_layer.governance.rules_approvals import duty_conflict, separation_flags

        try:
            signed = SignedApproval.from_dict(dict(body))
        except (MlopsError, TypeError, ValueError, KeyError) as exc:
            raise InputError(f"not a signed approval: {exc}") from None
        st = signed.statement
        snap = self.snapshot()
        principal = self.principal(user, snap)
        if st.approver != principal:
            mapped = f" (principal {principal!r})" if principal != user else ""
            raise ApprovalError(
                f"the statement is signed as {st.approver!r} but the request is authenticated as {user!r}{mapped}",
                hint="an approval counts only when its signer submits it under their own MLflow login",
            )
        policy = self.policy(snap)
        target = policy.target(st.model, st.target)
        if target is None:
            raise InputError(f"policy.yaml at {snap.commit[:12]} has no target '{st.target}'")
        if not policy.roles_of(principal):
            raise ApprovalError(f"{principal} holds no role in policy.yaml at {snap.commit[:12]}")
        info = self.registry.get_version(st.model, st.version)
        identity = stores.bound_identity(self.store, info)  # the files' digests as the server recorded them
        gov = self.governance(user, snap)
        trail = gov.trail
        if st.action == "promote":
            # registrant and trainer as the server recorded them from authenticated requests (a service account's
            # training is the signer's of its committed training statement; both are excluded)
            candidate = gov.candidate(info)
            exclude_trainer, exclude_registrant = separation_flags(target.rules)
            did = duty_conflict(
                principal, candidate, exclude_trainer=exclude_trainer, exclude_registrant=exclude_registrant
            )
            if did:
                raise ApprovalError(
                    f"{principal} {did} {st.model} v{identity.version}: separation of duties forbids approving it",
                    hint="ask another holder of the approver roles",
                )
        check = check_approvals(
            [signed], identity, st.target, st.action, snap.allowed_signers, default_verifier(), policy.roles_of
        )[0]
        if not check.valid:
            raise ApprovalError(f"the approval does not verify on the server: {check.reason}")
        seq = trail.record_approval(signed)
        self.checkpoint()
        return {**signed.to_dict(), "audit_seq": seq, "governance_commit": snap.commit}

    # -- identity and registration -----------------------------------------------------------------------------------
    def record_run_created(self, user: str, run_id: str) -> None:
        """The trainer of a run is whoever created it through the server (overwrites any claimed name)."""
        self.registry.set_run_tag(run_id, tags.TRAINED_BY, self.principal(user))

    def record_registration(self, user: str, model_version: Mapping[str, Any]) -> int:
        """A version created through the server: its registrant is the authenticated user, its metrics are frozen,
        the lineage tags its run carries are kept as claims of the trainer."""
        from mlops_layer.server.identity import login_details, registration_trainer

        snap = self.snapshot()
        registrant = self.principal(user, snap)
        name = str(model_version.get("name", ""))
        version = str(model_version.get("version", ""))
        run_id = str(model_version.get("run_id") or "") or None
        run_tags: dict[str, str] = {}
        metrics: dict[str, float] = {}
        trainer = None
        if run_id:
            with contextlib.suppress(MlopsError):
                run = self.registry.get_run(run_id)
                run_tags, metrics = run.tags, run.metrics
                trainer = run.tags.get(tags.TRAINED_BY)
                self._backed_runs.add(run_id)
        # a service account's run: the person who signed its committed training statement trained it
        found, trainer_details = registration_trainer(
            trainer,
            name,
            self.policy(snap),
            snap.cards_dir,
            snap.allowed_signers,
            model_version.get("creation_timestamp"),
        )
        self.registry.set_version_tags(
            name,
            version,
            {tags.REGISTERED_BY: registrant, tags.TRAINED_BY: found.principal or "", tags.TRAINED_VIA: found.via or ""},
        )
        entry = self.store.append(
            actions.MODEL_REGISTERED,
            actor=registrant,
            subject={"model": name, "version": version},
            git_commit=run_tags.get(tags.COMMIT) or None,
            run_id=run_id,
            details={
                "source": model_version.get("source"),
                "via": "server",
                **trainer_details,
                **login_details(user, registrant),
                "governance_commit": snap.commit,
                "metrics": metrics,
                # what the client wrote (run lineage tags, version tags such as claimed file digests): the trainer's
                # and registrant's claims, attributed to them, not facts the server checked
                "claims": {k: v for k, v in run_tags.items() if k.startswith("mlops.") and len(v) < 2000},
                "version_claims": {
                    str(t.get("key")): str(t.get("value"))
                    for t in model_version.get("tags") or ()
                    if isinstance(t, dict) and str(t.get("key", "")).startswith("mlops.")
                },
                # the files' digests as the server itself read them from its artifact store: the frozen facts
                **stores.registration_files(self.registry, model_version),
            },
        )
        with contextlib.suppress(MlopsError):
            self.registry.set_version_tags(name, version, {tags.AUDIT_SEQ: str(entry.seq)})
        self.checkpoint()
        return int(entry.seq)

    def run_backs_version(self, run_id: str) -> bool:
        """Whether a registered model version was created from this run (then its evidence is frozen)."""
        if run_id in self._backed_runs:
            return True
        found = self.registry.versions_of_run(run_id)
        if found:
            self._backed_runs.add(run_id)
        return found

    def model_backs_version(self, model_id: str) -> bool:
        return self.registry.versions_of_logged_model(model_id)

    def record_guard(
        self,
        user: str,
        what: str,
        subject: Mapping[str, str],
        *,
        allowed: bool,
        reason: str,
        run_id: str | None = None,
    ) -> int:
        from mlops_layer.server.identity import LoginStore

        entry = LoginStore(self.store, user).append(
            actions.REGISTRY_GUARD,
            actor=self.principal(user),
            subject=dict(subject),
            run_id=run_id,
            decision="allowed" if allowed else "refused",
            reasons=[reason],
            details={"change": what},
        )
        self.checkpoint()
        return int(entry.seq)

    def record_alias_deleted(self, user: str, model: str, alias: str) -> None:
        from mlops_layer.server.identity import LoginStore

        previous = self.registry.get_aliases(model).get(alias)
        LoginStore(self.store, user).append(
            actions.ALIAS_DELETED,
            actor=self.principal(user),
            subject={"model": model, "alias": alias},
            details={"previous": previous, "via": "admin"},
        )

    # -- the trail's tail ------------------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Sign the trail's head with the server's key (when configured): every append is covered."""
        key = self.config.checkpoint_key
        if key is None:
            return
        from datetime import datetime, timezone

        from mlops_layer.audit.checkpoints import make_checkpoint

        # no signer lookup here (that is one more ssh-keygen run per append): verify names the signer from the
        # committed allowed_signers; a raw Ed25519 PEM key signs in-process, an OpenSSH key through ssh-keygen
        size, head = self.store.head()
        self.store.add_checkpoint(make_checkpoint(size, head, datetime.now(timezone.utc), key, None))
