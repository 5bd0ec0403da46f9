"""The one facade of mlops_layer: plain functions that open adapters, call the core, close them, return results.

The CLI, the pipeline stages and users' own scripts all call these. Nothing here prints.
Heavy libraries (mlflow, dvc, pandas, evidently) are imported inside functions, never at module top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_layer.config import Settings, load_settings


def settings(root: Path | str | None = None, **overrides: Any) -> Settings:
    """Resolve the settings of the project at ``root`` (default: found from the cwd)."""
    return load_settings(Path(root) if root is not None else None, **overrides)


# ---------------------------------------------------------------------------------------------------------------
# foundation: init, lineage, registration, status  (owner: lead)
# ---------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------
# audit trail  (owner: audit)
# ---------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------
# governance: cards, policy checks, approvals, promotion, rollback  (owner: governance)
# ---------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------
# drift  (owner: drift)
# ---------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------
# monitoring, alerts, retraining  (owner: monitoring)
# ---------------------------------------------------------------------------------------------------------------
