"""``mlops report [NAME]``: static HTML pages for people (one per model, and the inventory)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops_layer.cli.app import app
from mlops_layer.cli.options import json_option
from mlops_layer.cli.render import console, ok_mark, print_json


@app.command("report")
def report_cmd(
    name: str = typer.Argument(None, help="Registered model name; omit it to write the inventory and every page."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for the HTML pages (default: reports/ at the root)."),
    no_mlflow: bool = typer.Option(
        False, "--no-mlflow", help="Do not log the pages as MLflow artifacts (they are still written to --out)."
    ),
    json_out: bool = json_option("Print what was written as JSON."),
) -> None:
    """Write self-contained HTML reports: a model's card, versions, lineage, decisions, approvals, drift and
    monitoring charts, open alerts and the audit head; without NAME, the inventory of every model too.

    Example: mlops report churn --out reports/
    """
    from mlops_layer import api
    from mlops_layer.api.report import REPORT_ARTIFACT_DIR

    result = api.report(name, out=out, log_to_mlflow=not no_mlflow)
    if json_out:
        print_json(result.to_dict())
        return
    for page in result.pages:
        console.print(f"{ok_mark(True)} wrote {page}")
    if result.index is not None:
        console.print(f"open {result.index.resolve().as_uri()}")
    if result.mlflow_run_id:
        console.print(f"logged to MLflow run {result.mlflow_run_id} (artifacts under {REPORT_ARTIFACT_DIR})")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
