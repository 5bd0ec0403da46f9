"""Who and what a promotion is about: the :class:`Candidate` built from the registry version, its registration
record and the policy's identity rules (signed trainer/registrant, the person behind a service account), and the
identity approvals bind (version and the sha256 of its exact files)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlops_layer import tags
from mlops_layer.audit.registrations import RegistrationRecord
from mlops_layer.errors import MlopsError
from mlops_layer.governance.approvals import CandidateIdentity, Verifier
from mlops_layer.governance.cards import ModelCard
from mlops_layer.governance.context import Candidate
from mlops_layer.governance.digests import files_refusal
from mlops_layer.governance.policy import Policy
from mlops_layer.governance.ports import TrailPort
from mlops_layer.governance.principals import Trainer

TAG_REGISTERED_BY = tags.REGISTERED_BY
TAG_TRAINED_BY = tags.TRAINED_BY
TAG_TRAINED_VIA = tags.TRAINED_VIA
TAG_DIGEST = tags.DIGEST


class CandidateBuilding:
    """The candidate-building part of :class:`~mlops_layer.governance.promotion.Governance` (its fields, below)."""

    trail: TrailPort
    policy: Policy
    load_card: Callable[[str], ModelCard]
    allowed_signers: Path
    verifier: Verifier

    def candidate(self, info: Any, metrics: Mapping[str, float] | None = None) -> Candidate:
        tags = dict(info.tags)
        trail_registrant = self.trail.registered_by(info.name, info.version)
        tag_registrant = tags.get(TAG_REGISTERED_BY) or None
        record = self.trail.registration(info.name, str(info.version))
        identity = bound_identity(info, record)
        frozen = record.metrics if record is not None else None
        if metrics is None:
            metrics = frozen or {}
        trained_by = tags.get(TAG_TRAINED_BY) or None
        registered_by = trail_registrant or tag_registrant
        others = tuple(x for x in (tag_registrant,) if x and x != registered_by)
        problems: tuple[str, ...] = ()
        if self.policy.identity == "signed":
            # compare signed principals; the declared names stay excluded too (a cheap extra, never a weaker check)
            trainer, registrant, problems = self._signed_identities(identity, record)
            others = tuple(x for x in (*others, trained_by, registered_by) if x)
            trained_by, registered_by = trainer, registrant
        accountable = self._accountable_trainer(info, tags, trained_by)
        # everyone accountable for the training stays excluded (and so does a recorded trainer it replaced)
        also = tuple(
            dict.fromkeys(
                x for x in (*accountable.also, trained_by) if x and x not in (accountable.principal, accountable.via)
            )
        )
        trained_by = accountable.principal
        return Candidate(
            model=identity.model,
            version=identity.version,
            run_id=identity.run_id,
            source=identity.source,
            digest=identity.digest,
            metrics=dict(metrics),
            tags=tags,
            # the trail is append-only, a version tag anyone can edit: prefer the trail, exclude both
            registered_by=registered_by,
            trained_by=trained_by,
            created_at=info.creation_time,
            changed_at=info.creation_time,
            other_identities=others,
            metrics_frozen=frozen is not None,
            identity_problems=problems,
            trained_via=accountable.via,
            also_trained_by=also,
            trainer_problem=accountable.problem,
            artifacts=dict(record.artifacts) if record is not None and record.artifacts else None,
            files_problem=files_refusal(record),
        )

    def _accountable_trainer(self, info: Any, tags: Mapping[str, str], trained_by: str | None) -> Trainer:
        """The person accountable for the training: a service account's run is the signer's of a committed
        training statement (on the model card); the account stays excluded from approving too."""
        from mlops_layer.governance.principals import resolve_trainer

        # the governing server records the account a person's training ran under; a signed trainer proof is stronger
        recorded_via = tags.get(TAG_TRAINED_VIA) or None
        raw = trained_by if self.policy.identity == "signed" else (recorded_via or trained_by)
        statements: tuple[Mapping[str, Any], ...] = ()
        if self.policy.principals.is_service_account(raw):
            with contextlib.suppress(MlopsError):
                statements = self.load_card(info.name).training_statements
        found = resolve_trainer(
            raw,
            info.name,
            self.policy.principals,
            statements,
            self.allowed_signers,
            self.verifier,
            info.creation_time,
        )
        via = found.via or recorded_via
        return replace(found, via=via) if via != found.via else found

    def _signed_identities(
        self, identity: CandidateIdentity, record: RegistrationRecord | None
    ) -> tuple[str | None, str | None, tuple[str, ...]]:
        """The trainer and registrant as their signatures prove them (policy ``identity: signed``), and problems."""
        from mlops_layer.governance.identity import REGISTRATION_NAMESPACE, TRAINING_NAMESPACE, verified_identity

        if record is None:
            return None, None, ("the version has no registration entry, so nobody's signature says who made it",)
        trainer, why_t = verified_identity(
            record.trainer_proof,
            TRAINING_NAMESPACE,
            {"role": "trainer", "run_id": identity.run_id, "service_account": None},
            self.allowed_signers,
            self.verifier,
        )
        registrant, why_r = verified_identity(
            record.registrant_proof,
            REGISTRATION_NAMESPACE,
            {"role": "registrant", "model": identity.model, "run_id": identity.run_id, "digest": identity.digest},
            self.allowed_signers,
            self.verifier,
        )
        problems = tuple(
            f"the {what} is not proven by a signature ({why})"
            for what, who, why in (("trainer", trainer, why_t), ("registrant", registrant, why_r))
            if who is None
        )
        return trainer, registrant, problems

    def card_or_error(self, model: str) -> tuple[ModelCard | None, str | None]:
        try:
            return self.load_card(model), None
        except MlopsError as exc:
            return None, exc.message


def bound_identity(info: Any, record: RegistrationRecord | None) -> CandidateIdentity:
    """What approvals bind: the version and, when registration recorded them, the sha256 of its exact files."""
    base = identity_of(info)
    if record is None or not record.artifacts:
        return base
    return replace(base, digest=content_digest(record.artifacts))


def content_digest(digests: Mapping[str, str]) -> str:
    """One digest naming a model's exact files: sha256 over the sorted ``path<TAB>digest`` lines."""
    import hashlib

    lines = "".join(f"{p}\t{d}\n" for p, d in sorted(digests.items()))
    return "sha256:" + hashlib.sha256(lines.encode("utf-8")).hexdigest()


def identity_of(info: Any) -> CandidateIdentity:
    return CandidateIdentity(
        model=info.name,
        version=str(info.version),
        run_id=info.run_id,
        source=info.source or "",
        digest=getattr(info, "model_id", None) or dict(info.tags).get(TAG_DIGEST) or None,
    )
