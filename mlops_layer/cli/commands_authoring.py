"""Writing and checking governance files in the working copy: ``mlops card new|validate``, ``mlops policy validate``.

Validation reads the files as they are on disk (what you are about to commit), writes nothing to the audit trail,
and exits 2 with ``file:line`` for every problem, so it fits CI and pre-commit hooks.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from mlops_layer.cli.app import app, new_app
from mlops_layer.cli.commands_governance import card_app
from mlops_layer.cli.options import json_option
from mlops_layer.cli.render import console, err_console, ok_mark, print_json

policy_app = new_app("The promotion policy (governance/policy.yaml): check it before committing.")
app.add_typer(policy_app, name="policy")


def _stakeholder(text: str) -> tuple[str, str]:
    """``Ops <ops@example.com>`` or ``ops@example.com`` or ``https://hooks...`` -> (name, channel)."""
    if "<" in text and text.rstrip().endswith(">"):
        name, _, rest = text.partition("<")
        return name.strip() or rest.rstrip(">").strip(), rest.rstrip().rstrip(">").strip()
    return text.strip(), text.strip()


@card_app.command("new")
def card_new_cmd(
    name: str = typer.Argument(..., help="The model's registered name (the card becomes governance/models/NAME.yaml)."),
    owner: str = typer.Option(None, "--owner", help="Business owner: who answers for the model's outcome."),
    use: str = typer.Option(None, "--use", help="Intended use: what it decides, and what it must not be used for."),
    users: list[str] = typer.Option([], "--user", help="An intended user group (repeat for several)."),
    consumption: str = typer.Option(None, "--consumption", help="How predictions are consumed (batch, API ...)."),
    availability: float = typer.Option(None, "--availability", help="SLA: availability in percent, e.g. 99.5."),
    latency_ms: float = typer.Option(None, "--latency-ms", help="SLA: maximum latency in milliseconds."),
    support_hours: str = typer.Option(None, "--support-hours", help="SLA: support hours, e.g. 'business hours'."),
    retraining: str = typer.Option(
        None, "--retraining", help="Retraining method: manual, scheduled, drift-triggered, performance-triggered."
    ),
    cadence: str = typer.Option(None, "--cadence", help="Retraining cadence, e.g. monthly or 14d."),
    approver_roles: list[str] = typer.Option(
        [], "--approver-role", help="A role of policy.yaml whose signed approval decides promotion (repeatable)."
    ),
    sensitivity: str = typer.Option(None, "--sensitivity", help="public, internal, confidential or restricted."),
    code_shareable: bool = typer.Option(
        None, "--code-shareable/--code-private", help="May the training code be shared beyond the team?"
    ),
    reuse: str = typer.Option(None, "--reuse", help="Reuse notes: where the model may be reused, on what terms."),
    stakeholders: list[str] = typer.Option(
        [], "--stakeholder", help="Who to alert: 'Name <email or https URL>' (repeatable)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing card."),
    json_out: bool = json_option(),
) -> None:
    """Write the model card of NAME, answering the governance questions you give; the others stay TODO.

    Unanswered questions are marked `TODO:` in the file; they fail `mlops card validate` and the policy's
    card_fields rule until you answer them. Commit the card once it validates.

    Example: mlops card new churn --owner ann@example.com --use "retention offers; not pricing" --user retention
    --availability 99.5 --retraining drift-triggered --cadence monthly --approver-role model-risk
    --sensitivity internal --code-private --stakeholder "Ops <ops@example.com>"
    """
    from mlops_layer import api
    from mlops_layer.governance.templates import CardAnswers

    answers = CardAnswers(
        owner=owner,
        use=use,
        users=tuple(users),
        consumption=consumption,
        availability_percent=availability,
        max_latency_ms=latency_ms,
        support_hours=support_hours,
        retraining_method=retraining,
        cadence=cadence,
        approver_roles=tuple(approver_roles),
        sensitivity=sensitivity,
        code_shareable=code_shareable,
        reuse_notes=reuse,
        stakeholders=tuple(_stakeholder(s) for s in stakeholders),
    )
    draft = api.card_new(name, answers, force=force)
    if json_out:
        print_json(draft)
        return
    console.print(f"{ok_mark(True)} wrote {draft.path}")
    if draft.open_questions:
        console.print(f"{len(draft.open_questions)} question(s) still to answer (marked TODO):")
        for problem in draft.open_questions:
            console.print(f"  {problem}")
    else:
        console.print("every question is answered; commit it: git add " + str(draft.path))


def _report(report: Any, json_out: bool, what: str) -> None:
    if json_out:
        print_json(report)
    else:
        for line in report.checked:
            console.print(f"{ok_mark(True)} {line}")
        for problem in report.problems:
            err_console.print(f"[bold red]error:[/] {problem}", soft_wrap=True)
        if report.ok:
            console.print(f"{what}: valid (working copy; nothing recorded)")
    if not report.ok:
        raise typer.Exit(2)


@card_app.command("validate")
def card_validate_cmd(
    name: str = typer.Argument(
        None, help="The model whose card to check; every card under governance/models if left out."
    ),
    json_out: bool = json_option(),
) -> None:
    """Check model cards as they are in the working copy: syntax, fields, open TODO questions (exit 2, file:line).

    Nothing is written to the audit trail (promotion records a card's content when it is used).
    Use it in CI and pre-commit hooks.

    Example: mlops card validate churn
    """
    from mlops_layer import api

    _report(api.card_validate(name), json_out, "model card" + (f" of {name}" if name else "s"))


@policy_app.command("validate")
def policy_validate_cmd(json_out: bool = json_option()) -> None:
    """Check governance/policy.yaml as it is in the working copy: targets and rules, drift: and alerts: (exit 2).

    Every problem is reported with file:line. Nothing is written to the audit trail. Use it in CI and pre-commit.

    Example: mlops policy validate --json
    """
    from mlops_layer import api

    _report(api.policy_validate(), json_out, "policy")


@app.command("sign-training")
def sign_training_cmd(
    model: str = typer.Option(..., "--model", help="The registered model the service account trains."),
    service_account: str = typer.Option(
        ..., "--service-account", help="The CI login that trains it (listed under service_accounts: in policy.yaml)."
    ),
    key: str = typer.Option(
        None, "--key", help="Your private key (SSH or Ed25519) trusted in allowed_signers; default MLOPS_SIGNING_KEY."
    ),
    until: str = typer.Option(None, "--until", help="Expiry: YYYY-MM-DD (end of that day, UTC) or an ISO time."),
    principal: str = typer.Option(
        None, "--as", help="The principal you sign as, when your key is trusted for several."
    ),
    json_out: bool = json_option(),
) -> None:
    """Sign that a service account trains MODEL on your behalf; prints the entry to commit on the model card.

    Paste the printed `training_statements:` entry into governance/models/MODEL.yaml and commit it (reviewed like
    any governance change). A version the account trains is then attributed to you, and neither you nor the
    account may approve it.

    Example: mlops sign-training --model churn --service-account ci-bot --key ~/.ssh/id_ed25519 --until 2027-06-30
    """
    from mlops_layer import api

    signed = api.sign_training(model, service_account, key_path=key, until=until, principal=principal)
    if json_out:
        print_json(signed)
        return
    for warning in signed.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    err_console.print(
        f"{ok_mark(True)} signed as {signed.principal}: {signed.service_account} trains {signed.model} on your behalf; "
        f"add this under training_statements: in {signed.card} and commit it"
    )
    sys.stdout.write(signed.yaml)
