"""Whose word a version's file digests are: the governing server's facts against the registrant's claim.

A registration through the governing server records the sha256 the server computed from its own artifact store as
the version's frozen digests; the digests the client sent (``mlops.claims.model_files``) stay the registrant's claim.
These pure functions decide what a difference between the two, or a server that could not read the files, means for
a promotion: it is refused, with the reason named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

NOT_COMPUTED = "not computed"


def not_computed(why: str) -> str:
    """The recorded reason a registration has no server-computed digests."""
    return f"{NOT_COMPUTED}: {why}"


def claim_problem(raw_claim: str | None, fact: Mapping[str, str] | None) -> str | None:
    """Why the registrant's claimed digests disagree with the server's (None: no claim, or claim equals fact).

    With no fact to compare against (the server could not read the files) a claim is simply kept as a claim.
    """
    if raw_claim is None or fact is None:
        return None
    try:
        claimed = json.loads(raw_claim)
    except ValueError:
        claimed = None
    if not isinstance(claimed, dict):
        return "the registrant's claimed digests (mlops.claims.model_files) are not a JSON mapping of file digests"
    claim = {str(k): str(v) for k, v in claimed.items()}
    differ = sorted(p for p in set(claim) | set(fact) if claim.get(p) != fact.get(p))
    if not differ:
        return None
    return (
        "the registrant claimed other file digests than the server computed from its artifact store for "
        + ", ".join(differ[:8])
        + (f" and {len(differ) - 8} more" if len(differ) > 8 else "")
    )


def parsed_claim(raw_claim: str | None) -> dict[str, Any] | None:
    """The claim as recorded evidence: the mapping when it is one, else the raw text."""
    if raw_claim is None:
        return None
    try:
        data = json.loads(raw_claim)
    except ValueError:
        return {"raw": raw_claim[:2000]}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {"raw": raw_claim[:2000]}


def files_refusal(record: Any) -> str | None:
    """Why a version's registration cannot back a promotion of its files (None: nothing against it).

    ``record`` is an ``audit.registrations.RegistrationRecord`` (or None: nothing recorded, judged elsewhere).
    """
    if record is None:
        return None
    problem: str | None = getattr(record, "digests_not_computed", None)
    if problem:
        return (
            f"the server recorded no file digests at registration ({problem}); the version's bytes cannot be "
            "bound, so it cannot be promoted: make its files readable to the server and register it again (or have "
            "an MLflow admin run `mlops migrate`, which records the digests the server computes then)"
        )
    claim: str | None = getattr(record, "claim_problem", None)
    if claim:
        return f"{claim}: the files the registrant saw are not the files the server holds; register a new version"
    return None


def migration_need(record: Any) -> tuple[bool, bool, str | None]:
    """What a migration by the governing server must record for a version: (metrics snapshot, server digests, why it
    cannot). ``record`` is the version's ``RegistrationRecord`` after earlier snapshots (None: no registration entry).

    Digests count as the server's only when it computed them (at registration, or in an earlier migration snapshot);
    digests a registrant's client recorded are kept, and checked against the served files at every promotion. A
    registration that fixed its digests is never re-decided: a snapshot fills gaps, it does not replace.
    """
    if record is None:
        return True, True, None
    metrics = getattr(record, "metrics", None) is None
    artifacts = getattr(record, "artifacts", None) or {}
    if not artifacts:
        return metrics, True, None
    if getattr(record, "digests_not_computed", None):
        # digests filled by a snapshot the server did not compute: the server's snapshot cannot override them
        return (
            metrics,
            False,
            "its registration has no server-computed digests and a snapshot not computed by the server already "
            "filled them in; register it again through the server",
        )
    return metrics, False, None
