"""Scaffolding: the files `mlops init` writes parse, and a card's unanswered questions are placeholders that fail."""

from __future__ import annotations

import textwrap

import yaml

from mlops_layer.governance.cards import check_required, is_placeholder, open_questions, parse_card
from mlops_layer.governance.policy import parse_policy
from mlops_layer.governance.templates import POLICY_TEMPLATE, CardAnswers, card_template, render_card
from mlops_layer.monitoring.alerts import parse_alert_rules
from mlops_layer.scaffold import scaffold_files

FULL = CardAnswers(
    owner="owner@example.com",
    use="Flags churn risk for retention offers; not for pricing.",
    users=("retention team",),
    consumption="nightly batch scoring",
    availability_percent=99.5,
    max_latency_ms=200,
    support_hours="business hours",
    retraining_method="drift-triggered",
    cadence="monthly",
    approver_roles=("model-risk",),
    sensitivity="internal",
    code_shareable=True,
    reuse_notes="",
    stakeholders=(("Ops", "ops@example.com"), ("Pager", "https://hooks.example.com/x")),
)


def test_a_fully_answered_card_is_valid_with_no_open_question() -> None:
    card = parse_card(render_card("churn", FULL).encode(), "churn.yaml", "churn")
    assert card.placeholders == {}
    assert card.sla.max_latency_ms == 200 and card.retraining.method == "drift-triggered"
    assert [c.kind for s in card.stakeholders for c in s.channels] == ["email", "webhook"]
    assert check_required(card, ("business_owner", "sla", "stakeholders", "approver_roles")) == []


def test_unanswered_questions_are_placeholders_that_fail_card_fields_with_their_line() -> None:
    text = render_card("churn", CardAnswers(owner="owner@example.com", use="churn offers"))
    card = parse_card(text.encode(), "governance/models/churn.yaml", "churn")
    assert {"sla", "retraining", "approver_roles", "stakeholders", "sensitivity"} <= set(card.placeholders)
    assert check_required(card, ("business_owner", "intended_use", "sla", "stakeholders")) == ["sla", "stakeholders"]
    assert not card.present("sla.availability_percent")
    lines = text.splitlines()
    for problem in open_questions(card):
        where, _, rest = problem.partition(": field '")
        line = int(where.rsplit(":", 1)[1])
        assert lines[line - 1].startswith(rest.split("'")[0] + ":") and "TODO" in lines[line - 1]


def test_the_template_init_writes_is_all_questions_and_parses() -> None:
    card = parse_card(card_template("demo").encode(), "demo.yaml", "demo")
    assert card.name == "demo" and len(card.placeholders) >= 10
    assert is_placeholder(" TODO: later") and is_placeholder("todo")
    assert not is_placeholder("Todoist team") and not is_placeholder(["TODO"])


def test_policy_template_parses_and_its_commented_sections_work_when_uncommented() -> None:
    policy = parse_policy(POLICY_TEMPLATE.encode(), "policy.yaml")
    assert set(policy.targets) == {"staging", "champion"}
    head, _, tail = POLICY_TEMPLATE.partition("# drift:")
    uncommented = head + "\n".join(
        line.replace("# ", "", 1) if line.startswith(("drift:", "# alerts:", "#   ")) else line
        for line in ("drift:" + tail).splitlines()
    )
    data = yaml.safe_load(uncommented)
    assert data["drift"]["drift_share"] == 0.5 and data["drift"]["models"]["my-model"] == {"drift_share": 0.3}
    rules = parse_alert_rules(data["alerts"], source="policy.yaml")
    assert [r.name for r in rules] == ["data-drift", "accuracy-floor"]
    parse_policy(uncommented.encode(), "policy.yaml")  # the whole uncommented policy is still valid


def test_init_writes_card_template_policy_and_signers_with_instructions() -> None:
    files = scaffold_files()
    assert {"governance/card-template.yaml", "governance/policy.yaml", "governance/allowed_signers"} <= set(files)
    assert "ssh-keygen -t ed25519" in files["governance/allowed_signers"]
    assert "# alerts:" in files["governance/policy.yaml"] and "# drift:" in files["governance/policy.yaml"]
    assert textwrap.dedent(files["governance/card-template.yaml"]).count("TODO") >= 10
