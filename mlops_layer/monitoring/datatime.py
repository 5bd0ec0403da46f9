"""Monitoring on the data's time axis: a batch's time range from its timestamp column, splitting a file that spans
several periods (``--every 1d``), and the high-water mark that tells a backfill from new data.

A batch is placed at the end of its data time range, so MLflow's time axis, the alert rules' time cooldowns and the
audit entries follow the data, not the moment someone ran ``mlops monitor``. A batch older than the newest data
already monitored is a *backfill*: it is scored, logged at its own time and audited, but it does not move the alert
state machine, which speaks about the present.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_layer.errors import InputError
from mlops_layer.monitoring.state import atomic_write_text, state_path

_EVERY = re.compile(r"^\s*(\d+)\s*(min|m|h|d|w)\s*$")
_UNITS = {"min": "min", "m": "min", "h": "h", "d": "D"}


@dataclass(frozen=True)
class TimeRange:
    """The data time a batch covers: ``start`` <= every timestamp <= ``end`` (UTC)."""

    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, str]:
        return {"start": _iso(self.start), "end": _iso(self.end)}


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_every(text: str) -> str:
    """``1d``, ``6h``, ``30min``, ``1w`` -> a pandas frequency; InputError otherwise."""
    match = _EVERY.match(text or "")
    if not match or int(match.group(1)) < 1:
        raise InputError(f"--every {text!r} is not a period", hint="e.g. --every 1d, --every 6h, --every 30min, 1w")
    count, unit = int(match.group(1)), match.group(2)
    return f"{count * 7}D" if unit == "w" else f"{count}{_UNITS[unit]}"


def timestamps(frame: Any, column: str, *, source: str) -> Any:
    """The column as UTC timestamps; InputError naming the column when it is absent or not times."""
    import pandas as pd

    if column not in [str(c) for c in frame.columns]:
        raise InputError(
            f"{source} has no timestamp column {column!r}",
            hint="the model card's columns.timestamp names it; fix the batch or the card",
        )
    try:
        values = pd.to_datetime(frame[column], utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise InputError(f"{source}: column {column!r} does not hold timestamps ({exc})") from None
    if values.isna().any():
        bad = int(values.isna().sum())
        raise InputError(f"{source}: {bad} row(s) have no {column!r} timestamp", hint="every row needs its data time")
    return values


def time_range(frame: Any, column: str, *, source: str) -> TimeRange:
    values = timestamps(frame, column, source=source)
    return TimeRange(values.min().to_pydatetime(), values.max().to_pydatetime())


def split(frame: Any, column: str, every: str, *, source: str) -> list[tuple[TimeRange, Any]]:
    """The rows of each period (``every``, aligned to the epoch), oldest first; empty periods left out."""
    freq = parse_every(every)
    values = timestamps(frame, column, source=source)
    periods = values.dt.floor(freq)
    out: list[tuple[TimeRange, Any]] = []
    for _, index in sorted(frame.groupby(periods.to_numpy(), sort=True).groups.items()):
        part = frame.loc[index]
        stamps = values.loc[index]
        out.append((TimeRange(stamps.min().to_pydatetime(), stamps.max().to_pydatetime()), part))
    return out


def _mark_path(state_dir: Path, model: str) -> Path:
    path = state_path(state_dir, model)
    return path.with_name(f"{path.stem}.datatime.json")


def high_water(state_dir: Path, model: str) -> datetime | None:
    """The newest data time monitored so far for ``model`` (None: none yet). Call under the model's lock."""
    path = _mark_path(state_dir, model)
    if not path.is_file():
        return None
    return datetime.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["newest"])


def advance(state_dir: Path, model: str, end: datetime) -> None:
    atomic_write_text(_mark_path(state_dir, model), json.dumps({"model": model, "newest": _iso(end)}) + "\n")
