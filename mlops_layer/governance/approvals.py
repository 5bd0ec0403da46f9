"""Signed approvals: a statement binding who decided what about exactly which model content, and its checking.

An approval is an SSH signature (``ssh-keygen -Y sign``, namespace :data:`NAMESPACE`) over the canonical JSON
of an :class:`ApprovalStatement`. The statement binds model, version, target alias, action, decision,
approver, time and the candidate's content identity (run id, source, digest), so it cannot be replayed for
another version or alias. Verification goes through ``allowed_signers``; nothing else (an actor name, an
environment variable) proves identity.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_layer.errors import ApprovalError, MlopsError

NAMESPACE = "mlops-approval"
SCHEMA = "mlops.approval/v1"
DECISIONS = ("approve", "reject", "withdraw")
WITHDRAW = "withdraw"  # a signed withdrawal: the signer's earlier approval/rejection of the same binding lapses
ACTIONS = ("promote", "rollback")

# verify(data, signature, allowed_signers, namespace, principal) -> the verified principal, raising on failure
Verifier = Callable[[bytes, str, Path, str, "str | None"], str]
Signer = Callable[[bytes, Path, str], str]


@dataclass(frozen=True)
class CandidateIdentity:
    """What an approval is about: the version and the content it points at."""

    model: str
    version: str
    run_id: str | None
    source: str
    digest: str | None = None


@dataclass(frozen=True)
class ApprovalStatement:
    model: str
    version: str
    target: str
    decision: str
    approver: str
    timestamp: str  # ISO 8601 UTC, e.g. 2025-05-01T12:00:00.000000Z
    run_id: str | None
    source: str
    digest: str | None = None
    action: str = "promote"
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "model": self.model,
            "version": self.version,
            "target": self.target,
            "action": self.action,
            "decision": self.decision,
            "approver": self.approver,
            "timestamp": self.timestamp,
            "run_id": self.run_id,
            "source": self.source,
            "digest": self.digest,
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApprovalStatement:
        if data.get("schema") != SCHEMA:
            raise ApprovalError(f"not an approval statement (schema {data.get('schema')!r}, expected {SCHEMA!r})")
        try:
            return cls(
                model=str(data["model"]),
                version=str(data["version"]),
                target=str(data["target"]),
                decision=str(data["decision"]),
                approver=str(data["approver"]),
                timestamp=str(data["timestamp"]),
                run_id=None if data.get("run_id") is None else str(data["run_id"]),
                source=str(data.get("source") or ""),
                digest=None if data.get("digest") is None else str(data["digest"]),
                action=str(data.get("action") or "promote"),
                comment=str(data.get("comment") or ""),
            )
        except KeyError as exc:
            raise ApprovalError(f"approval statement lacks field {exc.args[0]!r}") from None

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON: the exact bytes that are signed and verified."""
        import rfc8785

        return bytes(rfc8785.dumps(self.to_dict()))

    @property
    def time(self) -> datetime:
        return parse_time(self.timestamp)


@dataclass(frozen=True)
class SignedApproval:
    """A statement with its SSH signature (armored), as stored in the audit trail."""

    statement: ApprovalStatement
    signature: str
    audit_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement": self.statement.to_dict(),
            "signature": self.signature,
            "audit_seq": self.audit_seq,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], audit_seq: int | None = None) -> SignedApproval:
        statement = data.get("statement")
        if not isinstance(statement, dict):
            raise ApprovalError("approval record has no statement")
        return cls(
            statement=ApprovalStatement.from_dict(statement),
            signature=str(data.get("signature") or ""),
            audit_seq=audit_seq if audit_seq is not None else data.get("audit_seq"),
        )


@dataclass(frozen=True)
class ApprovalCheck:
    """The verdict on one stored approval: valid (signature and binding) or not, and why."""

    approval: SignedApproval
    valid: bool
    principal: str | None
    roles: tuple[str, ...] = ()
    reason: str = ""

    @property
    def decision(self) -> str:
        return self.approval.statement.decision

    @property
    def time(self) -> datetime:
        return self.approval.statement.time


