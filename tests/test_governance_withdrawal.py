"""Withdrawn approvals, with real SSH keys: a signed withdrawal voids the signer's earlier decision, nothing else does."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlops_layer import signing
from mlops_layer.governance.approvals import (
    CandidateIdentity,
    SignedApproval,
    check_approvals,
    default_signer,
    default_verifier,
    make_statement,
    sign_statement,
)
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
        targets:
          champion:
            rules:
              - {type: approvals, count: 1, roles: [model-risk]}
        """
    ).encode(),
    "policy.yaml",
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    out, lines = {}, []
    for who in ("alice", "dan", "mallory"):
        pub = signing.generate_key(folder / who, f"{who}@example.com")
        out[who] = folder / who
        if who != "mallory":
            lines.append(signing.allowed_signers_line(f"{who}@example.com", pub))
    (folder / "allowed_signers").write_text("\n".join(lines) + "\n")
    out["signers"] = folder / "allowed_signers"
    return out


def signed(
    keys: dict[str, Path], who: str, minutes: int, decision: str = "approve", identity: CandidateIdentity = V4
) -> SignedApproval:
    statement = make_statement(
        identity, "champion", f"{who}@example.com", decision=decision, now=NOW - timedelta(minutes=60 - minutes)
    )
    return sign_statement(statement, keys[who], default_signer())


def decide(keys: dict[str, Path], *approvals: SignedApproval) -> tuple[bool, str]:
    checks = check_approvals(approvals, V4, "champion", "promote", keys["signers"], default_verifier(), POLICY.roles_of)
    cand = Candidate(
        "credit", "4", "run4", "models:/m-4", "m-4", registered_by="reg@x.org", created_at=NOW - timedelta(days=1)
    )
    d = evaluate(POLICY, PromotionContext(candidate=cand, target="champion", approvals=checks))
    return d.allowed, d.rules[0].message


def test_a_signed_withdrawal_voids_the_earlier_approval(keys: dict[str, Path]) -> None:
    assert decide(keys, signed(keys, "alice", 1))[0]
    allowed, message = decide(keys, signed(keys, "alice", 1), signed(keys, "alice", 2, "withdraw"))
    assert not allowed
    assert "was withdrawn by a signed withdrawal" in message and "alice@example.com withdrew" in message


def test_approving_again_after_a_withdrawal_counts(keys: dict[str, Path]) -> None:
    approvals = (signed(keys, "alice", 1), signed(keys, "alice", 2, "withdraw"), signed(keys, "alice", 3))
    assert decide(keys, *approvals)[0]


def test_a_withdrawal_voids_a_rejection_too(keys: dict[str, Path]) -> None:
    blocked = (signed(keys, "alice", 1), signed(keys, "dan", 2, "reject"))
    assert not decide(keys, *blocked)[0]
    assert decide(keys, *blocked, signed(keys, "dan", 3, "withdraw"))[0]


def test_only_the_signers_own_decision_is_withdrawn(keys: dict[str, Path]) -> None:
    assert decide(keys, signed(keys, "alice", 1), signed(keys, "dan", 2, "withdraw"))[0]


def test_untrusted_forged_or_replayed_withdrawals_withdraw_nothing(keys: dict[str, Path]) -> None:
    approval = signed(keys, "alice", 1)
    untrusted = sign_statement(
        make_statement(V4, "champion", "alice@example.com", decision="withdraw"), keys["mallory"], default_signer()
    )
    genuine = signed(keys, "alice", 2, "withdraw")
    forged = replace(genuine, statement=replace(genuine.statement, comment="altered after signing"))
    replayed = signed(keys, "alice", 2, "withdraw", identity=V3)  # signed for v3, stored against v4
    for attack in (untrusted, forged, replayed):
        allowed, message = decide(keys, approval, attack)
        assert allowed, message
