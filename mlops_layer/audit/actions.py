"""The vocabulary of audit actions: one constant per kind of governance event, so writers and readers agree."""

from __future__ import annotations

# registration
MODEL_REGISTER_STARTED = "model.register.started"
MODEL_REGISTERED = "model.registered"
MODEL_VERSION_DELETED = "model.version.deleted"  # a version deleted through the layer (not a finding)
MODEL_SNAPSHOT = "model.snapshot"  # `mlops migrate`: the frozen metrics/digests a version registered earlier lacked

# promotion, aliases, approvals
PROMOTION_DECIDED = "promotion.decided"  # decision "allowed"/"refused", reasons
ALIAS_SET = "alias.set"  # subject model, alias, version; details {"previous": version | None, "via": ...}
ALIAS_DELETED = "alias.deleted"  # subject model, alias; details {"previous": version | None, "via": ...}
ROLLBACK_DECIDED = "rollback.decided"
APPROVAL_GRANTED = "approval.granted"
APPROVAL_REJECTED = "approval.rejected"
APPROVAL_WITHDRAWN = "approval.withdrawn"  # a signed withdrawal: the signer's earlier statement no longer counts
CARD_CHANGED = "card.changed"
POLICY_CHANGED = "policy.changed"

# the governing server's registry guard: a change to governed evidence (alias delete, version/model delete, rename,
# mlops.* version tags, a registered version's run), decision "allowed" (admin) or "refused"
REGISTRY_GUARD = "registry.guard"
# independent evaluation: the layer's own scores of a version on a DVC-tracked holdout (reused while unchanged)
EVALUATION_RECORDED = "evaluation.recorded"

# drift and monitoring
DRIFT_CHECKED = "drift.checked"
MONITOR_BATCH = "monitor.batch"
ALERT_FIRED = "alert.fired"
ALERT_CLEARED = "alert.cleared"
ALERT_ACKNOWLEDGED = "alert.acknowledged"  # someone saw it; details {"comment": ...}
ALERT_RESOLVED = "alert.resolved"  # closed by a person (decision "resolved") or by an alias move ("superseded")
NOTIFICATION_FAILED = "notification.failed"
# the governing server refused posted drift/monitoring evidence (its recomputation disagreed with the claim)
EVIDENCE_REFUSED = "evidence.refused"

# retraining
RETRAIN_STARTED = "retrain.started"
RETRAIN_FAILED = "retrain.failed"
RETRAIN_COMPLETED = "retrain.completed"

# the trail about itself
RECONCILE_INCIDENT = "reconcile.incident"
CHECKPOINT = "audit.checkpoint"

# Decisions that precede an alias move: a decided-but-never-completed one explains an alias found moved.
ALIAS_DECISIONS = (PROMOTION_DECIDED, ROLLBACK_DECIDED)
ALIAS_EVENTS = (ALIAS_SET, ALIAS_DELETED)

ALL_ACTIONS = (
    MODEL_REGISTER_STARTED,
    MODEL_REGISTERED,
    MODEL_VERSION_DELETED,
    MODEL_SNAPSHOT,
    PROMOTION_DECIDED,
    ALIAS_SET,
    ALIAS_DELETED,
    ROLLBACK_DECIDED,
    APPROVAL_GRANTED,
    APPROVAL_REJECTED,
    APPROVAL_WITHDRAWN,
    CARD_CHANGED,
    POLICY_CHANGED,
    REGISTRY_GUARD,
    EVALUATION_RECORDED,
    DRIFT_CHECKED,
    MONITOR_BATCH,
    ALERT_FIRED,
    ALERT_CLEARED,
    ALERT_ACKNOWLEDGED,
    ALERT_RESOLVED,
    NOTIFICATION_FAILED,
    EVIDENCE_REFUSED,
    RETRAIN_STARTED,
    RETRAIN_FAILED,
    RETRAIN_COMPLETED,
    RECONCILE_INCIDENT,
    CHECKPOINT,
)