Approval = SignedApproval


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApprovalError(f"approval timestamp {text!r} is not ISO 8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def make_statement(
    identity: CandidateIdentity,
    target: str,
    approver: str,
    *,
    decision: str = "approve",
    action: str = "promote",
    comment: str | None = None,
    now: datetime | None = None,
) -> ApprovalStatement:
    if decision not in DECISIONS:
        raise ApprovalError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    if action not in ACTIONS:
        raise ApprovalError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    # NFC: the audit trail stores strings NFC-normalised, and the stored statement must re-verify byte for byte
    return ApprovalStatement(
        model=_nfc(identity.model),
        version=_nfc(identity.version),
        target=_nfc(target),
        decision=decision,
        approver=_nfc(approver),
        timestamp=format_time(now or utc_now()),
        run_id=None if identity.run_id is None else _nfc(identity.run_id),
        source=_nfc(identity.source),
        digest=None if identity.digest is None else _nfc(identity.digest),
        action=action,
        comment=_nfc(comment or ""),
    )


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def sign_statement(statement: ApprovalStatement, key_path: Path, signer: Signer) -> SignedApproval:
    return SignedApproval(statement=statement, signature=signer(statement.canonical_bytes(), key_path, NAMESPACE))


def check_approval(
    approval: SignedApproval,
    identity: CandidateIdentity,
    target: str,
    action: str,
    allowed_signers: Path,
    verifier: Verifier,
    roles_of: Callable[[str], tuple[str, ...]],
) -> ApprovalCheck:
    """Verify the signature (allowed_signers, claimed approver), then the binding to the candidate."""
    st = approval.statement
    if not approval.signature.strip():
        return ApprovalCheck(approval, False, None, reason=f"approval claiming to be by {st.approver} is unsigned")
    try:
        principal = verifier(st.canonical_bytes(), approval.signature, allowed_signers, NAMESPACE, st.approver)
    except MlopsError as exc:
        return ApprovalCheck(
            approval,
            False,
            None,
            reason=(
                f"approval claiming to be by {st.approver} does not verify against {allowed_signers.name} "
                f"(forged, altered, or signed by a key not trusted for that principal): {exc.message}"
            ),
        )
    if principal != st.approver:
        return ApprovalCheck(
            approval, False, principal, reason=f"signed by {principal}, but claims to be by {st.approver}"
        )
    mismatches = []
    for what, signed, wanted in (
        ("model", st.model, identity.model),
        ("version", st.version, identity.version),
        ("alias", st.target, target),
        ("action", st.action, action),
        ("run id", st.run_id, identity.run_id),
        ("model source", st.source, identity.source),
        ("digest", st.digest, identity.digest),
    ):
        if signed != wanted:
            mismatches.append(f"{what} {signed!r} (this is {wanted!r})")
    if mismatches:
        return ApprovalCheck(
            approval,
            False,
            principal,
            reason=f"approval by {principal} was signed for another {', '.join(mismatches)}: replay refused",
        )
    return ApprovalCheck(approval, True, principal, roles=roles_of(principal))


def check_approvals(
    approvals: Iterable[SignedApproval],
    identity: CandidateIdentity,
    target: str,
    action: str,
    allowed_signers: Path,
    verifier: Verifier,
    roles_of: Callable[[str], tuple[str, ...]],
) -> tuple[ApprovalCheck, ...]:
    checks = tuple(check_approval(a, identity, target, action, allowed_signers, verifier, roles_of) for a in approvals)
    return apply_withdrawals(checks)


def apply_withdrawals(checks: Iterable[ApprovalCheck]) -> tuple[ApprovalCheck, ...]:
    """A valid signed withdrawal voids the same signer's earlier statements about the same binding.

    ``checks`` are already bound to one model version, alias and action (a withdrawal signed for another binding
    is invalid like any replayed statement). The withdrawal itself is never counted as a decision, and a statement
    signed after it counts again: an approver may withdraw and later approve anew.
    """
    checks = tuple(checks)
    withdrawn: dict[str, datetime] = {}
    for c in checks:
        if c.valid and c.principal is not None and c.decision == WITHDRAW:
            withdrawn[c.principal] = max(c.time, withdrawn.get(c.principal, c.time))
    if not withdrawn:
        return checks
    out = []
    for c in checks:
        when = withdrawn.get(c.principal or "")
        if not c.valid or when is None:
            out.append(c)
        elif c.decision == WITHDRAW:
            out.append(
                replace(c, valid=False, reason=f"{c.principal} withdrew their decision at {format_time(c.time)}")
            )
        elif c.time <= when:
            out.append(
                replace(
                    c,
                    valid=False,
                    reason=f"the {c.decision} by {c.principal} ({format_time(c.time)}) was withdrawn by a signed "
                    f"withdrawal at {format_time(when)}",
                )
            )
        else:
            out.append(c)
    return tuple(out)


def default_verifier() -> Verifier:
    """Verification through :func:`mlops_layer.signing.verify` (key trusted now, for the claimed principal)."""
    from mlops_layer import signing

    def verify(data: bytes, signature: str, allowed: Path, namespace: str, principal: str | None) -> str:
        return signing.verify(data, signature, allowed, namespace, principal=principal)

    return verify


def default_signer() -> Signer:
    from mlops_layer import signing

    return signing.sign
