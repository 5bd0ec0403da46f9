"""Drift command: ``mlops drift`` checks a batch against a model version's reference profile or a reference file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from mlops_layer.cli.app import app
from mlops_layer.cli.options import json_option
from mlops_layer.cli.render import console, err_console, ok_mark, print_json


def _names(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A transient progress bar on stderr (only on a terminal): phases as a spinner, columns as a bar."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("drift check", total=None)

        def update(message: str, done: int | None, total: int | None) -> None:
            bar.update(task, description=message, completed=done or 0, total=total)

        yield update


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


@app.command("drift")
def drift_cmd(
    ref: str = typer.Argument(
        None,
        metavar="[NAME[@ALIAS|/VERSION]]",
        help="The model version whose reference profile to compare against (bare NAME = newest version). "
        "Optional with --reference.",
    ),
    current: Path = typer.Option(
        ...,
        "--current",
        "-c",
        help="The batch to check: a CSV or Parquet file, a folder of Parquet files, or (--engine spark) a table name.",
    ),
    reference: Path = typer.Option(
        None,
        "--reference",
        "-r",
        help="Compare against this CSV/Parquet file instead of the version's logged profile (profiled on the fly).",
    ),
    columns: str = typer.Option(None, "--columns", help="Only these columns, comma-separated (e.g. age,income)."),
    exclude: str = typer.Option(
        None, "--exclude", help="Leave out these columns, comma-separated: ids and timestamps are not features."
    ),
    prediction: str = typer.Option(
        None, "--prediction-column", help="Column holding the model's predictions: its drift is reported apart."
    ),
    report: Path = typer.Option(
        None, "--report", help="Also write Evidently's HTML drift report here (same methods and thresholds)."
    ),
    no_log: bool = typer.Option(
        False, "--no-log", help="Do not record the result (MLflow run, version tags, audit entry) of a model check."
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="How to read the batch: memory (pandas), stream (Arrow record batches, bounded memory), spark "
        "(partial aggregates per partition), or auto: stream folders and Parquet files over 512 MiB, else memory.",
    ),
    spark_master: str = typer.Option(
        None,
        "--spark-master",
        help="Spark master URL for --engine spark (default: SPARK_MASTER, spark-defaults.conf, else local[2]).",
    ),
    json_out: bool = json_option(),
) -> None:
    """Check a batch for drift: schema first, then per-column statistics against the reference. Exit 1 on breach.

    Numeric columns use normalised Wasserstein (or PSI on the reference's quantile bins), categorical ones
    Jensen-Shannon distance; batches of at most 1,000 rows also need a corrected significance test. Methods and
    thresholds come from the drift: section of governance/policy.yaml. Checks of a model version are logged to
    MLflow and the audit trail (the drift_passed promotion rule reads them).

    Batches beyond memory: a folder of Parquet files (or --engine stream) is read one Arrow record batch at a time
    into mergeable aggregates; --engine spark computes them per partition on Spark. Scores beyond 65,536 rows are
    then approximate within a stated bound, and a column within that bound of its threshold is marked.

    Example: mlops drift churn@champion --current batches/today.parquet --exclude id,ts --report drift.html

    Example: mlops drift churn@champion --current logs/2026-12-01/ --engine stream
    """
    from mlops_layer import api

    with _progress(not json_out) as update:
        result = api.drift_check(
            ref,
            current,
            reference=reference,
            columns=_names(columns),
            exclude=_names(exclude),
            report=report,
            prediction_column=prediction,
            log=not no_log,
            progress=update,
            engine=engine,
            spark_master=spark_master,
        )
    if json_out:
        print_json(result.to_dict())
    else:
        _render(result)
    if not result.passed:
        raise typer.Exit(1)


def _render(result: Any) -> None:
    import re

    subject = f"{result.model} v{result.version}" if result.model else "ad hoc check"
    reference = re.sub(r"(sha256:[0-9a-f]{12})[0-9a-f]+", r"\1…", result.reference or "")
    console.print(
        f"[bold]{subject}[/] · {result.n_current:,} rows vs reference of {result.n_reference:,} ({reference})"
        + (" · significance-tested (small batch)" if result.significance_tested else "")
        + (f" · engine {result.engine}" if result.engine != "memory" else ""),
        markup=True,
        highlight=False,
    )
    from rich.markup import escape
    from rich.table import Table

    cols = [*result.columns, *([result.prediction] if result.prediction else [])]
    show_p = any(c.p_value is not None for c in cols)
    show_bound = any(c.approximate for c in cols)
    show_note = any(c.note for c in cols)
    t = Table(title_justify="left")
    t.add_column("column", overflow="fold")
    t.add_column("method", no_wrap=True)
    t.add_column("score", justify="right", no_wrap=True)
    t.add_column("threshold", justify="right", no_wrap=True)
    if show_bound:
        t.add_column("± bound", justify="right", no_wrap=True)
    if show_p:
        t.add_column("p (adj.)", justify="right", no_wrap=True)
    t.add_column("drifted", no_wrap=True)
    if show_note:
        t.add_column("note", overflow="fold")
    for col in cols:
        label = escape(col.name) + (
            " (prediction)" if result.prediction is not None and col is result.prediction else ""
        )
        row = [label, col.method, _fmt(col.score), f"{col.threshold:g}"]
        if show_bound:
            row.append("" if col.bound is None else f"{col.bound:.1g}")
        if show_p:
            row.append("" if col.p_value is None else f"{col.p_value:.3g}")
        mark = ok_mark(None) if col.score is None else ("[red]drift[/]" if col.drifted else "[green]ok[/]")
        row.append(mark + (" [yellow](near threshold)[/]" if col.near_threshold else ""))
        if show_note:
            row.append(escape(col.note or ""))
        t.add_row(*row)
    console.print(t)
    for problem in result.schema_problems:
        console.print(f"[red]schema:[/] {escape(problem)}", soft_wrap=True)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if result.report:
        console.print(f"Evidently report: {result.report}")
    verdict = (
        "[green]passed[/]"
        if result.passed
        else "[red]FAILED[/] (" + ("schema problems" if result.schema_problems else "drift") + ")"
    )
    console.print(
        f"{verdict}: {len(result.drifted_columns)} of {len(result.columns)} columns drifted, "
        f"weighted share {result.share:.2f} (fails at {result.drift_share:.2f})"
    )
