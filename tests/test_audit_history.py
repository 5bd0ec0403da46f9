"""Alias history and reconciliation answered from the trail (core with a fake registry; api with settings)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlops_layer import api
from mlops_layer.audit import actions
from mlops_layer.audit.history import alias_history, expected_aliases, holder_at, registered_versions
from mlops_layer.audit.reconcile import reconcile
from mlops_layer.audit.store import AuditStore
from mlops_layer.errors import InputError, NotFoundError

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


class FakeRegistry:
    """The three calls reconciliation makes, over plain dicts."""

    def __init__(self, aliases: dict[str, dict[str, str]], versions: dict[str, list[str]]) -> None:
        self.aliases = aliases
        self.versions = versions

    def model_names(self) -> list[str]:
        return sorted(self.versions)

    def get_aliases(self, model: str) -> dict[str, str]:
        return dict(self.aliases.get(model, {}))

    def list_versions(self, model: str) -> list[str]:
        return list(self.versions[model])


def _ticking_clock() -> object:
    state = {"n": 0}

    def clock() -> datetime:
        state["n"] += 1
        return T0 + timedelta(hours=state["n"])

    return clock


def build(store: AuditStore) -> None:
    """churn v1..v3 registered; champion: v1 (t2) -> v2 (t5) -> rollback to v1 (t6); staging v3 set then deleted."""
    for v in ("1", "2", "3"):
        store.append(actions.MODEL_REGISTERED, actor="ds", subject={"model": "churn", "version": v})  # t1..t3
    store.append(
        actions.ALIAS_SET,
        actor="ops",
        subject={"model": "churn", "alias": "champion", "version": "1"},
        details={"previous": None, "via": "promote"},
    )  # t4
    store.append(
        actions.ALIAS_SET,
        actor="ops",
        subject={"model": "churn", "alias": "staging", "version": "3"},
        details={"previous": None, "via": "promote"},
    )  # t5
    store.append(
        actions.ALIAS_SET,
        actor="ops",
        subject={"model": "churn", "alias": "champion", "version": "2"},
        details={"previous": "1", "via": "promote"},
    )  # t6
    store.append(
        actions.ALIAS_SET,
        actor="sre",
        subject={"model": "churn", "alias": "champion", "version": "1"},
        details={"previous": "2", "via": "rollback"},
    )  # t7
    store.append(
        actions.ALIAS_DELETED,
        actor="ops",
        subject={"model": "churn", "alias": "staging"},
        details={"previous": "3", "via": "delete"},
    )  # t8
    store.append(actions.MODEL_REGISTERED, actor="ds", subject={"model": "fraud", "version": "1"})  # t9


@pytest.fixture
def store(tmp_path: Path) -> AuditStore:
    s = AuditStore.open(f"sqlite:///{tmp_path}/a.db", clock=_ticking_clock())  # type: ignore[arg-type]
    build(s)
    yield s
    s.close()


def h(n: int) -> datetime:
    return T0 + timedelta(hours=n)


def test_alias_history_spans(store: AuditStore) -> None:
    spans = alias_history(store, "churn", "champion")
    assert [(s.version, s.start, s.end, s.via) for s in spans] == [
        ("1", h(4), h(6), "promote"),
        ("2", h(6), h(7), "promote"),
        ("1", h(7), None, "rollback"),
    ]
    assert spans[-1].actor == "sre" and spans[0].end_seq == 6
    staging = alias_history(store, "churn", "staging")
    assert [(s.version, s.end, s.ended_by) for s in staging] == [("3", h(8), actions.ALIAS_DELETED)]
    assert len(alias_history(store, "churn")) == 4


@pytest.mark.parametrize(
    ("at", "alias", "expected"),
    [
        (h(3), "champion", None),
        (h(4), "champion", "1"),
        (h(5) + timedelta(minutes=30), "champion", "1"),
        (h(6), "champion", "2"),
        (h(6) + timedelta(minutes=59), "champion", "2"),
        (h(7), "champion", "1"),
        (h(100), "champion", "1"),
        (h(7), "staging", "3"),
        (h(8), "staging", None),
    ],
)
def test_holder_at(store: AuditStore, at: datetime, alias: str, expected: str | None) -> None:
    assert holder_at(store, "churn", alias, at) == expected


def test_expected_state(store: AuditStore) -> None:
    assert expected_aliases(store) == {"churn": {"champion": "1"}}
    assert registered_versions(store) == {"churn": {"1", "2", "3"}, "fraud": {"1"}}


def test_reconcile_agrees(store: AuditStore) -> None:
    registry = FakeRegistry({"churn": {"champion": "1"}}, {"churn": ["1", "2", "3"], "fraud": ["1"]})
    report = reconcile(store, registry)
    assert report.ok and report.findings == () and report.models_checked == ("churn", "fraud")


def test_reconcile_finds_every_difference(store: AuditStore) -> None:
    registry = FakeRegistry(
        {"churn": {"champion": "3", "shadow": "2"}, "legacy": {"prod": "7"}},
        {"churn": ["1", "3"], "legacy": ["7"]},  # v2 deleted, fraud deleted, legacy unknown to the trail
    )
    report = reconcile(store, registry)
    got = {(f.kind, f.model, f.alias, f.expected, f.actual) for f in report.findings}
    assert got == {
        ("alias_moved", "churn", "champion", "1", "3"),
        ("alias_unexpected", "churn", "shadow", None, "2"),
        ("version_missing", "churn", None, "2", None),
        ("model_missing", "fraud", None, None, None),
        ("alias_unexpected", "legacy", "prod", None, "7"),
    }
    assert not report.ok
    moved = next(f for f in report.findings if f.kind == "alias_moved")
    assert "churn@champion points to v3 in the registry but the trail says v1" in moved.message
    registry.aliases["churn"] = {}
    missing = reconcile(store, registry).findings
    assert ("alias_missing", "champion", "1") in {(f.kind, f.alias, f.expected) for f in missing}


def test_interrupted_promotion_is_named(store: AuditStore) -> None:
    """Decided and moved in the registry, but the completion entry never written (crash): the finding says so."""
    d = store.append(
        actions.PROMOTION_DECIDED,
        actor="ops",
        subject={"model": "churn", "alias": "champion", "version": "3"},
        decision="allowed",
    )
    registry = FakeRegistry({"churn": {"champion": "3"}}, {"churn": ["1", "2", "3"], "fraud": ["1"]})
    (finding,) = reconcile(store, registry).findings
    assert finding.kind == "alias_moved" and finding.pending_seq == d.seq
    assert f"decision {d.seq} allowed this move but its completion was never recorded" in finding.message
    # once completed, nothing is pending and nothing is found
    store.append(actions.ALIAS_SET, actor="ops", subject={"model": "churn", "alias": "champion", "version": "3"})
    assert reconcile(store, registry).ok


def test_api_history_and_reconcile(tmp_path: Path) -> None:
    cfg = api.settings(tmp_path, audit_url=f"sqlite:///{tmp_path}/.mlops/audit.db", actor="auditor")
    with api.open_audit(settings=cfg) as trail:
        build(trail)
    report = api.history("churn", settings=cfg)
    assert [s.version for s in report.spans if s.alias == "champion"] == ["1", "2", "1"]
    now = datetime.now(timezone.utc)
    at = api.history("churn", alias="champion", at=now, settings=cfg)
    assert at.holder == "1" and at.to_dict()["holder"] == "1"
    with pytest.raises(InputError, match="--at needs --alias"):
        api.history("churn", at=now, settings=cfg)
    with pytest.raises(NotFoundError, match="no entries for model 'nope'"):
        api.history("nope", settings=cfg)

    registry = FakeRegistry({"churn": {"champion": "2"}}, {"churn": ["1", "2", "3"], "fraud": ["1"]})
    rec = api.reconcile_audit(settings=cfg, registry=registry)
    assert not rec.ok and rec.incident_seqs == ()
    rec = api.reconcile_audit(settings=cfg, registry=registry, record_incident=True)
    (seq,) = rec.incident_seqs
    incident = api.audit_entry(seq, settings=cfg)
    assert incident.action == actions.RECONCILE_INCIDENT and incident.actor == "auditor"
    assert incident.subject == {"model": "churn", "alias": "champion", "version": "2"}
    assert incident.details["kind"] == "alias_moved" and incident.details["expected"] == "1"
    assert api.verify_audit(settings=cfg, no_git=True).ok  # a trail without its repository at hand
