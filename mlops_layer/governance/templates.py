"""Starting points for the governance files ``mlops init`` writes: a promotion policy and a model card."""

from __future__ import annotations

import json
from dataclasses import dataclass

POLICY_TEMPLATE = """\
# Promotion policy, reviewed like code. Every decision records this file's git blob hash.
version: 1

# Who holds which role. Keys are principals exactly as written in governance/allowed_signers; an approval
# counts only when signed by a key trusted there for that principal. Replace the example with real people.
roles:
  risk-officer@example.com: [model-risk]

# Team mode: MLflow logins whose principal is another name (unmapped logins are their own principal), and the
# logins CI trains under (a person signs `mlops sign-training` for them; see the README).
# principals:
#   risk: risk-officer@example.com
# service_accounts: [ci-bot]

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
# Lower-is-better metrics: metric_threshold takes `max:` (a ceiling) instead of `min:`, and no_regression takes
# `direction: lower`, e.g.
#     - {type: metric_threshold, metric: rmse, max: 12.5}
#     - {type: no_regression, metric: rmse, direction: lower, min_delta: 0.0}
# Other rules: drift_passed (the version's last drift check passed) and, per target, `rollback:` above.

# Drift gate (`mlops drift`, `mlops monitor`): how a production batch is compared with the reference profile logged
# at training time. Every key is optional; the defaults are shown. Uncomment to change them.
# drift:
#   numeric_method: wasserstein        # wasserstein | psi | jensenshannon | ks
#   categorical_method: jensenshannon  # jensenshannon | psi | chisquare
#   thresholds: {wasserstein: 0.1, psi: 0.1, jensenshannon: 0.1, ks: 0.05, chisquare: 0.05}
#   drift_share: 0.5                   # the batch drifts when this share of its columns drifted
#   exclude: [customer_id]             # ids and timestamps are not features
#   prediction_column: prediction      # compare the distribution of the model's predictions too
#   models:                            # per-model overrides of any key above
#     my-model: {drift_share: 0.3}

# Alert rules (`mlops monitor NAME@ALIAS --batch FILE`): M-of-N windows over monitored batches, a cooldown, and
# `clear_after` healthy batches to close. The model card's stakeholders are notified when an alert fires or closes;
# people acknowledge or resolve alerts with `mlops alerts ack|resolve`. Uncomment to monitor.
# alerts:
#   - name: data-drift
#     type: drift_share                # or prediction_drift (max), metric_threshold (metric, min/max),
#     max: 0.3                         #    metric_drop (metric, direction, max_drop / max_relative_drop)
#     window: {breaches: 2, of: 3}     # fire when 2 of the last 3 batches breach
#     cooldown: {hours: 6}             # after firing, stay quiet this long (or {batches: N})
#     clear_after: 3                   # close after 3 healthy batches in a row
#     severity: critical               # info | warning | critical
#   - name: accuracy-floor
#     type: metric_threshold           # needs `--labels COLUMN` on `mlops monitor`
#     metric: accuracy
#     min: 0.85
"""


@dataclass(frozen=True)
class CardAnswers:
    """Answers to the governance questions of a model card; None leaves the question marked as a placeholder."""

    owner: str | None = None
    use: str | None = None
    users: tuple[str, ...] = ()
    consumption: str | None = None
    availability_percent: float | None = None
    max_latency_ms: float | None = None
    support_hours: str | None = None
    retraining_method: str | None = None
    cadence: str | None = None
    approver_roles: tuple[str, ...] = ()
    sensitivity: str | None = None
    code_shareable: bool | None = None
    reuse_notes: str | None = None
    stakeholders: tuple[tuple[str, str], ...] = ()  # (name, e-mail or http(s) URL)


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _todo(question: str) -> str:
    return _q(f"TODO: {question}")


def _list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def _num(value: float) -> str:
    return f"{value:g}"


