"""Who someone is, for governance: the principal an SSH key is trusted for in ``allowed_signers`` (git's format).

Identity comes only from a key listed in ``allowed_signers``; roles come from ``policy.yaml``. The actor name
(``MLOPS_ACTOR``, git config) is recorded for context but never proves who approved anything.
"""

from __future__ import annotations

import base64
from pathlib import Path

from mlops_layer.errors import ApprovalError, InputError


def principals_for_key(allowed_signers: Path, key_path: Path, namespace: str) -> list[str]:
    """The literal principals ``allowed_signers`` trusts the key at ``key_path`` for, in ``namespace``."""
    from mlops_layer import signing

    line = signing.public_key(key_path).split()
    try:
        blob = base64.b64decode(line[1])
    except (IndexError, ValueError):
        raise InputError(f"cannot read the public key of {key_path}") from None
    found: list[str] = []
    for entry in signing.parse_allowed_signers(allowed_signers):
        if entry.key_blob != blob or "cert-authority" in entry.options or not entry.allows_namespace(namespace):
            continue
        found.extend(p for p in entry.principals if not p.startswith("!") and not any(c in p for c in "*?"))
    return sorted(set(found))


def principal_for_key(allowed_signers: Path, key_path: Path, namespace: str, principal: str | None = None) -> str:
    """The one principal the key signs as; refuses a key ``allowed_signers`` does not trust."""
    principals = principals_for_key(allowed_signers, key_path, namespace)
    if not principals:
        raise ApprovalError(
            f"the key {key_path} is not trusted in {allowed_signers} for {namespace!r}",
            hint="an approval counts only when signed by a key listed there; ask the policy owners to add yours",
        )
    if principal is not None:
        if principal not in principals:
            raise ApprovalError(
                f"the key {key_path} is not trusted for {principal!r} in {allowed_signers} "
                f"(it is for: {', '.join(principals)})"
            )
        return principal
    if len(principals) > 1:
        raise InputError(
            f"the key {key_path} is trusted for several principals: {', '.join(principals)}",
            hint="say which one you sign as (--as PRINCIPAL)",
        )
    return principals[0]


# -- signed identity of the trainer and the registrant (policy `identity: signed`) ----------------------------------
TRAINING_NAMESPACE = "mlops-training"
REGISTRATION_NAMESPACE = "mlops-registration"
IDENTITY_SCHEMA = "mlops.identity/v1"


def identity_statement(role: str, principal: str, **about: str | None) -> dict[str, str | None]:
    """What a trainer or registrant signs: who they are and exactly what they trained or registered."""
    return {"schema": IDENTITY_SCHEMA, "role": role, "principal": principal, **about}


def sign_identity(statement: dict[str, str | None], key_path: Path, namespace: str) -> dict[str, object]:
    """``{"statement": ..., "signature": ...}``: an SSH signature over the statement's canonical JSON."""
    import rfc8785

    from mlops_layer import signing

    return {"statement": statement, "signature": signing.sign(bytes(rfc8785.dumps(statement)), key_path, namespace)}


def verified_identity(
    proof: object,
    namespace: str,
    expect: dict[str, str | None],
    allowed_signers: Path,
    verifier: object,
) -> tuple[str | None, str]:
    """The principal a proof verifies for (against ``allowed_signers``), or None and why not.

    ``expect``: fields the signed statement must carry (run id, model, digest) so a proof cannot be replayed.
    """
    import rfc8785

    from mlops_layer.errors import MlopsError

    if not isinstance(proof, dict) or not isinstance(proof.get("statement"), dict) or not proof.get("signature"):
        return None, "no signature"
    statement = proof["statement"]
    wrong = [k for k, v in expect.items() if statement.get(k) != v]
    if statement.get("schema") != IDENTITY_SCHEMA or wrong:
        return None, f"signed for another {', '.join(wrong) or 'schema'}"
    claimed = str(statement.get("principal") or "")
    try:
        principal = verifier(  # type: ignore[operator]
            bytes(rfc8785.dumps(statement)), str(proof["signature"]), allowed_signers, namespace, claimed
        )
    except MlopsError as exc:
        return None, f"the signature does not verify ({exc.message})"
    return str(principal), ""
