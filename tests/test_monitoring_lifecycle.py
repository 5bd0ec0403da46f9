"""The alert lifecycle (core): acknowledge, resolve, and the close of a replaced version's alerts when an alias moves."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlops_layer.audit import actions
from mlops_layer.errors import InputError, NotFoundError
from mlops_layer.monitoring.alerts import (
    ACKNOWLEDGED,
    CLOSED,
    FIRED,
    OPEN,
    RESOLVED,
    SUPERSEDED,
    AlertRule,
    AlertState,
    BatchPoint,
    evaluate_alerts,
)
from mlops_layer.monitoring.lifecycle import change_alert, close_superseded
from mlops_layer.monitoring.state import load_state, save_state

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
RULE = AlertRule(name="drift", type="drift_share", max=0.3)


def pt(seq: int, share: float, version: str = "1", alias: str | None = "champion") -> BatchPoint:
    return BatchPoint(
        seq=seq, timestamp=T0 + timedelta(hours=seq), model="churn", version=version, alias=alias, drift_share=share
    )


class Trail:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, str], str | None, dict[str, Any]]] = []

    def append(
        self,
        action: str,
        *,
        subject: Mapping[str, str],
        run_id: str | None = None,
        decision: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        self.entries.append((action, dict(subject), decision, dict(details or {})))
        return len(self.entries)


def fired_state() -> AlertState:
    state, events = evaluate_alerts([RULE], [pt(1, 0.9)], AlertState(model="churn"))
    assert [e.kind for e in events] == [FIRED]
    assert state.rules["drift"].fired_alias == "champion" and state.rules["drift"].fired_version == "1"
    return state


def test_alias_moving_to_another_version_closes_the_old_versions_alert_with_a_reason() -> None:
    state = fired_state()
    # the next batch of @champion is served by v2: v1's alert closes, then v2 is assessed on its own
    state, events = evaluate_alerts([RULE], [pt(2, 0.9, version="2")], state)
    assert [e.kind for e in events] == [SUPERSEDED, FIRED]
    closed, fired = events
    assert closed.version == "1" and "@champion moved from v1 to v2" in closed.message
    assert fired.version == "2" and state.rules["drift"].status == OPEN


def test_monitoring_another_alias_or_by_version_does_not_close_the_alert() -> None:
    state = fired_state()
    for other in (pt(2, 0.1, version="2", alias="staging"), pt(3, 0.1, version="2", alias=None)):
        state, events = evaluate_alerts([RULE], [other], state)
        assert events == []
        assert state.rules["drift"].status == OPEN


def test_same_version_keeps_its_alert_open() -> None:
    state, events = evaluate_alerts([RULE], [pt(2, 0.9)], fired_state())
    assert events == [] and state.open_alerts() == ["drift"]


def test_ack_keeps_it_open_and_resolve_closes_it_both_audited(tmp_path: Path) -> None:
    save_state(tmp_path, fired_state())
    trail = Trail()
    ack = change_alert(tmp_path, trail, "churn", "drift", action="ack", actor="ops@x.org", comment="looking")
    assert ack.event.kind == ACKNOWLEDGED
    st = load_state(tmp_path, "churn").rules["drift"]
    assert st.status == OPEN and st.acked_by == "ops@x.org" and st.ack_comment == "looking"
    alert_id = str(st.alert_id)
    done = change_alert(tmp_path, trail, "churn", alert_id, action="resolve", actor="ops@x.org", comment="fixed")
    assert done.event.kind == RESOLVED and done.event.alert_id == alert_id
    st = load_state(tmp_path, "churn").rules["drift"]
    assert st.status == CLOSED and st.acked_by is None and st.window == ()
    assert [(a, s["alias"], s["version"], d) for a, s, d, _ in trail.entries] == [
        (actions.ALERT_ACKNOWLEDGED, "champion", "1", ACKNOWLEDGED),
        (actions.ALERT_RESOLVED, "champion", "1", RESOLVED),
    ]
    assert trail.entries[1][3]["comment"] == "fixed"


def test_ack_of_an_alert_that_is_not_open_is_refused_and_nothing_is_audited(tmp_path: Path) -> None:
    save_state(tmp_path, fired_state())
    trail = Trail()
    with pytest.raises(NotFoundError, match="no open alert 'accuracy'"):
        change_alert(tmp_path, trail, "churn", "accuracy", action="ack", actor="a", comment="")
    with pytest.raises(InputError, match="needs a --comment"):
        change_alert(tmp_path, trail, "churn", "drift", action="resolve", actor="a", comment=" ")
    assert trail.entries == []
    assert load_state(tmp_path, "churn").open_alerts() == ["drift"]


def test_promotion_closes_alerts_of_the_replaced_version_only(tmp_path: Path) -> None:
    save_state(tmp_path, fired_state())
    trail = Trail()
    assert close_superseded(tmp_path, trail, "churn", "staging", "2") == ()  # another alias: untouched
    assert close_superseded(tmp_path, trail, "churn", "champion", "1") == ()  # same version: untouched
    changes = close_superseded(tmp_path, trail, "churn", "champion", "2", rules=[RULE])
    assert [c.event.kind for c in changes] == [SUPERSEDED]
    assert load_state(tmp_path, "churn").open_alerts() == []
    (action, subject, decision, details) = trail.entries[0]
    assert (action, subject["version"], decision, details["new_version"]) == (
        actions.ALERT_RESOLVED,
        "1",
        SUPERSEDED,
        "2",
    )


def test_never_monitored_model_needs_no_state(tmp_path: Path) -> None:
    assert close_superseded(tmp_path, Trail(), "churn", "champion", "2") == ()
    assert not (tmp_path / "monitoring").exists()
