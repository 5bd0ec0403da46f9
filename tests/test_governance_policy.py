"""Policy and model-card parsing: every error names the file, the field and the line."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from mlops_layer.errors import ConfigError, NotFoundError
from mlops_layer.governance.cards import load_card, parse_card
from mlops_layer.governance.located_yaml import git_blob_hash
from mlops_layer.governance.policy import (
    Approvals,
    LineageClean,
    MetricThreshold,
    NoRegression,
    PromotionOrder,
    load_policy,
    parse_policy,
    rule_name,
)
from mlops_layer.governance.templates import POLICY_TEMPLATE, card_template

GOOD_POLICY = textwrap.dedent(
    """\
    version: 1
    roles:
      alice@example.com: [model-risk]
      bob@example.com: [business-owner, model-risk]
    targets:
      staging:
        auto_promote: true
        rules:
          - type: metric_threshold
            metric: accuracy
            min: 0.8
          - type: lineage_clean
            require_data_in_remote: false
      champion:
        rollback:
          requires_approvals: 1
          roles: [model-risk]
        rules:
          - {type: no_regression, metric: rmse, direction: lower, min_delta: 0.01, min_relative: 0.02}
          - {type: promotion_order, must_have_held: staging, min_days: 2}
          - {type: card_fields, required: [business_owner, sla.max_latency_ms]}
          - {type: drift_passed, max_age_days: 7}
          - {type: approvals, count: 2, roles: [model-risk, business-owner], require_each_role: true}
    models:
      special:
        targets:
          champion:
            rules: []
    """
)


def policy_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_policy(textwrap.dedent(text).encode(), "governance/policy.yaml")
    return str(info.value)


def test_good_policy_parses_into_values() -> None:
    policy = parse_policy(GOOD_POLICY.encode(), "policy.yaml")
    staging = policy.target("m", "staging")
    assert staging is not None and staging.auto_promote
    assert staging.rules[0] == MetricThreshold(metric="accuracy", min=0.8, line=9)
    assert isinstance(staging.rules[1], LineageClean)
    assert staging.rules[1].require_committed and not staging.rules[1].require_data_in_remote
    champion = policy.target("m", "champion")
    assert champion is not None and not champion.auto_promote
    assert champion.rollback.requires_approvals == 1
    nr = champion.rules[0]
    assert isinstance(nr, NoRegression) and nr.direction == "lower" and nr.min_relative == 0.02
    assert isinstance(champion.rules[1], PromotionOrder) and champion.rules[1].min_days == 2
    appr = champion.rules[4]
    assert isinstance(appr, Approvals) and appr.count == 2 and appr.exclude_registrant and appr.exclude_trainer
    assert [rule_name(r) for r in champion.rules] == [
        "no_regression:rmse",
        "promotion_order:staging",
        "card_fields",
        "drift_passed",
        "approvals",
    ]
    assert policy.roles_of("bob@example.com") == ("business-owner", "model-risk")
    assert policy.holders_of("model-risk") == ("alice@example.com", "bob@example.com")
    special = policy.target("special", "champion")
    assert special is not None and special.rules == ()
    assert policy.target("m", "nope") is None


def test_policy_hash_is_git_blob_hash(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD_POLICY)
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert load_policy(path).policy_hash == git.stdout.strip() == git_blob_hash(path.read_bytes())


def test_malformed_yaml_names_file_and_line() -> None:
    msg = policy_error(
        """\
        roles: {}
        targets:
          staging:
            rules: [
        """
    )
    assert "governance/policy.yaml:" in msg and "not valid YAML" in msg
    msg = policy_error("roles: {}\ntargets:\n  staging:\n    rules:\n  - type: x\n   bad: indent\n")
    assert "governance/policy.yaml:" in msg


def test_unknown_rule_type_names_line_and_field() -> None:
    msg = policy_error(
        """\
        roles: {}
        targets:
          champion:
            rules:
              - type: metric_threshold
                metric: f1
                min: 0.5
              - type: vibes_check
        """
    )
    assert msg.startswith("governance/policy.yaml:8: field 'targets.champion.rules[1].type': unknown rule type")
    assert "metric_threshold" in msg  # the hint lists the known types


def test_wrong_field_types_are_refused_with_line() -> None:
    msg = policy_error(
        """\
        roles: {}
        targets:
          staging:
            rules:
              - type: metric_threshold
                metric: accuracy
                min: "high"
        """
    )
    assert "policy.yaml:7: field 'targets.staging.rules[0].min': expected a number" in msg
    msg = policy_error("roles: {}\ntargets:\n  staging:\n    auto_promote: yes please\n    rules: []\n")
    assert ":4: field 'targets.staging.auto_promote': expected true or false" in msg
    msg = policy_error("roles: {}\ntargets:\n  staging:\n    rules:\n      - {type: approvals, count: 0}\n")
    assert "count" in msg and "at least 1" in msg


def test_misspelt_field_is_refused_not_ignored() -> None:
    msg = policy_error(
        """\
        roles: {}
        targets:
          staging:
            rules:
              - type: metric_threshold
                metric: accuracy
                minimum: 0.9
        """
    )
    assert ":7: field 'targets.staging.rules[0].minimum': unknown field 'minimum'" in msg
    assert "min" in msg  # hint lists what a metric_threshold takes


def test_other_policy_mistakes() -> None:
    assert "missing required field 'metric'" in policy_error(
        "roles: {}\ntargets:\n  s:\n    rules:\n      - {type: metric_threshold, min: 1}\n"
    )
    assert "needs 'min' and/or 'max'" in policy_error(
        "roles: {}\ntargets:\n  s:\n    rules:\n      - {type: metric_threshold, metric: a}\n"
    )
    assert "must be one of higher, lower" in policy_error(
        "roles: {}\ntargets:\n  s:\n    rules:\n      - {type: no_regression, metric: a, direction: up}\n"
    )
    assert "held by nobody" in policy_error(
        "roles: {a@x.org: [risk]}\ntargets:\n  s:\n    rules:\n      - {type: approvals, roles: [rsik]}\n"
    )
    assert "not a model-card field" in policy_error(
        "roles: {}\ntargets:\n  s:\n    rules:\n      - {type: card_fields, required: [owner]}\n"
    )
    assert "not a valid MLflow alias" in policy_error("roles: {}\ntargets:\n  latest:\n    rules: []\n")
    assert "defined twice" in policy_error("roles: {}\ntargets:\n  s:\n    rules: []\n  s:\n    rules: []\n")
    assert "two rules are both named" in policy_error(
        "roles: {}\ntargets:\n  s:\n    rules:\n      - {type: drift_passed}\n      - {type: drift_passed}\n"
    )
    assert "missing required field 'targets'" in policy_error("roles: {}\n")
    assert "the policy is empty" in policy_error("")
    assert "expected a mapping" in policy_error("- just\n- a list\n")


def test_sections_of_other_areas_are_left_to_them() -> None:
    text = GOOD_POLICY + "drift:\n  drift_share: 0.5\nalerts:\n  - {name: x}\n"
    assert set(parse_policy(text.encode(), "policy.yaml").targets) == {"staging", "champion"}
    assert "unknown field 'drfit'" in policy_error(GOOD_POLICY + "drfit: {}\n")


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="promotion policy"):
        load_policy(tmp_path / "policy.yaml")


def test_policy_template_parses() -> None:
    policy = parse_policy(POLICY_TEMPLATE.encode(), "policy.yaml")
    assert set(policy.targets) == {"staging", "champion"}


# -- model cards ---------------------------------------------------------------------------------------------
GOOD_CARD = textwrap.dedent(
    """\
    business_owner: carol@example.com
    intended_use: Rank loan applications for manual review.
    intended_users: [credit analysts]
    prediction_consumption: Nightly batch scores written to the CRM.
    sla:
      availability_percent: 99.5
      max_latency_ms: 300
    retraining:
      method: drift-triggered
      cadence: monthly or on drift alert
    approver_roles: [model-risk, business-owner]
    sensitivity: confidential
    code_shareable: false
    reuse_notes: Not validated outside the EU.
    stakeholders:
      - name: Credit ops
        email: credit-ops@example.com
        webhook: https://hooks.example.com/credit
        alerts: [drift, performance]
      - name: On call
        webhook: https://hooks.example.com/oncall
    """
)


def card_error(text: str, name: str = "credit") -> str:
    with pytest.raises(ConfigError) as info:
        parse_card(textwrap.dedent(text).encode(), "governance/models/credit.yaml", name)
    return str(info.value)


def test_good_card(tmp_path: Path) -> None:
    (tmp_path / "credit.yaml").write_text(GOOD_CARD)
    card = load_card(tmp_path, "credit")
    assert card.business_owner == "carol@example.com"
    assert card.approver_roles == ("model-risk", "business-owner")
    assert card.sla.availability_percent == 99.5 and card.sla.max_latency_ms == 300
    assert card.retraining.method == "drift-triggered"
    assert card.sensitivity == "confidential" and card.code_shareable is False
    assert [c.kind for c in card.stakeholders[0].channels] == ["email", "webhook"]
    assert card.stakeholders[0].alerts == ("drift", "performance")
    assert card.card_hash == git_blob_hash(GOOD_CARD.encode())
    assert card.present("sla.max_latency_ms") and not card.present("limitations")
    assert card.lines["sla"] == 5


def test_card_errors_name_field_and_line(tmp_path: Path) -> None:
    msg = card_error(GOOD_CARD.replace("sensitivity: confidential", "sensitivity: secret"))
    assert msg.startswith("governance/models/credit.yaml:12: field 'sensitivity': must be one of public")
    msg = card_error(GOOD_CARD.replace("availability_percent: 99.5", "availability_percent: 120"))
    assert "credit.yaml:6: field 'sla.availability_percent': must be at most 100" in msg
    msg = card_error(GOOD_CARD.replace("    email: credit-ops@example.com\n", "    email: nobody\n"))
    assert "field 'stakeholders[0].email'" in msg and "not an email address" in msg
    msg = card_error(
        GOOD_CARD.replace("  - name: On call\n    webhook: https://hooks.example.com/oncall\n", "  - name: On call\n")
    )
    assert "credit.yaml:20:" in msg and "has no channel" in msg
    msg = card_error(GOOD_CARD.replace("business_owner: carol@example.com\n", ""))
    assert "missing required field 'business_owner'" in msg
    msg = card_error(GOOD_CARD + "owner_team: x\n")
    assert "credit.yaml:22: field 'owner_team': unknown field" in msg
    msg = card_error(GOOD_CARD.replace("code_shareable: false", "code_shareable: 'no'"))
    assert "field 'code_shareable': expected true or false" in msg
    msg = card_error("name: other\n" + GOOD_CARD)
    assert "field 'name': says 'other'" in msg
    assert "not valid YAML" in card_error("business_owner: [unclosed\n")


def test_missing_card_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="model card of 'credit'"):
        load_card(tmp_path, "credit")


def test_card_template_is_valid() -> None:
    card = parse_card(card_template("demo").encode(), "demo.yaml", "demo")
    assert card.name == "demo"


def test_drift_passed_names_a_dataset_inside_the_project() -> None:
    base = "version: 1\nroles: {}\ntargets:\n  champion:\n    rules:\n      - {type: drift_passed, dataset: %s}\n"
    rule = parse_policy((base % "data/prod/batch.csv").encode(), "policy.yaml").targets["champion"].rules[0]
    assert getattr(rule, "dataset", None) == "data/prod/batch.csv"
    for bad in ("../outside.csv", "/etc/passwd"):
        message = policy_error(base % bad)
        assert "governance/policy.yaml:6" in message and "not a path inside the project" in message, message


def test_monitoring_roles_name_roles_someone_holds() -> None:
    """Who may post drift and monitoring evidence to the governing server: roles of the policy, checked at file:line."""
    policy = parse_policy(b"roles: {olga: [ops], april: [risk]}\nmonitoring_roles: [ops]\ntargets: {}\n", "p.yaml")
    assert (
        policy.monitoring_roles == ("ops",)
        and parse_policy(b"roles: {}\ntargets: {}\n", "p.yaml").monitoring_roles == ()
    )
    message = policy_error("roles: {olga: [ops]}\ntargets: {}\nmonitoring_roles: [opps]\n")
    assert "governance/policy.yaml:3" in message and "opps" in message and "held by nobody" in message
    assert "governance/policy.yaml:3" in policy_error("roles: {olga: [ops]}\ntargets: {}\nmonitoring_roles: {a: 1}\n")
