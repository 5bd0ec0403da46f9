"""The promotion flow on fakes: audit-first, first promotion, races, moves behind our back, rollback, mirroring."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlops_layer.audit.actions import ALIAS_SET, PROMOTION_DECIDED, ROLLBACK_DECIDED
from mlops_layer.audit.registrations import RegistrationRecord
from mlops_layer.errors import BackendError, NotFoundError
from mlops_layer.governance.approvals import SignedApproval, make_statement
from mlops_layer.governance.candidates import bound_identity
from mlops_layer.governance.cards import ModelCard
from mlops_layer.governance.execution import previous_holder
from mlops_layer.governance.policy import parse_policy
from mlops_layer.governance.ports import AliasRecord, file_locks
from mlops_layer.governance.promotion import Governance
from mlops_layer.governance.rules import AliasHold, DriftStatus

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass
class Version:
    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: datetime | None = T0
    model_id: str | None = None


class FakeRegistry:
    def __init__(self, metrics: dict[str, float]) -> None:
        self.versions = {
            str(v): Version("credit", str(v), f"run{v}", f"models:/m-{v}", {"mlops.registered_by": "reg@x.org"})
            for v in metrics
        }
        self.metrics = {f"run{v}": {"accuracy": m} for v, m in metrics.items()}
        self.aliases: dict[str, str] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.metric_queries = 0
        self.fail_tags = False
        self.lock = threading.Lock()

    def get_version(self, name: str, version: str | int) -> Version:
        if str(version) not in self.versions:
            raise NotFoundError(f"no version {version}")
        return self.versions[str(version)]

    def get_aliases(self, name: str) -> dict[str, str]:
        with self.lock:
            return dict(self.aliases)

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        with self.lock:
            self.aliases[alias] = str(version)

    def set_version_tags(self, name: str, version: str | int, tags: Mapping[str, Any]) -> None:
        if self.fail_tags:
            raise BackendError("MLflow is down")
        self.tags.setdefault(str(version), {}).update({k: str(v) for k, v in tags.items()})

    def run_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        self.metric_queries += 1
        return {r: self.metrics[r] for r in run_ids if r in self.metrics}


class FakeTrail:
    def __init__(self, metrics: dict[str, dict[str, float]] | None = None) -> None:
        self.metrics = metrics or {}  # run id -> metrics frozen at registration
        self.entries: list[dict[str, Any]] = []
        self.approval_list: list[SignedApproval] = []
        self.lock = threading.Lock()
        self.clock = T0 + timedelta(days=1)

    def record(
        self,
        action: str,
        *,
        subject: dict[str, str],
        run_id: str | None = None,
        decision: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        with self.lock:
            self.clock += timedelta(seconds=1)
            self.entries.append(
                {
                    "seq": len(self.entries) + 1,
                    "action": action,
                    "subject": subject,
                    "decision": decision,
                    "details": details or {},
                    "at": self.clock,
                }
            )
            return len(self.entries)

    def approvals(self, model: str, version: str, target: str) -> list[SignedApproval]:
        return list(self.approval_list)

    def alias_history(self, model: str) -> list[AliasHold]:
        holds: list[AliasHold] = []
        current: dict[str, AliasHold] = {}
        for e in self.entries:
            if e["action"] != ALIAS_SET:
                continue
            alias = e["subject"]["alias"]
            if alias in current:
                old = current[alias]
                holds.append(AliasHold(alias, old.version, old.since, e["at"]))
            current[alias] = AliasHold(alias, e["subject"]["version"], e["at"])
        return holds + list(current.values())

    def alias_record(self, model: str, alias: str) -> AliasRecord:
        for e in reversed(self.entries):
            if e["action"] == ALIAS_SET and e["subject"]["alias"] == alias:
                return AliasRecord(True, e["subject"]["version"], e["seq"])
        return AliasRecord(False, None)

    def drift_status(self, model: str, version: str, *, dataset: str | None = None) -> DriftStatus | None:
        return None

    def registered_by(self, model: str, version: str) -> str | None:
        return None

    def registration(self, model: str, version: str) -> RegistrationRecord | None:
        metrics = self.metrics.get(f"run{version}")
        if metrics is None:
            return None
        return RegistrationRecord(0, "reg@x.org", {"model.pkl": f"sha256:{version}"}, dict(metrics))

    def last_set_seq(self, model: str, alias: str, version: str) -> int | None:
        for e in reversed(self.entries):
            if e["action"] == ALIAS_SET and e["subject"]["alias"] == alias and e["subject"]["version"] == version:
                return int(e["seq"])
        return None

    def allowed_decision_seq(self, model: str, alias: str, version: str) -> int | None:
        for e in reversed(self.entries):
            if (
                e["action"] in (PROMOTION_DECIDED, ROLLBACK_DECIDED)
                and (e["decision"] or {}).get("allowed")
                and e["subject"]["alias"] == alias
                and e["subject"]["version"] == version
            ):
                return int(e["seq"])
        return None

    def decisions(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["action"] == PROMOTION_DECIDED]


POLICY = textwrap.dedent(
    """\
    roles:
      alice@example.com: [model-risk]
    targets:
      champion:
        rollback: {requires_approvals: 0}
        rules:
          - {type: metric_threshold, metric: accuracy, min: 0.8}
          - {type: no_regression, metric: accuracy, direction: higher}
      gated:
        rollback: {requires_approvals: 1, roles: [model-risk]}
        rules: []
    """
)


def no_card(name: str) -> ModelCard:
    raise NotFoundError(f"model card of '{name}' does not exist")


def governance(tmp_path: Path, metrics: dict[str, float] | None = None) -> tuple[Governance, FakeRegistry, FakeTrail]:
    registry = FakeRegistry(metrics or {1: 0.85, 2: 0.9, 3: 0.95, 4: 0.5})
    trail = FakeTrail(registry.metrics)

    def verifier(data: bytes, sig: str, allowed: Path, ns: str, principal: str | None) -> str:
        if sig != "good":
            raise BackendError("bad signature")
        return principal or ""

    gov = Governance(
        registry=registry,
        trail=trail,
        policy=parse_policy(POLICY.encode(), "policy.yaml"),
        load_card=no_card,
        allowed_signers=tmp_path / "allowed_signers",
        verifier=verifier,  # type: ignore[arg-type]
        locks=file_locks(tmp_path / ".mlops"),
        clock=lambda: T0 + timedelta(days=2),
    )
    return gov, registry, trail


def test_first_promotion_when_alias_does_not_exist(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    decision = gov.check("credit", "1", "champion")
    assert decision.allowed and decision.current_holder is None
    assert [r.name for r in decision.rules][0] == "registry_matches_trail"
    result = gov.promote("credit", "1", "champion")
    assert result.moved and result.previous is None and result.current == "1"
    assert registry.aliases == {"champion": "1"}
    assert [e["action"] for e in trail.entries] == [PROMOTION_DECIDED, ALIAS_SET]  # audit first, then completion
    assert result.audit_seq == 1 and result.completion_seq == 2 and result.decision.audit_seq == 1
    tags = registry.tags["1"]
    assert '"allowed":true' in tags["mlops.decision.champion"] and tags["mlops.policy.hash"] == gov.policy.policy_hash
    assert registry.metric_queries == 0  # the rules read the snapshot frozen at registration, never the live run


def test_refusal_is_audited_and_mirrored_and_alias_untouched(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    result = gov.promote("credit", "4", "champion")  # accuracy 0.5 < 0.8
    assert not result.allowed and not result.moved and registry.aliases == {}
    assert [e["action"] for e in trail.entries] == [PROMOTION_DECIDED]
    entry = trail.entries[0]
    assert entry["decision"]["allowed"] is False and "metric_threshold:accuracy" in entry["decision"]["reasons"][0]
    assert entry["details"]["policy_hash"] == gov.policy.policy_hash
    assert '"allowed":false' in registry.tags["4"]["mlops.decision.champion"]


def test_regression_against_holder_then_better_version(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    assert gov.promote("credit", "2", "champion").moved
    worse = gov.promote("credit", "1", "champion")
    assert not worse.allowed and registry.aliases["champion"] == "2"
    better = gov.promote("credit", "3", "champion")
    assert better.moved and better.previous == "2"


def test_mirroring_failure_warns_but_governance_goes_on(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    registry.fail_tags = True
    result = gov.promote("credit", "1", "champion")
    assert result.moved and result.warnings and "MLflow is down" in result.warnings[0]


def test_alias_moved_behind_our_back_between_check_and_promote(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    assert gov.promote("credit", "1", "champion").moved
    # someone moves the alias in the MLflow UI after the policy was evaluated, before the move
    gov.before_move = lambda: registry.set_alias("credit", "champion", "4")
    result = gov.promote("credit", "3", "champion")
    assert not result.allowed and not result.moved
    moved = [r for r in result.decision.rules if r.name == "holder_unchanged"][0]
    assert not moved.passed and "moved from v1 to v4" in moved.message
    assert registry.aliases["champion"] == "4"  # we did not overwrite it
    assert trail.decisions()[-1]["decision"]["allowed"] is False
    # and the next attempt sees the registry disagreeing with the audit trail
    gov.before_move = None
    again = gov.check("credit", "3", "champion")
    rule = again.rules[0]
    assert not again.allowed and rule.name == "registry_matches_trail"
    assert "moved behind the layer's back" in rule.message and rule.observed == "4" and rule.expected == "1"


def test_two_concurrent_promotions_exactly_one_wins(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    barrier = threading.Barrier(2)
    gov.before_move = lambda: barrier.wait(timeout=10)  # both evaluated the policy before either moves
    results: dict[str, Any] = {}

    def run(version: str) -> None:
        results[version] = gov.promote("credit", version, "champion")

    threads = [threading.Thread(target=run, args=(v,)) for v in ("2", "3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [v for v, r in results.items() if r.moved]
    losers = [v for v, r in results.items() if not r.moved]
    assert len(winners) == 1 and len(losers) == 1
    assert registry.aliases["champion"] == winners[0]
    lost = results[losers[0]]
    assert not lost.allowed and any(r.name == "holder_unchanged" and not r.passed for r in lost.decision.rules)
    decided = trail.decisions()
    assert len(decided) == 2 and sorted(d["decision"]["allowed"] for d in decided) == [False, True]
    assert [e["action"] for e in trail.entries].count(ALIAS_SET) == 1


def test_automatic_promotion_needs_auto_promote(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    d = gov.check("credit", "1", "champion", automatic=True)
    rule = [r for r in d.rules if r.name == "auto_promote"][0]
    assert not d.allowed and "needs people" in rule.message


def test_rollback_returns_to_previous_holder(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    nothing = gov.rollback("credit", "champion")
    assert not nothing.allowed and "no earlier holder" in nothing.decision.reasons()[-1]
    gov.promote("credit", "1", "champion")
    gov.promote("credit", "3", "champion")
    result = gov.rollback("credit", "champion")
    assert result.moved and result.previous == "3" and result.current == "1" and registry.aliases["champion"] == "1"
    assert result.decision.action == "rollback"
    assert trail.entries[-1]["action"] == ALIAS_SET and trail.entries[-1]["details"]["action"] == "rollback"


def test_rollback_needing_approvals(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    gov.promote("credit", "1", "gated")
    gov.promote("credit", "2", "gated")
    refused = gov.rollback("credit", "gated")
    assert not refused.allowed and registry.aliases["gated"] == "2"
    info = registry.get_version("credit", "1")
    ident = bound_identity(info, trail.registration("credit", "1"))
    st = make_statement(ident, "gated", "alice@example.com", action="rollback", now=T0 + timedelta(days=2))
    trail.approval_list = [SignedApproval(st, "good")]
    done = gov.rollback("credit", "gated")
    assert done.moved and registry.aliases["gated"] == "1"


def test_previous_holder() -> None:
    h = [AliasHold("a", "1", T0, T0 + timedelta(1)), AliasHold("a", "2", T0 + timedelta(1))]
    assert previous_holder(h, "2") == "1"
    assert previous_holder(h[:1], "1") is None
    assert previous_holder([], None) is None


def test_unknown_version_is_not_found(tmp_path: Path) -> None:
    gov, registry, trail = governance(tmp_path)
    with pytest.raises(NotFoundError):
        gov.check("credit", "99", "champion")
