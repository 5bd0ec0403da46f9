"""Core commands: ``mlops init``, ``mlops status``, ``mlops lineage``, ``mlops migrate``."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops_layer.cli.app import app
from mlops_layer.cli.options import json_option
from mlops_layer.cli.render import console, print_json, table


@app.command("init")
def init_cmd(
    path: Path = typer.Argument(Path("."), help="A folder inside the git repository to set up."),
    json_out: bool = json_option(),
) -> None:
    """Scaffold mlops.yaml and governance/ in an existing git repository and run `dvc init` where needed.

    Existing files are never overwritten.

    Example: mlops init
    """
    from mlops_layer import api

    result = api.init(path)
    if json_out:
        print_json(result)
        return
    for rel in result.created:
        console.print(f"[green]created[/] {rel}")
    for rel in result.kept:
        console.print(f"[dim]kept[/]    {rel} (already there)")
    if result.dvc_initialised:
        console.print("[green]ran[/]     dvc init")
    console.print(f"Project ready at {result.root}. Next: edit governance/policy.yaml, then `dvc repro`.")


@app.command("status")
def status_cmd(
    name: str = typer.Argument(None, help="Only this registered model (default: all)."),
    json_out: bool = json_option(),
) -> None:
    """Registered models with their versions, aliases and governance state, and the audit trail's head.

    Example: mlops status breast-cancer-classifier --json
    """
    from mlops_layer import api

    report = api.status(name)
    if json_out:
        print_json(report)
        return
    console.print(f"MLflow: {report.tracking_uri}")
    if not report.models:
        console.print("No registered models yet. Run the pipeline (`dvc repro`) to register one.")
    for model in report.models:
        aliases = ", ".join(f"@{a}→v{v}" for a, v in sorted(model.aliases.items())) or "no aliases"
        if model.open_alerts:
            aliases += f"; [red]open alerts: {', '.join(model.open_alerts)}[/]"
        if model.pending_approvals:
            aliases += f"; [yellow]waiting: {'; '.join(model.pending_approvals)}[/]"
        if model.ungoverned_aliases:
            aliases += f"; [red]moved outside governance: {'; '.join(model.ungoverned_aliases)}[/]"
        rows = [
            (
                v.version,
                ", ".join(f"@{a}" for a in v.aliases),
                (v.git_commit or "")[:10],
                v.run_id or "",
                ", ".join(f"{k}: {val}" for k, val in sorted(v.decision.items())),
                v.drift or "",
                v.created or "",
            )
            for v in model.versions
        ]
        console.print(
            table(
                f"{model.name}  ({aliases})",
                ["version", "aliases", "commit", "run", "decisions", "drift", "created"],
                rows,
            )
        )
    audit = report.audit
    if "error" in audit:
        console.print(f"[red]audit trail:[/] {audit['error']}")
    else:
        console.print(f"Audit trail: {audit.get('size', 0)} entries, head {str(audit.get('head', ''))[:16]}…")


@app.command("lineage")
def lineage_cmd(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number or alias."),
    json_out: bool = json_option(),
) -> None:
    """Where a model version came from: git commit, DVC data hashes, params, run, parent and ancestry.

    Example: mlops lineage breast-cancer-classifier 1 --json
    """
    from mlops_layer import api

    report = api.lineage(name, version)
    if json_out:
        print_json(report.to_dict())
        return
    lin = report.lineage
    dirty = "[red]dirty[/]" if lin.git_dirty else "[green]clean[/]"
    console.print(
        f"[bold]{report.model} v{report.version}[/]  run {report.run_id}  {' '.join('@' + a for a in report.aliases)}"
    )
    console.print(f"git     {lin.git_commit} ({lin.git_branch or 'detached'}, {dirty})")
    if lin.git_remote:
        console.print(f"remote  {lin.git_remote}")
    console.print(
        table(
            "data (as dvc.lock records it)",
            ["role", "path", "md5", "size"],
            [(d.role, d.path, d.md5, d.size) for d in lin.data],
        )
    )
    console.print(table("params", ["name", "value"], sorted(lin.params.items())))
    if report.ancestry:
        chain = " ← ".join(f"{a['model']} v{a['version']}" for a in report.ancestry)
        console.print(f"ancestry  {report.model} v{report.version} ← {chain}")
    if report.audit_seq:
        console.print(f"audit entry #{report.audit_seq}")


@app.command("migrate")
def migrate_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be recorded; append nothing."),
    json_out: bool = json_option(),
) -> None:
    """Record a frozen metrics snapshot (audited) for versions registered before snapshots existed.

    Until then the metric rules refuse such a version, naming what it lacks. Against a governing server the server
    does it (MLflow admins only), digests computed from its own artifact store. Example: mlops migrate --dry-run
    """
    from mlops_layer import api

    report = api.migrate(dry_run=dry_run)
    if json_out:
        print_json(report.to_dict())
        return
    verb = "would record" if dry_run else "recorded"
    for item in report.recorded:
        console.print(
            f"{verb} a snapshot of {item['model']} v{item['version']}"
            + (f" (audit #{item['audit_seq']})" if "audit_seq" in item else "")
        )
    for note in report.skipped:
        console.print(f"[yellow]skipped:[/] {note}")
    if not report.recorded and not report.skipped:
        console.print("every registered version already has its snapshot")
