"""Decisions: the outcome of evaluating a policy on one candidate, one :class:`RuleResult` per rule."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict: what was observed, what the policy expected, and a sentence a person can act on."""

    name: str
    passed: bool
    observed: Any = None
    expected: Any = None
    message: str = ""
    rule_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "observed": _jsonable(self.observed),
            "expected": _jsonable(self.expected),
            "message": self.message,
        }


@dataclass(frozen=True)
class Decision:
    """Whether ``model`` ``version`` may take alias ``target`` under the policy with ``policy_hash``."""

    allowed: bool
    rules: tuple[RuleResult, ...]
    policy_hash: str
    model: str
    version: str
    target: str
    card_hash: str | None = None
    action: str = "promote"
    auto_promote: bool = False
    evaluated_at: str = ""
    current_holder: str | None = None
    audit_seq: int | None = None

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if not r.passed)

    def reasons(self) -> list[str]:
        return [f"{r.name}: {r.message}" for r in self.failed]

    def with_rule(self, result: RuleResult) -> Decision:
        """This decision with one more rule result (e.g. a check made under the promotion lock)."""
        rules = (*self.rules, result)
        return replace(self, rules=rules, allowed=all(r.passed for r in rules))

    def with_audit_seq(self, seq: int | None) -> Decision:
        return replace(self, audit_seq=seq)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: allowed, rules, audit_seq, plus what the decision is about."""
        return {
            "allowed": self.allowed,
            "rules": [r.to_dict() for r in self.rules],
            "audit_seq": self.audit_seq,
            "model": self.model,
            "version": self.version,
            "target": self.target,
            "action": self.action,
            "policy_hash": self.policy_hash,
            "card_hash": self.card_hash,
            "current_holder": self.current_holder,
            "auto_promote": self.auto_promote,
            "evaluated_at": self.evaluated_at,
        }

    def summary_tag(self) -> str:
        """A compact JSON value for an MLflow tag (tags are size-limited: only failed rule names)."""
        body = {
            "allowed": self.allowed,
            "action": self.action,
            "at": self.evaluated_at,
            "policy": self.policy_hash[:12],
            "failed": [r.name for r in self.failed][:20],
            "audit_seq": self.audit_seq,
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
