"""Who a login is, for governance: MLflow usernames mapped to principals, and service accounts that train on a
person's behalf.

``principals:`` in policy.yaml maps an MLflow username to the principal used in ``roles:`` and ``allowed_signers``
(an unmapped username is its own principal); the governing server maps every authenticated user through it.
``service_accounts:`` names the accounts CI trains under: a version they trained is attributed to the person who
signed a *training statement* for that account and model (committed on the model card, ``training_statements:``),
and separation of duties excludes both. Without such a statement the trainer stays the service account, and an
approvals rule that excludes the trainer fails with a reason naming it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mlops_layer.errors import ConfigError, InputError
from mlops_layer.yamlfile import Located

POLICY_FILE_HINT = "principals: {mlflow_username: principal} and service_accounts: [name, ...] in policy.yaml"


@dataclass(frozen=True)
class Principals:
    """The policy's ``principals:`` (username -> principal) and ``service_accounts:`` (principals)."""

    mapping: Mapping[str, str] = field(default_factory=dict)
    service_accounts: tuple[str, ...] = ()
    path: str = ""

    def principal_of(self, username: str) -> str:
        """The principal of an MLflow login; refuses a login that would share a principal with a mapped one."""
        if username in self.mapping:
            return self.mapping[username]
        owners = sorted(u for u, p in self.mapping.items() if p == username)
        if owners:
            raise ConfigError(
                f"{self.path or 'policy.yaml'}: MLflow user {username!r} is not mapped under 'principals:', but "
                f"{', '.join(owners)} map(s) to the principal {username!r}: two logins would act as one",
                hint=f"map {username!r} explicitly under 'principals:'",
            )
        return username

    def is_service_account(self, principal: str | None) -> bool:
        return bool(principal) and principal in self.service_accounts


def principal_problem(text: str) -> str | None:
    """Why ``text`` cannot be a principal (or a login name), or None.

    Principals are matched literally against ``allowed_signers`` and the trail: no wildcards or negation (``*``,
    ``?``, ``!``), no separators ``allowed_signers`` gives meaning to (``,``, ``"``), no whitespace, no control
    characters.
    """
    if not text.strip():
        return "is empty"
    if any(unicodedata.category(c).startswith("C") for c in text):
        return "contains a control character"
    if any(c.isspace() for c in text):
        return "contains whitespace"
    bad = sorted({c for c in text if c in '*?,"'} | ({"!"} if text.startswith("!") else set()))
    if bad:
        return f"contains {' '.join(repr(c) for c in bad)} (wildcards, negation and separators are not names)"
    return None


def _name(node: Located, text: str, what: str) -> str:
    problem = principal_problem(text)
    if problem is not None:
        node.fail(f"{what} {text!r} {problem}", hint=POLICY_FILE_HINT)
    return text


def principals_from_sections(
    mapping_node: Located | None, accounts_node: Located | None, roles: Mapping[str, Sequence[str]], path: str
) -> Principals:
    """Read ``principals:`` and ``service_accounts:``; errors name policy.yaml, the line and the value."""
    mapping: dict[str, str] = {}
    owner_of: dict[str, str] = {}
    if mapping_node is not None:
        for username, target in mapping_node.mapping().items():
            _name(target, username, "MLflow username")
            principal = _name(target, target.string(), "principal")
            if principal in owner_of:
                target.fail(
                    f"usernames {owner_of[principal]!r} and {username!r} both map to the principal {principal!r}",
                    hint="one principal is one person: give each login its own principal",
                )
            owner_of[principal] = username
            mapping[username] = principal
    accounts: list[str] = []
    if accounts_node is not None:
        for item in accounts_node.sequence():
            name = _name(item, item.string(), "service account")
            principal = mapping.get(name, name)
            if principal in accounts:
                item.fail(f"service account {name!r} is listed twice")
            if roles.get(principal):
                item.fail(
                    f"service account {name!r} holds roles ({', '.join(roles[principal])}) under 'roles:'",
                    hint="a service account trains on someone's behalf; it never approves",
                )
            accounts.append(principal)
    return Principals(mapping, tuple(accounts), path)


