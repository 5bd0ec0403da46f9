"""Signed approvals with real SSH keys: forged, unsigned, untrusted, replayed approvals are refused with reasons."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlops_layer import signing
from mlops_layer.errors import ApprovalError
from mlops_layer.governance.approvals import (
    NAMESPACE,
    ApprovalStatement,
    CandidateIdentity,
    SignedApproval,
    check_approval,
    default_signer,
    default_verifier,
    make_statement,
    sign_statement,
)
from mlops_layer.governance.identity import principal_for_key
from mlops_layer.governance.policy import parse_policy
from mlops_layer.governance.rules import Candidate, PromotionContext, evaluate

NOW = datetime.now(timezone.utc)
V3 = CandidateIdentity("credit", "3", "run3", "models:/m-3", "m-3")
V4 = CandidateIdentity("credit", "4", "run4", "models:/m-4", "m-4")
POLICY = parse_policy(
    textwrap.dedent(
        """\
        roles:
          alice@example.com: [model-risk]
          dan@example.com: [model-risk]
          carol@example.com: [model-risk]
        targets:
          champion:
            rules:
              - {type: approvals, count: 1, roles: [model-risk]}
          staging:
            rules: []
        """
    ).encode(),
    "policy.yaml",
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    out = {}
    lines = []
    for who in ("alice", "dan", "carol", "mallory"):
        path = folder / who
        pub = signing.generate_key(path, f"{who}@example.com")
        out[who] = path
        if who != "mallory":  # mallory's key is not trusted
            lines.append(signing.allowed_signers_line(f"{who}@example.com", pub))
    signers = folder / "allowed_signers"
    signers.write_text("\n".join(lines) + "\n")
    out["signers"] = signers
    return out


def signed(
    keys: dict[str, Path], who: str, identity: CandidateIdentity = V4, target: str = "champion", **kw: object
) -> SignedApproval:
    st = make_statement(identity, target, f"{who}@example.com", **kw)  # type: ignore[arg-type]
    return sign_statement(st, keys[who], default_signer())


def check(keys: dict[str, Path], approval: SignedApproval, identity: CandidateIdentity = V4, target: str = "champion"):  # type: ignore[no-untyped-def]
    return check_approval(approval, identity, target, "promote", keys["signers"], default_verifier(), POLICY.roles_of)


def decide(
    keys: dict[str, Path], *approvals: SignedApproval, registered_by: str = "reg@example.com"
) -> tuple[bool, str]:
    checks = tuple(check(keys, a) for a in approvals)
    cand = Candidate(
        "credit", "4", "run4", "models:/m-4", "m-4", registered_by=registered_by, created_at=NOW - timedelta(days=1)
    )
    d = evaluate(POLICY, PromotionContext(candidate=cand, target="champion", approvals=checks))
    return d.allowed, d.rules[0].message


def test_valid_approval_counts(keys: dict[str, Path]) -> None:
    result = check(keys, signed(keys, "alice"))
    assert result.valid and result.principal == "alice@example.com" and result.roles == ("model-risk",)
    assert decide(keys, signed(keys, "alice"))[0]


def test_statement_is_canonical_and_binds_everything() -> None:
    st = make_statement(V4, "champion", "alice@example.com", comment="ok", now=NOW)
    assert ApprovalStatement.from_dict(st.to_dict()) == st
    body = st.canonical_bytes()
    for value in (b'"credit"', b'"4"', b'"champion"', b'"run4"', b'"models:/m-4"', b'"m-4"', b'"approve"'):
        assert value in body
    assert body.startswith(b'{"action":"promote","approver"')  # RFC 8785: sorted keys, no spaces


def test_unsigned_approval_is_refused(keys: dict[str, Path]) -> None:
    bare = SignedApproval(make_statement(V4, "champion", "alice@example.com"), "")
    result = check(keys, bare)
    assert not result.valid and "unsigned" in result.reason
    allowed, message = decide(keys, bare)
    assert not allowed and "unsigned" in message


def test_forged_approval_is_refused(keys: dict[str, Path]) -> None:
    # mallory signs a statement claiming to be alice: the key is not trusted for alice
    forged = signed(keys, "mallory")
    forged = SignedApproval(replace(forged.statement, approver="alice@example.com"), forged.signature)
    result = check(keys, forged)
    assert not result.valid and "does not verify" in result.reason
    # a genuine signature with an edited statement (decision flipped, comment changed)
    genuine = signed(keys, "alice", decision="reject")
    edited = SignedApproval(replace(genuine.statement, decision="approve"), genuine.signature)
    assert not check(keys, edited).valid
    # garbage signature
    assert not check(
        keys, SignedApproval(genuine.statement, "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----")
    ).valid
    allowed, message = decide(keys, forged, edited)
    assert not allowed and "0 of 1" in message


def test_key_not_in_allowed_signers_is_refused(keys: dict[str, Path]) -> None:
    # mallory signs honestly as herself, but her key is not trusted
    approval = signed(keys, "mallory")
    result = check(keys, approval)
    assert not result.valid and "not in" in result.reason
    with pytest.raises(ApprovalError, match="not trusted"):
        principal_for_key(keys["signers"], keys["mallory"], NAMESPACE)
    assert principal_for_key(keys["signers"], keys["alice"], NAMESPACE) == "alice@example.com"


def test_approval_for_version_3_replayed_for_version_4(keys: dict[str, Path]) -> None:
    for_v3 = signed(keys, "alice", identity=V3)
    assert check(keys, for_v3, identity=V3).valid
    replayed = check(keys, for_v3, identity=V4)
    assert not replayed.valid and "replay refused" in replayed.reason and "version '3' (this is '4')" in replayed.reason
    # same version number, different content (a re-created registry): the run id/source bind it
    other_content = replace(V4, run_id="run-other", source="models:/m-other")
    assert not check(keys, signed(keys, "alice"), identity=other_content).valid
    allowed, message = decide(keys, for_v3)
    assert not allowed and "replay refused" in message


def test_approval_replayed_for_another_alias(keys: dict[str, Path]) -> None:
    for_staging = signed(keys, "alice", target="staging")
    result = check(keys, for_staging, target="champion")
    assert not result.valid and "alias 'staging' (this is 'champion')" in result.reason


def test_registrant_approving_own_version(keys: dict[str, Path]) -> None:
    allowed, message = decide(keys, signed(keys, "carol"), registered_by="carol@example.com")
    assert not allowed and "separation of duties" in message
    assert decide(keys, signed(keys, "carol"), signed(keys, "dan"), registered_by="carol@example.com")[0]


def test_reject_blocks(keys: dict[str, Path]) -> None:
    allowed, message = decide(keys, signed(keys, "alice"), signed(keys, "dan", decision="reject", comment="bias"))
    assert not allowed and "dan@example.com (model-risk) rejected: bias" in message


def test_statement_from_dict_refuses_foreign_schema() -> None:
    with pytest.raises(ApprovalError, match="not an approval statement"):
        ApprovalStatement.from_dict({"schema": "other"})
