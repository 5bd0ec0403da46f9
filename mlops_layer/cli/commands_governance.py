"""Governance commands: ``mlops card show``, ``check``, ``approve``, ``reject``, ``withdraw``, ``promote``, ``rollback``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlops_layer.cli.app import app, new_app
from mlops_layer.cli.options import json_option
from mlops_layer.cli.render import console, ok_mark, print_json, table

TO_HELP = "The target alias, e.g. staging or champion (a target of governance/policy.yaml)."

card_app = new_app("Model cards: the governance metadata of a model (governance/models/NAME.yaml).")
app.add_typer(card_app, name="card")


def _cell(value: Any) -> str:
    """A compact, readable cell: ``key: value; ...`` for mappings, comma lists, 6 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        text = "; ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_cell(v) for v in value) or "none"
    else:
        text = str(value)
    return text if len(text) <= 90 else text[:87] + "..."


def _render_decision(decision: Any, *, title: str) -> None:
    rows = [(ok_mark(r.passed), r.name, _cell(r.observed), _cell(r.expected), r.message) for r in decision.rules]
    console.print(table(title, ["", "rule", "observed", "expected", "message"], rows, show_lines=False))
    verdict = "[bold green]ALLOWED[/]" if decision.allowed else "[bold red]REFUSED[/]"
    seq = f"  audit #{decision.audit_seq}" if decision.audit_seq is not None else ""
    console.print(f"{verdict}  policy {decision.policy_hash[:12]}{seq}")