# -- training statements: a person vouches for what a service account trains -------------------------------------
@dataclass(frozen=True)
class Trainer:
    """Who trained a version, as governance sees it.

    ``principal``: the person accountable (the trainer itself when no service account is involved); ``via``: the
    service account the run was created under; ``also``: further people with a valid statement for that account and
    model (all are excluded from approving); ``problem``: why a service account's training is attributed to nobody.
    """

    principal: str | None
    via: str | None = None
    also: tuple[str, ...] = ()
    problem: str | None = None
    statement: Mapping[str, Any] | None = None


def normalize_until(text: str) -> str:
    """An expiry as written on the command line (``2027-01-31`` or an ISO time) -> ISO 8601 UTC, ``...Z``.

    A bare date means the end of that day (UTC).
    """
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            when = day + timedelta(days=1) - timedelta(seconds=1)
        else:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
    except ValueError:
        raise InputError(
            f"--until {text!r} is not a date", hint="give YYYY-MM-DD or an ISO 8601 time, e.g. 2027-01-31"
        ) from None
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _until(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def training_statement(
    principal: str, service_account: str, model: str, until: str | None, signed_at: str
) -> dict[str, str | None]:
    """What a person signs (namespace ``mlops-training``, role ``trainer``): ``service_account`` trains ``model`` on
    my behalf (until ``until``)."""
    from mlops_layer.governance.identity import identity_statement

    about = {"service_account": service_account, "model": model, "signed_at": signed_at, "until": until}
    return identity_statement("trainer", principal, **{k: v for k, v in about.items() if v is not None})


def resolve_trainer(
    trainer: str | None,
    model: str,
    principals: Principals,
    statements: Sequence[Mapping[str, Any]],
    allowed_signers: Path,
    verifier: object,
    at: datetime | None,
) -> Trainer:
    """The person accountable for a version ``trainer`` trained: ``trainer`` itself unless it is a service account,
    then the signer of a valid training statement (verified against ``allowed_signers``, for this account and model,
    not expired at ``at``)."""
    from mlops_layer.governance.identity import TRAINING_NAMESPACE, verified_identity

    if trainer is None or not principals.is_service_account(trainer):
        return Trainer(trainer)
    found: list[tuple[str, Mapping[str, Any]]] = []
    why: list[str] = []
    for proof in statements:
        statement = proof.get("statement")
        if not isinstance(statement, Mapping) or statement.get("service_account") != trainer:
            continue  # a statement for another account says nothing about this one
        principal, reason = verified_identity(
            dict(proof),
            TRAINING_NAMESPACE,
            {"role": "trainer", "service_account": trainer, "model": model},
            allowed_signers,
            verifier,
        )
        if principal is None:
            why.append(f"the statement claiming {statement.get('principal')!r}: {reason}")
            continue
        try:
            until = _until(statement.get("until"))
        except ValueError:
            why.append(f"the statement by {principal} has an unreadable 'until' {statement.get('until')!r}")
            continue
        when = at or datetime.now(timezone.utc)
        when = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
        if until is not None and when > until:
            why.append(f"the statement by {principal} expired at {statement.get('until')}")
            continue
        if principals.is_service_account(principal):
            why.append(f"{principal} is itself a service account")
            continue
        found.append((principal, statement))
    if not found:
        detail = f" ({'; '.join(dict.fromkeys(why))})" if why else ""
        return Trainer(
            trainer,
            problem=f"trained by service account {trainer} with no signed training statement naming the human"
            f"{detail}; the person on whose behalf it trains signs one (`mlops sign-training --model {model} "
            f"--service-account {trainer} --key KEY`) and commits it on the model card",
        )
    people = sorted(dict.fromkeys(p for p, _ in found))
    first = next(s for p, s in found if p == people[0])
    return Trainer(people[0], via=trainer, also=tuple(people[1:]), statement=dict(first))
