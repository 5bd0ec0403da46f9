"""Monitoring commands: ``mlops monitor`` (score a production batch) and ``mlops alerts status|ack|resolve|flush``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlops_layer.cli.app import app, new_app
from mlops_layer.cli.options import json_option
from mlops_layer.cli.render import console, ok_mark, print_json, table
from mlops_layer.errors import InputError

alerts_app = new_app("Alert state of monitored models and queued notifications.")
app.add_typer(alerts_app, name="alerts")


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("monitor")
def monitor_cmd(
    ref: str = typer.Argument(..., metavar="NAME@ALIAS", help="The serving model, e.g. churn@champion."),
    batch: Path = typer.Option(..., "--batch", "-b", help="The production batch: a CSV or Parquet file."),
    labels: str = typer.Option(
        None, "--labels", help="Column of the batch holding the true outcomes (enables metric alerts)."
    ),
    report: Path = typer.Option(None, "--report", help="Link this Evidently report (HTML) as the alert evidence."),
    fail_on_alert: bool = typer.Option(
        False, "--fail-on-alert", help="Exit 1 when an alert is open after this batch (for schedulers)."
    ),
    every: str = typer.Option(
        None,
        "--every",
        help="Split a file spanning several periods on the card's timestamp column: 1d, 6h, 30min, 1w.",
    ),
    json_out: bool = json_option(),
) -> None:
    """Score a production batch against the serving version: drift, predictions and, with labels, its metrics.

    The batch becomes a point in time in the MLflow experiment monitoring/<model> and an audit entry; the alert
    rules of governance/policy.yaml run, and the model card's stakeholders are told when an alert fires or clears.
    The card's columns: section names the label, id and timestamp columns; with a timestamp the batch is placed at
    its data time, and --every monitors each period of the file as its own batch, oldest first.

    Example: mlops monitor churn@champion --batch batches/2025-03-01.csv --labels churned --json
    Example: mlops monitor churn@champion --batch backfill-march.csv --every 1d
    """
    from mlops_layer import api

    if every is not None:
        if report is not None:
            raise InputError("--report names one file; it cannot be combined with --every")
        results = api.monitor_every(ref, batch, every, labels=labels)
        if json_out:
            print_json([r.to_dict() for r in results])
        else:
            for result in results:
                _render(result)
        if fail_on_alert and results and results[-1].open_alerts:
            raise typer.Exit(1)
        return
    result = api.monitor(ref, batch, labels=labels, report=report)
    if json_out:
        print_json(result.to_dict())  # to_dict: rule assessments under "rules", webhook URLs redacted
    else:
        _render(result)
    if fail_on_alert and result.open_alerts:
        raise typer.Exit(1)


def _render(result: Any) -> None:
    where = f"{result.model}@{result.alias}" if result.alias else result.model
    console.print(f"[bold]{where}[/] v{result.version} · batch #{result.seq} · {result.rows} rows · {result.timestamp}")
    if result.time_range:
        span = f"data {result.time_range['start']} .. {result.time_range['end']}"
        console.print(span + (" [yellow](backfill: alert state unchanged)[/]" if result.backfill else ""))
    if result.drift_share is not None:
        cols = ", ".join(result.drifted_columns[:8]) + (" ..." if len(result.drifted_columns) > 8 else "")
        console.print(f"drift share {result.drift_share:.2f}" + (f" (drifted: {cols})" if cols else ""))
    if result.metrics:
        metric_rows = [(k, _num(v), _num(result.promoted.get(k))) for k, v in sorted(result.metrics.items())]
        console.print(table("metrics on labels", ["metric", "batch", "promoted"], metric_rows))
    if result.assessments:
        rows = [
            (
                ok_mark(None if a.breached is None else not a.breached),
                a.rule,
                _num(a.observed),
                _num(a.threshold),
                a.message,
            )
            for a in result.assessments
        ]
        console.print(table("alert rules", ["", "rule", "observed", "threshold", "detail"], rows))
    for event in result.events:
        colour = "red" if event.kind == "fired" else "green"
        console.print(f"[{colour}]{event.title}[/] {event.message}")
    for d in result.deliveries:
        state = "[green]sent[/]" if d.ok else "[dim]skipped[/]" if d.skipped else "[red]failed, queued[/]"
        console.print(f"  {state} {d.channel} {d.to_dict()['target']} {d.recipient} {d.error or ''}".rstrip())
    if result.open_alerts:
        console.print(f"open alerts: {', '.join(result.open_alerts)}")
    console.print(f"[dim]MLflow: {result.run_url} (step {result.seq}) · audit #{result.audit_seq}[/]")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


@alerts_app.command("status")
def alerts_status_cmd(
    name: str = typer.Argument(..., help="The monitored model."),
    json_out: bool = json_option(),
) -> None:
    """Where the alerts of a model stand: open alerts, each rule's last assessment, queued notifications.

    Example: mlops alerts status churn --json
    """
    from mlops_layer import api

    status = api.alert_status(name)
    if json_out:
        print_json(status)
        return
    rows = [
        (
            r["rule"],
            r["status"] + (f" · acked by {r['acked_by']}" if r.get("acked_by") else ""),
            r["fired_at"] or "",
            r["suppressed"],
            (r["last"] or {}).get("message", ""),
            "" if r["configured"] else "no longer in the policy",
        )
        for r in status.rules
    ]
    console.print(
        table(
            f"{status.model}: {status.last_batch} batches monitored",
            ["rule", "status", "fired at", "suppressed", "last batch", ""],
            rows,
        )
    )
    console.print(f"queued notifications: {status.queued_notifications}")


def _alert_change(action: str) -> Any:
    def command(
        name: str = typer.Argument(..., help="The monitored model."),
        alert: str = typer.Argument(..., help="The open alert: its rule name (e.g. data-drift) or its alert id."),
        comment: str = typer.Option(
            "" if action == "ack" else ..., "--comment", "-m", help="What is being done, or why it is resolved."
        ),
        json_out: bool = json_option(),
    ) -> None:
        from mlops_layer import api

        change = (api.alert_ack if action == "ack" else api.alert_resolve)(name, alert, comment=comment)
        if json_out:
            print_json(change.to_dict())
            return
        e = change.event
        verb = "acknowledged (still open)" if action == "ack" else "resolved (closed)"
        console.print(f"{e.model} v{e.version}: {e.rule} {verb} · {e.alert_id} · audit #{change.audit_seq}")

    return command


_ack = _alert_change("ack")
_ack.__doc__ = """Acknowledge an open alert: it stays open, marked with who, when and your comment; audited.

    Example: mlops alerts ack churn data-drift --comment "upstream feed fixed, watching the next batches"
    """
_resolve = _alert_change("resolve")
_resolve.__doc__ = """Resolve an open alert now (the cause is fixed): it closes, audited, and may fire again later.

    Alerts also close by themselves after `clear_after` healthy batches, and when the alias they were raised on
    moves to another version (closed as superseded, with the reason).

    Example: mlops alerts resolve churn data-drift --comment "retrained as v3"
    """
alerts_app.command("ack")(_ack)
alerts_app.command("resolve")(_resolve)


@alerts_app.command("flush")
def alerts_flush_cmd(json_out: bool = json_option()) -> None:
    """Retry the notifications that could not be delivered (they wait in the outbox under .mlops/monitoring).

    Example: mlops alerts flush
    """
    from mlops_layer import api

    result = api.flush_notifications()
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"delivered {len(result.delivered)}, still failing {len(result.still_failed)}")
    for d in result.still_failed:
        console.print(f"  [red]failed[/] {d.channel} {d.to_dict()['target']}: {d.error}")
