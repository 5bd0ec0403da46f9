"""The typer application and the one place that turns errors into a message and an exit code."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from mlops_layer.errors import ConfigWarning, MlopsError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_HELP = (
    "Exit codes: 0 ok, 1 governance said no (refused, verification failed, drift breach), "
    "2 bad input or config, 3 a backend failed."
)


class _State:
    traceback: bool = bool(os.environ.get("MLOPS_TRACEBACK"))


state = _State()


def _render_error(exc: MlopsError) -> None:
    from mlops_layer.cli.render import err_console

    err_console.print(f"[bold red]error:[/] {exc.message}", markup=True, highlight=False, soft_wrap=True)
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {exc.hint}", markup=True, highlight=False, soft_wrap=True)


def _render_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Configuration warnings as one yellow line each (once per message); other warnings as Python shows them."""
    if not caught:
        return
    from mlops_layer.cli.render import err_console

    seen: set[str] = set()
    for item in caught:
        if issubclass(item.category, ConfigWarning):
            text = str(item.message)
            if text not in seen:
                seen.add(text)
                err_console.print(f"[yellow]warning:[/] {text}", markup=True, highlight=False, soft_wrap=True)
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno, None, item.line)


def _guard(func: F) -> F:
    """Run a command; render our errors in one line with the right exit code, never a traceback."""

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConfigWarning)
            try:
                return _run(func, caught, *args, **kwargs)
            finally:
                _render_warnings(caught)

    return inner  # type: ignore[return-value]


def _run(func: Callable[..., Any], caught: list[warnings.WarningMessage], *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except MlopsError as exc:
        if state.traceback:
            raise
        _render_warnings(caught)  # before the error they may explain
        caught.clear()
        _render_error(exc)
        raise typer.Exit(exc.exit_code) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if state.traceback:
            raise
        from mlops_layer.cli.render import err_console

        err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc}", markup=True, highlight=False)
        err_console.print("[yellow]hint:[/] rerun with `mlops --traceback ...` and report it", markup=True)
        raise typer.Exit(3) from None


class MlopsTyper(typer.Typer):
    """A Typer whose commands all go through :func:`_guard`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(func: F) -> F:
            register(_guard(func))
            return func

        return decorator


def new_app(help_text: str) -> MlopsTyper:
    return MlopsTyper(
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain help: typer's rich help imports markdown-it (+100 ms on every --help)
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = new_app(
    "Governance over MLflow and DVC: lineage, policy-gated promotion, drift gates, a tamper-evident audit trail.\n\n"
    + EXIT_HELP
)


def _version_callback(value: bool) -> None:
    if value:
        from mlops_layer import __version__

        typer.echo(f"mlops_layer {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    traceback: bool = typer.Option(False, "--traceback", help="Show the full Python traceback on errors."),
    tracking_uri: str | None = typer.Option(
        None,
        "--tracking-uri",
        help="MLflow tracking URI for this command (beats MLOPS_TRACKING_URI, MLFLOW_TRACKING_URI and mlops.yaml). "
        "Example: mlops --tracking-uri http://mlflow:5000 status",
    ),
    audit_url: str | None = typer.Option(
        None,
        "--audit-url",
        help="Audit trail database URL for this command (beats MLOPS_AUDIT_URL and mlops.yaml). "
        "Example: mlops --audit-url sqlite:///.mlops/audit.db audit verify",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Governance over MLflow and DVC."""
    if traceback:
        state.traceback = True
    # Flags go first in the settings order. They are handed on as the highest-priority variables, so the settings
    # every command resolves see them, and so do the `dvc repro` stages a command starts (retrain trains into the
    # same store the command was pointed at).
    if tracking_uri:
        os.environ["MLOPS_TRACKING_URI"] = tracking_uri
    if audit_url:
        os.environ["MLOPS_AUDIT_URL"] = audit_url


def exit_with(code: int) -> None:
    """Leave a command with ``code`` after its output was rendered (used for governance refusals)."""
    if code:
        raise typer.Exit(code)


def stdin_is_tty() -> bool:
    return sys.stdin.isatty()
