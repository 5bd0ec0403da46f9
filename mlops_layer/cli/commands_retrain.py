"""``mlops retrain``: new labelled data -> new DVC data version -> pipeline -> challenger -> the same policy."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops_layer.cli.app import app
from mlops_layer.cli.options import json_option
from mlops_layer.cli.render import console, ok_mark, print_json, table


@app.command("retrain")
def retrain_cmd(
    name: str = typer.Argument(..., help="Registered model name."),
    data: Path = typer.Option(
        None, "--data", help="A new labelled batch (CSV with the training columns and labels) to add as a data version."
    ),
    if_needed: bool = typer.Option(
        False, "--if-needed", help="Only retrain when an alert is open or the model card's cadence is due."
    ),
    to: str = typer.Option("champion", "--to", help="The alias the challenger is sent to, through the policy."),
    data_dir: str = typer.Option("data/raw", "--data-dir", help="The DVC-tracked folder the pipeline trains from."),
    no_commit: bool = typer.Option(
        False, "--no-commit", help="Leave dvc.lock, metrics and outputs uncommitted; print exactly what is left."
    ),
    json_out: bool = json_option(),
) -> None:
    """Retrain a model and send the challenger through the promotion policy.

    The new batch is committed as a new DVC data version, `dvc repro` registers a challenger with full lineage, and
    the challenger is promoted where the policy allows it automatically; otherwise it waits for signed approvals and
    the approvers are notified. A failure midway leaves every alias untouched and is audited. Two retrains of one
    model never run at once: the second says so and exits. What `dvc repro` wrote (dvc.lock, metrics, outputs
    tracked by git) is committed in a second commit naming the retraining and the new version, unless --no-commit.

    Example: mlops retrain breast-cancer-classifier --data new-labels.csv --if-needed
    """
    from mlops_layer import api

    with console.status("retraining…", spinner="dots") as status:
        result = api.retrain(
            name,
            data=data,
            if_needed=if_needed,
            to=to,
            data_dir=data_dir,
            commit=not no_commit,
            progress=lambda step: status.update(step),
        )
    if json_out:
        print_json(result.to_dict())
        return
    if not result.ran:
        console.print(f"{name}: {result.reasons[0]}")
        return
    console.print(f"[bold]{name}[/]: retrained because {'; '.join(result.reasons)}")
    if result.data_version:
        console.print(f"new data version: {result.data_version}")
    console.print(
        f"challenger: v{result.version}; promoted to: {', '.join('@' + t for t in result.promoted_to) or 'none'}"
    )
    if result.commit:
        console.print(f"committed {', '.join(result.committed)} as {result.commit[:12]}")
    if result.left_to_commit:
        console.print("left to commit (git add + git commit):")
        for path in result.left_to_commit:
            console.print(f"  {path}")
    decision = result.decision
    if result.waiting_for_approval and decision is not None:
        rows = [(ok_mark(r.passed), r.name, r.observed, r.expected, r.message) for r in decision.rules]
        console.print(table(f"waiting for @{decision.target}", ["", "rule", "observed", "expected", "message"], rows))
        if result.notified:
            console.print(f"notified: {', '.join(result.notified)}")