def _decision_json(decision: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = decision.to_dict()
    body.update(extra or {})
    return body


@card_app.command("show")
def card_show_cmd(
    name: str = typer.Argument(..., help="Registered model name (the card is governance/models/NAME.yaml)."),
    json_out: bool = json_option(),
) -> None:
    """Show the model card of NAME: owner, use, SLA, retraining, approvers, sensitivity, stakeholders.

    Example: mlops card show credit-risk
    """
    from mlops_layer import api

    card = api.card_show(name)
    if json_out:
        print_json(card)
        return
    rows = [
        ("business owner", card.business_owner),
        ("intended use", card.intended_use),
        ("intended users", ", ".join(card.intended_users)),
        ("predictions consumed", card.prediction_consumption),
        (
            "SLA",
            f"{card.sla.availability_percent:g}% available"
            + (f", p95 <= {card.sla.max_latency_ms:g} ms" if card.sla.max_latency_ms is not None else "")
            + (f", support {card.sla.support_hours}" if card.sla.support_hours else ""),
        ),
        ("retraining", f"{card.retraining.method}, {card.retraining.cadence}"),
        ("approver roles", ", ".join(card.approver_roles)),
        ("sensitivity", card.sensitivity),
        ("code shareable", "yes" if card.code_shareable else "no"),
        ("reuse notes", card.reuse_notes or "–"),
        (
            "stakeholders",
            "; ".join(f"{s.name} ({', '.join(f'{c.kind}: {c.target}' for c in s.channels)})" for s in card.stakeholders)
            or "–",
        ),
    ]
    console.print(table(f"model card: {card.name}", ["field", "value"], rows))
    console.print(f"[dim]{card.path}  blob {card.card_hash[:12]}[/]")


@app.command("check")
def check_cmd(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Model version number."),
    to: str = typer.Option(..., "--to", help=TO_HELP),
    json_out: bool = json_option(),
) -> None:
    """Evaluate the promotion policy for VERSION -> ALIAS without acting; every rule with observed/expected.

    Exit 1 when the policy would refuse.

    Example: mlops check credit-risk 4 --to champion --json
    """
    from mlops_layer import api

    decision = api.check(name, version, to)
    if json_out:
        print_json(_decision_json(decision))
    else:
        _render_decision(decision, title=f"check {name} v{version} -> @{to}")
    if not decision.allowed:
        raise typer.Exit(1)


@app.command("promote")
def promote_cmd(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Model version number."),
    to: str = typer.Option(..., "--to", help=TO_HELP),
    json_out: bool = json_option(),
) -> None:
    """Move ALIAS to VERSION only if every rule of the policy passes; the decision is audited either way.

    Exit 1 when refused (nothing moves).

    Example: mlops promote credit-risk 4 --to champion
    """
    from mlops_layer import api

    result = api.promote(name, version, to)
    _render_move(result, json_out, title=f"promote {name} v{version} -> @{to}")


@app.command("rollback")
def rollback_cmd(
    name: str = typer.Argument(..., help="Registered model name."),
    to: str = typer.Option(..., "--to", help="The alias to return to its previous holder."),
    json_out: bool = json_option(),
) -> None:
    """Return ALIAS to the version that held it before (from the audit trail); audited.

    The policy's `rollback: {requires_approvals: N}` says whether signed approvals are needed.

    Example: mlops rollback credit-risk --to champion
    """
    from mlops_layer import api

    result = api.rollback(name, to)
    _render_move(result, json_out, title=f"rollback {name} @{to}")


def _render_move(result: Any, json_out: bool, *, title: str) -> None:
    if json_out:
        print_json(result.to_dict())
    else:
        _render_decision(result.decision, title=title)
        d = result.decision
        if result.moved:
            before = f"v{result.previous}" if result.previous else "(unset)"
            console.print(f"@{d.target}: {before} -> v{result.current}  (completion audit #{result.completion_seq})")
        elif d.allowed:
            console.print(f"@{d.target} already points at v{result.current}; nothing moved")
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
    if not result.allowed:
        raise typer.Exit(1)


def _approval_command(reject: bool) -> Any:
    def command(
        name: str = typer.Argument(..., help="Registered model name."),
        version: str = typer.Argument(..., help="Model version number."),
        to: str = typer.Option(..., "--to", help=TO_HELP),
        key: Path = typer.Option(
            ..., "--key", help="Your SSH private key (its public half must be in governance/allowed_signers)."
        ),
        comment: str = typer.Option(None, "--comment", help="Why: kept in the signed statement and the trail."),
        principal: str = typer.Option(
            None, "--as", help="The principal to sign as, when your key is trusted for several."
        ),
        for_rollback: bool = typer.Option(
            False, "--rollback", help="Approve rolling ALIAS back to VERSION (not a promotion)."
        ),
        json_out: bool = json_option(),
    ) -> None:
        from mlops_layer import api

        approval = api.approve(
            name,
            version,
            to,
            key_path=key,
            comment=comment,
            reject=reject,
            principal=principal,
            action="rollback" if for_rollback else "promote",
        )
        if json_out:
            print_json(approval.to_dict())
            return
        st = approval.statement
        verb = "[red]rejected[/]" if reject else "[green]approved[/]"
        console.print(
            f"{st.approver} {verb} {st.action} of {st.model} v{st.version} -> @{st.target} "
            f"(signed, audit #{approval.audit_seq})"
        )

    return command


_approve = _approval_command(False)
_approve.__doc__ = """Sign an approval of VERSION for ALIAS with your SSH key; stored in the audit trail.

    Only keys in governance/allowed_signers count, and only for roles policy.yaml gives their principal.

    Example: mlops approve credit-risk 4 --to champion --key ~/.ssh/id_ed25519 --comment "reviewed report"
    """
_reject = _approval_command(True)
_reject.__doc__ = """Sign a rejection of VERSION for ALIAS with your SSH key: it blocks promotion until you approve.

    Example: mlops reject credit-risk 4 --to champion --key ~/.ssh/id_ed25519 --comment "bias on age"
    """
app.command("approve")(_approve)
app.command("reject")(_reject)


@app.command("withdraw")
def withdraw_cmd(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Model version number."),
    to: str = typer.Option(..., "--to", help=TO_HELP),
    key: Path = typer.Option(..., "--key", help="The SSH private key you signed your approval (or rejection) with."),
    comment: str = typer.Option(None, "--comment", help="Why: kept in the signed withdrawal and the trail."),
    principal: str = typer.Option(None, "--as", help="The principal to sign as, when your key is trusted for several."),
    for_rollback: bool = typer.Option(False, "--rollback", help="Withdraw a rollback approval (not a promotion's)."),
    json_out: bool = json_option(),
) -> None:
    """Withdraw your approval (or rejection) of VERSION for ALIAS with a signed withdrawal; audited.

    From then on your earlier decision no longer counts; a later `mlops approve` counts again.

    Example: mlops withdraw credit-risk 4 --to champion --key ~/.ssh/id_ed25519 --comment "new evidence"
    """
    from mlops_layer import api

    withdrawal = api.withdraw_approval(
        name,
        version,
        to,
        key_path=key,
        comment=comment,
        principal=principal,
        action="rollback" if for_rollback else "promote",
    )
    if json_out:
        print_json(withdrawal.to_dict())
        return
    st = withdrawal.statement
    console.print(
        f"{st.approver} [yellow]withdrew[/] their decision on the {st.action} of {st.model} v{st.version} -> "
        f"@{st.target} (signed, audit #{withdrawal.audit_seq})"
    )
