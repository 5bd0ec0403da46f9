"""Starting points for the governance files ``mlops init`` writes: a promotion policy and a model card."""

from __future__ import annotations

POLICY_TEMPLATE = """\
# Promotion policy, reviewed like code. Every decision records this file's git blob hash.
version: 1

# Who holds which role. Keys are principals exactly as written in governance/allowed_signers; an approval
# counts only when signed by a key trusted there for that principal. Replace the example with real people.
roles:
  risk-officer@example.com: [model-risk]

targets:
  staging:
    auto_promote: true            # retraining may promote here without people
    rules:
      - type: metric_threshold    # on the candidate's logged evaluation metrics
        metric: accuracy
        min: 0.80
      - type: lineage_clean       # committed code, data pushed to the DVC remote, dvc.lock up to date
        require_committed: true
        require_data_in_remote: false
        require_lock_up_to_date: false

  champion:
    auto_promote: false
    rollback:
      requires_approvals: 0       # rollback to the previous holder is immediate (and audited)
    rules:
      - type: metric_threshold
        metric: accuracy
        min: 0.85
      - type: no_regression       # against the current holder of the alias (passes on a first promotion)
        metric: accuracy          # direction: optional for a metric the layer knows
        min_delta: 0.0
      # The layer can measure for itself: score this version and the holder on the same DVC-tracked holdout.
      # - type: evaluation
      #   data: data/holdout.csv  # or the model card's evaluation.data
      #   metrics:
      #     roc_auc: {min: 0.85, max_regression: 0.01}   # any scikit-learn metric name, or module:function
      - type: promotion_order
        must_have_held: staging
        min_days: 0
      - type: card_fields
        required: [business_owner, intended_use, approver_roles, sla, stakeholders]
      - type: approvals           # signed approvals, never by whoever trained or registered the version
        count: 1
        roles: [model-risk]
"""


def card_template(name: str) -> str:
    """A model card for ``name`` with every field to fill in."""
    return f"""\
# Model card of {name}: governance metadata, reviewed like code.
business_owner: owner@example.com
intended_use: What decisions the model supports, and what it must not be used for.
intended_users: [analysts]
prediction_consumption: How predictions are consumed (batch scoring, online API, a dashboard ...).
sla:
  availability_percent: 99.5
  max_latency_ms: 200
  support_hours: business hours
retraining:
  method: scheduled            # manual | scheduled | drift-triggered | performance-triggered | continuous
  cadence: monthly
approver_roles: [model-risk]   # roles from policy.yaml that decide promotion
sensitivity: internal          # public | internal | confidential | restricted
code_shareable: true
reuse_notes: ""
stakeholders:
  - name: Model owner
    role: owner
    email: owner@example.com
# What each column of the model's data is (drift checks and monitoring use it without flags):
# columns:
#   id: customer_id
#   timestamp: event_time        # monitoring places each batch at its data time
#   target: churned              # the labels `mlops monitor` uses when a batch has them
#   features: {{exclude: [notes]}}
#   task: classification         # classification | regression
# evaluation: {{data: data/holdout.csv}}   # the DVC-tracked holdout of `type: evaluation` rules
"""
