"""Entry point of the ``mlops`` console script: assembles the command modules onto one app.

Each command module registers its commands on :data:`mlops_layer.cli.app.app` when imported. Command modules import
only typer, rich and :mod:`mlops_layer.api` lazily, so ``mlops --help`` stays fast.
"""

from __future__ import annotations

from mlops_layer.cli import (
    commands_audit,  # noqa: F401  (audit log|show|verify|export|checkpoint|reconcile, history)
    commands_authoring,  # noqa: F401  (card new|validate, policy validate)
    commands_core,  # noqa: F401  (registers init, status, lineage)
    commands_drift,  # noqa: F401  (drift)
    commands_governance,  # noqa: F401  (card show, check, approve, reject, withdraw, promote, rollback)
    commands_monitoring,  # noqa: F401  (monitor, alerts status|ack|resolve|flush)
    commands_report,  # noqa: F401  (report)
    commands_retrain,  # noqa: F401  (retrain)
)
from mlops_layer.cli.app import app


def main() -> None:
    app(prog_name="mlops")


if __name__ == "__main__":
    main()
