"""Options every command shares, defined once: ``--json``."""

from __future__ import annotations

from typing import Any

import typer

JSON_HELP = "Print the result as JSON (for machines) instead of tables."


def json_option(help_text: str = JSON_HELP) -> Any:
    """The ``--json`` flag of a reporting command."""
    return typer.Option(False, "--json", help=help_text)
