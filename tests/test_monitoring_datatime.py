"""Monitoring on the data's time axis (core, fakes): time ranges, period splits, backfills that do not move alerts."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_monitoring_flow import DRIFT, FakeTracking, FakeTrail, Notifications, batch, frame, monitor

from mlops_layer.errors import InputError
from mlops_layer.monitoring import datatime


def stamped(n: int, start: str, freq: str = "h") -> pd.DataFrame:
    out = frame(n)
    out["event_time"] = pd.date_range(start, periods=n, freq=freq, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def test_split_every_period_in_order_with_ranges() -> None:
    data = stamped(72, "2025-05-01T00:00:00").sample(frac=1.0, random_state=2)  # shuffled rows: 3 days
    parts = datatime.split(data, "event_time", "1d", source="b.csv")
    assert [len(p) for _, p in parts] == [24, 24, 24]
    assert [r.start.day for r, _ in parts] == [1, 2, 3]
    assert parts[0][0].end == datetime(2025, 5, 1, 23, tzinfo=timezone.utc)
    assert len(datatime.split(data, "event_time", "12h", source="b.csv")) == 6
    assert datatime.parse_every("1w") == "7D"
    with pytest.raises(InputError, match="is not a period"):
        datatime.parse_every("daily")
    with pytest.raises(InputError, match="no timestamp column 'ts'"):
        datatime.split(data, "ts", "1d", source="b.csv")
    bad = data.assign(event_time="not a time")
    with pytest.raises(InputError, match="does not hold timestamps"):
        datatime.time_range(bad, "event_time", source="b.csv")


def test_a_backfill_is_recorded_at_its_time_without_moving_alerts(tmp_path: Path) -> None:
    trail, tracking, notes = FakeTrail(), FakeTracking(), Notifications()

    def run(start: str, share: float) -> Any:
        data = stamped(48, start)
        rng = datatime.time_range(data, "event_time", source="b.csv")
        inp = dataclasses.replace(batch(tmp_path, data), timestamp=rng.end, time_range=rng)
        return monitor(tmp_path, inp, share=share, rules=[DRIFT], trail=trail, tracking=tracking, notify=notes)

    new1 = run("2025-06-10", 0.9)
    new2 = run("2025-06-12", 0.9)  # 2 of 3 breached: fires
    assert [e.kind for e in new2.events] == ["fired"]
    old = run("2025-06-01", 0.0)  # a backfill of healthy older data
    assert old.backfill and old.events == () and any("backfill" in w for w in old.warnings)
    assert old.open_alerts == ("drift",)
    assert tracking.calls[-1]["timestamp"] == datetime(2025, 6, 2, 23, tzinfo=timezone.utc)  # placed at data time
    details = trail.entries[-1][1]["details"]
    assert details["backfill"] is True and details["time_range"]["start"] == "2025-06-01T00:00:00+00:00"
    newer = run("2025-06-14", 0.9)
    assert not newer.backfill and newer.seq == 4
    assert not new1.backfill
    assert np.all([c["seq"] for c in tracking.calls] == [1, 2, 3, 4])
