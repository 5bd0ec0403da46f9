"""Retraining: when a model needs it (an open alert, a due cadence) and how a new labelled batch becomes a data version.

Pure decisions live here; :func:`mlops_layer.api.retrain` wires git, DVC, MLflow, the policy and the trail around them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mlops_layer.errors import InputError

_NAMED = {"daily": 1.0, "weekly": 7.0, "biweekly": 14.0, "monthly": 30.0, "quarterly": 91.0, "yearly": 365.0}
_EVERY = re.compile(r"^\s*(?:every\s+)?(\d+(?:\.\d+)?)\s*(d|day|days|w|week|weeks)\s*$", re.IGNORECASE)


def cadence_days(cadence: str | None) -> float | None:
    """``monthly`` -> 30, ``14d`` / ``every 2 weeks`` -> 14; None for manual/continuous/unknown cadences."""
    if not cadence:
        return None
    text = cadence.strip().lower()
    if text in _NAMED:
        return _NAMED[text]
    match = _EVERY.match(text)
    if not match:
        return None
    value = float(match.group(1))
    return value * 7 if match.group(2).startswith("w") else value


@dataclass(frozen=True)
class RetrainNeed:
    """Whether a model needs retraining, and why (every reason that holds)."""

    needed: bool
    reasons: tuple[str, ...]


def retrain_need(
    *, open_alerts: list[str], cadence: str | None, last_trained: datetime | None, now: datetime
) -> RetrainNeed:
    reasons = [f"alert open: {name}" for name in open_alerts]
    days = cadence_days(cadence)
    if days is not None:
        if last_trained is None:
            reasons.append(f"cadence {cadence}: never trained through the layer")
        elif now - last_trained >= timedelta(days=days):
            age = (now - last_trained).total_seconds() / 86400
            reasons.append(f"cadence {cadence} due: last trained {age:.1f} days ago")
    return RetrainNeed(needed=bool(reasons), reasons=tuple(reasons))


@dataclass(frozen=True)
class PipelineChanges:
    """What ``dvc repro`` left in the work tree: paths to commit, and paths the user had changed already."""

    written: tuple[str, ...]
    already_dirty: tuple[str, ...]


def pipeline_changes(before: Mapping[str, str], after: Mapping[str, str]) -> PipelineChanges:
    """Compare two work-tree snapshots (path -> status and content digest, from before and after the pipeline).

    A path clean before and changed after was written by the pipeline: it is safe to commit. A path the user had
    already changed and the pipeline changed again mixes both: it is left for the user, never committed for them.
    """
    written: list[str] = []
    mixed: list[str] = []
    for path, state in sorted(after.items()):
        if before.get(path) == state:
            continue
        (mixed if path in before else written).append(path)
    # a path in ``before`` only is back to its committed content: nothing to commit
    return PipelineChanges(written=tuple(written), already_dirty=tuple(mixed))


def commit_message(model: str, version: str, reasons: tuple[str, ...], data_version: str | None) -> str:
    """The second commit of a retraining: its outputs, naming the retraining and the new version."""
    lines = [f"retrain: {model} v{version} (dvc.lock, metrics and outputs of the retraining)", ""]
    lines.append(f"Why: {'; '.join(reasons)}.")
    if data_version:
        lines.append(f"Data version (md5): {data_version}.")
    lines.append("Written by `mlops retrain`; the audit trail records the retraining and its decisions.")
    return "\n".join(lines)


def csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), [])
    except FileNotFoundError:
        raise InputError(f"{path} does not exist", hint="pass the new labelled batch as a CSV file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path} is not a readable CSV file ({exc})") from None


def check_new_batch(batch: Path, existing: list[Path]) -> list[str]:
    """The new labelled batch must have exactly the columns of the data the model was trained on."""
    if batch.suffix.lower() != ".csv":
        raise InputError(f"{batch}: new training data must be a CSV file like the existing ones in data/raw")
    header = csv_header(batch)
    if not header:
        raise InputError(f"{batch} is empty", hint="a labelled batch needs a header row and at least one row")
    if existing:
        expected = csv_header(existing[0])
        missing = [c for c in expected if c not in header]
        extra = [c for c in header if c not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected column(s) {', '.join(extra)}")
            raise InputError(
                f"{batch}: schema differs from {existing[0].name}: {'; '.join(parts)}",
                hint="the batch must carry the training columns, labels included",
            )
    with batch.open(encoding="utf-8") as fh:
        rows = sum(1 for _ in fh) - 1
    if rows < 1:
        raise InputError(f"{batch} has a header but no rows")
    return header
