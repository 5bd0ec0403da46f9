"""Writing and checking the governance files of the working copy: a new model card, card and policy validation.

Validation reads the files as they are on disk (what is about to be committed; the promotion gate reads the
commit) and never writes to the audit trail, so CI and pre-commit hooks can run it freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import ConfigError, InputError, MlopsError


@dataclass(frozen=True)
class CardDraft:
    """A card written by ``card_new``: where, and the questions still open (``file:line: field ...``)."""

    model: str
    path: Path
    open_questions: tuple[str, ...]


@dataclass(frozen=True)
class FilesValidation:
    """What a validation checked (one line per valid file) and every problem found, each with ``file:line``."""

    checked: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": list(self.checked), "problems": list(self.problems)}


def _problem(exc: MlopsError) -> str:
    return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")


def card_new(name: str, answers: Any = None, *, force: bool = False, settings: Settings | None = None) -> CardDraft:
    """Write ``governance/models/NAME.yaml`` from ``answers`` (a ``CardAnswers``); unanswered questions stay TODO.

    Refuses to overwrite an existing card unless ``force``. Returns the path and the open questions.
    """
    from mlops_layer.governance.cards import card_path, open_questions, parse_card
    from mlops_layer.governance.templates import CardAnswers, render_card

    cfg = _wiring.resolve(settings)
    path = card_path(cfg.cards_dir, name)
    if path.exists() and not force:
        raise InputError(f"{path} already exists", hint="edit it, or pass --force to write it afresh")
    text = render_card(name, answers or CardAnswers())
    card = parse_card(text.encode(), str(path), name)  # an answer of the wrong kind is refused before writing
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return CardDraft(name, path, tuple(open_questions(card)))


def _roles_held(cfg: Settings) -> set[str] | None:
    from mlops_layer.governance.policy import load_policy

    try:
        policy = load_policy(cfg.policy_file)
    except MlopsError:
        return None  # `mlops policy validate` reports it
    return {role for held in policy.roles.values() for role in held}


def card_validate(name: str | None = None, *, settings: Settings | None = None) -> FilesValidation:
    """Check the card of ``name`` (every card when None) in the working copy; nothing is audited.

    Problems: invalid YAML or fields, questions still marked TODO, approver roles nobody holds in policy.yaml.
    """
    from mlops_layer.governance.cards import card_path, open_questions, parse_card

    cfg = _wiring.resolve(settings)
    if name is not None:
        paths = [card_path(cfg.cards_dir, name)]
        if not paths[0].is_file():
            raise InputError(f"{paths[0]} does not exist", hint=f"write it with `mlops card new {name}`")
    else:
        paths = sorted(cfg.cards_dir.glob("*.yaml"))
        if not paths:
            raise InputError(f"no model card under {cfg.cards_dir}", hint="write one with `mlops card new NAME`")
    held = _roles_held(cfg)
    checked: list[str] = []
    problems: list[str] = []
    for path in paths:
        try:
            card = parse_card(path.read_bytes(), str(path), path.stem)
        except ConfigError as exc:
            problems.append(_problem(exc))
            continue
        found = open_questions(card)
        if held is not None:
            line = card.lines.get("approver_roles", 1)
            found += [
                f"{path}:{line}: field 'approver_roles': no principal holds role {role!r} in policy.yaml "
                "(nobody could approve)"
                for role in card.approver_roles
                if role not in held
            ]
        problems += found
        if not found:
            checked.append(f"{path} (blob {card.card_hash[:12]})")
    return FilesValidation(tuple(checked), tuple(problems))


def policy_validate(*, settings: Settings | None = None) -> FilesValidation:
    """Check ``governance/policy.yaml`` in the working copy: targets and rules, ``alerts:`` and ``drift:``.

    Each section is checked on its own, so one run reports a problem in each; nothing is audited.
    """
    from mlops_layer.api.drift import drift_config
    from mlops_layer.governance.policy import load_policy
    from mlops_layer.monitoring.alerts import load_alert_rules

    cfg = _wiring.resolve(settings)
    path = cfg.policy_file
    if not path.is_file():
        raise InputError(f"{path} does not exist", hint="`mlops init` writes a commented one")
    checked: list[str] = []
    problems: list[str] = []
    try:
        policy = load_policy(path)
        checked.append(f"{path}: targets {', '.join(sorted(policy.targets))} (blob {policy.policy_hash[:12]})")
    except ConfigError as exc:
        problems.append(_problem(exc))
        policy = None
    try:
        rules = load_alert_rules(path)
        checked.append(f"{path}: {len(rules)} alert rule(s)")
    except ConfigError as exc:
        problems.append(_problem(exc))
    try:
        drift_config(settings=cfg)
        models = _drift_models(path)
        for model in models:
            drift_config(model, settings=cfg)
        checked.append(f"{path}: drift settings" + (f" (overrides for {', '.join(models)})" if models else ""))
    except ConfigError as exc:
        problems.append(_problem(exc))
    return FilesValidation(tuple(checked), tuple(problems))


def _drift_models(path: Path) -> list[str]:
    from mlops_layer.governance.located_yaml import parse_located

    root = parse_located(path.read_bytes(), path.name)
    section = root.value.get("drift") if isinstance(root.value, dict) else None
    models = section.value.get("models") if section is not None and isinstance(section.value, dict) else None
    return sorted(models.value) if models is not None and isinstance(models.value, dict) else []


@dataclass(frozen=True)
class TrainingStatement:
    """A signed statement that ``service_account`` trains ``model`` on ``principal``'s behalf, ready to commit on the
    model card under ``training_statements:`` (``yaml`` is the text to paste)."""

    model: str
    service_account: str
    principal: str
    statement: dict[str, Any]
    signature: str
    card: Path
    warnings: tuple[str, ...] = ()

    @property
    def yaml(self) -> str:
        """The card entry, exactly as the card reader takes it back (values quoted, the signature as a block)."""
        import json

        lines = ["training_statements:", "  - statement:"]
        lines += [f"      {key}: {json.dumps(value)}" for key, value in self.statement.items()]
        lines.append("    signature: |")
        lines += [f"      {line}" for line in self.signature.strip().splitlines()]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "service_account": self.service_account,
            "principal": self.principal,
            "card": str(self.card),
            "entry": {"statement": self.statement, "signature": self.signature},
            "yaml": self.yaml,
            "warnings": list(self.warnings),
        }


def sign_training(
    model: str,
    service_account: str,
    *,
    key_path: Path | str | None = None,
    until: str | None = None,
    principal: str | None = None,
    settings: Settings | None = None,
) -> TrainingStatement:
    """Sign that ``service_account`` (a CI login) trains ``model`` on your behalf, optionally until ``until``.

    You sign as the principal the committed ``allowed_signers`` trusts your key for in namespace ``mlops-training``.
    Commit the result on the model card (``training_statements:``): from then on a version that account trained is
    attributed to you, and separation of duties excludes you and the account from approving it. Nothing is audited
    here; the statement counts once it is committed and reviewed.
    """
    from datetime import datetime, timezone

    from mlops_layer.api._trust import governance_files
    from mlops_layer.errors import ApprovalError
    from mlops_layer.governance.approvals import default_verifier
    from mlops_layer.governance.cards import card_path, validate_model_name
    from mlops_layer.governance.identity import TRAINING_NAMESPACE, principal_for_key, sign_identity
    from mlops_layer.governance.principals import (
        Principals,
        normalize_until,
        principal_problem,
        resolve_trainer,
        training_statement,
    )

    cfg = _wiring.resolve(settings)
    validate_model_name(model)
    problem = principal_problem(service_account)
    if problem is not None:
        raise InputError(f"--service-account {service_account!r} {problem}")
    key = Path(key_path).expanduser() if key_path else cfg.signing_key
    if key is None:
        raise InputError("no signing key", hint="pass --key PATH (or set MLOPS_SIGNING_KEY / signing_key)")
    expires = normalize_until(until) if until else None
    files = governance_files(cfg)  # the committed signers and policy: who you are is decided by reviewed git
    signer = principal_for_key(files.allowed_signers, key, TRAINING_NAMESPACE, principal)
    accounts = files.policy.principals
    if accounts.is_service_account(signer):
        raise InputError(
            f"{signer} is itself a service account in {cfg.policy_file}",
            hint="the statement is signed by the person the account trains for",
        )
    warnings = tuple(files.warnings)
    account = accounts.mapping.get(service_account, service_account)
    if not accounts.is_service_account(account):
        warnings += (
            f"{service_account!r} is not listed under 'service_accounts:' in the committed {cfg.policy_file.name}: "
            "the statement has no effect until it is",
        )
    now = datetime.now(timezone.utc)
    statement = training_statement(signer, account, model, expires, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    proof = sign_identity(statement, key, TRAINING_NAMESPACE)
    check = resolve_trainer(
        account, model, Principals(service_accounts=(account,)), [proof], files.allowed_signers, default_verifier(), now
    )
    if check.principal != signer:
        raise ApprovalError(f"the new training statement does not verify: {check.problem}")
    return TrainingStatement(
        model=model,
        service_account=account,
        principal=signer,
        statement=dict(statement),
        signature=str(proof["signature"]),
        card=card_path(cfg.cards_dir, model),
        warnings=warnings,
    )