def render_card(name: str, a: CardAnswers | None = None) -> str:
    """The model card of ``name``: each governance question with a comment, unanswered ones as ``TODO:`` placeholders.

    A placeholder keeps the card readable (``mlops card show``) but fails ``mlops card validate`` and the
    ``card_fields`` rule until it is answered.
    """
    a = a or CardAnswers()
    out = [
        f"# Model card of {name}: governance metadata, reviewed like code (pull request). Answer every TODO:",
        "# `mlops card validate " + name + "` lists the open questions; the card_fields rule refuses promotion",
        "# while a required one is open.",
        "",
        "# Who answers for the model's business outcome (an e-mail or a name)?",
        f"business_owner: {_q(a.owner) if a.owner else _todo('who answers for the business outcome?')}",
        "# What decisions does the model support, and what must it NOT be used for?",
        f"intended_use: {_q(a.use) if a.use else _todo('what is it for, and what not?')}",
        "# Who consumes its predictions (teams, roles)?",
        f"intended_users: {_list(a.users) if a.users else _todo('which teams or roles use it?')}",
        "# How are predictions consumed: batch scoring, an online API, a dashboard ...?",
        "prediction_consumption: "
        + (_q(a.consumption) if a.consumption else _todo("batch, online API, dashboard ...?")),
        "# The service it must give (availability %, latency, support hours).",
    ]
    if a.availability_percent is None:
        out.append(f"sla: {_todo('availability_percent: 99.5, max_latency_ms: 200, support_hours: ...')}")
    else:
        out += ["sla:", f"  availability_percent: {_num(a.availability_percent)}"]
        if a.max_latency_ms is not None:
            out.append(f"  max_latency_ms: {_num(a.max_latency_ms)}")
        if a.support_hours:
            out.append(f"  support_hours: {_q(a.support_hours)}")
    out.append("# How and how often it is retrained: manual | scheduled | drift-triggered | performance-triggered |")
    out.append("# continuous, and a cadence (monthly, 14d, on drift alert ...).")
    if a.retraining_method is None or a.cadence is None:
        out.append(f"retraining: {_todo('method: scheduled, cadence: monthly')}")
    else:
        out += ["retraining:", f"  method: {a.retraining_method}", f"  cadence: {_q(a.cadence)}"]
    out += [
        "# Who decides promotion: roles from governance/policy.yaml (`roles:`) whose signed approval counts.",
        "approver_roles: "
        + (_list(a.approver_roles) if a.approver_roles else _todo("roles from policy.yaml, e.g. [model-risk]")),
        "# How sensitive are the model and its data: public | internal | confidential | restricted.",
        f"sensitivity: {a.sensitivity if a.sensitivity else _todo('public, internal, confidential or restricted?')}",
        "# May the training code be shared beyond the team (never for a restricted model)?",
        "code_shareable: "
        + (str(a.code_shareable).lower() if a.code_shareable is not None else _todo("true or false?")),
        "# Can the model or its parts be reused elsewhere, and under which conditions?",
        f"reuse_notes: {_q(a.reuse_notes) if a.reuse_notes is not None else _todo('reuse conditions, or nothing')}",
        "# Stakeholders to alert (monitoring, approvals waiting): name, role, and an email and/or a webhook.",
    ]
    if a.stakeholders:
        out.append("stakeholders:")
        for who, where in a.stakeholders:
            channel = "webhook" if where.startswith(("http://", "https://")) else "email"
            out += [f"  - name: {_q(who)}", f"    {channel}: {_q(where)}"]
    else:
        out.append(f"stakeholders: {_todo('- {name: Ops, email: ops@example.com}')}")
    out += [
        "# What each column of the model's data is (drift checks and monitoring use it without flags):",
        "# columns:",
        "#   id: customer_id",
        "#   timestamp: event_time        # monitoring places each batch at its data time",
        "#   target: churned              # the labels `mlops monitor` uses when a batch has them",
        "#   features: {exclude: [notes]}",
        "#   task: classification         # classification | regression",
        "# evaluation: {data: data/holdout.csv}   # the DVC-tracked holdout of `type: evaluation` rules",
    ]
    return "\n".join(out) + "\n"


def card_template(name: str = "NAME") -> str:
    """The commented template ``mlops init`` writes (``governance/card-template.yaml``): every question open."""
    return render_card(name)
