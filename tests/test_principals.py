"""Principals and service accounts in policy.yaml, and signed training statements: bad sections name file:line and
the value (exit 2); a statement `mlops sign-training` prints verifies once committed on the card; a forged, expired
or misdirected one does not."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import commit_governance
from typer.testing import CliRunner

from mlops_layer import signing
from mlops_layer.cli.main import app
from mlops_layer.errors import ConfigError
from mlops_layer.governance.approvals import default_verifier
from mlops_layer.governance.cards import parse_card
from mlops_layer.governance.identity import TRAINING_NAMESPACE, sign_identity
from mlops_layer.governance.policy import parse_policy
from mlops_layer.governance.principals import resolve_trainer, training_statement

runner = CliRunner()

BASE = """\
version: 1
roles:
  dana@example.com: [risk]
  april: [risk]
targets:
  champion:
    rules:
      - {type: approvals, count: 1, roles: [risk]}
"""
CARD = """\
business_owner: bob@example.com
intended_use: Rank applications for review.
intended_users: [analysts]
prediction_consumption: nightly batch
sla: {availability_percent: 99.5}
retraining: {method: scheduled, cadence: monthly}
approver_roles: [risk]
sensitivity: internal
code_shareable: false
"""


def policy_error(extra: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_policy((BASE + textwrap.dedent(extra)).encode(), "governance/policy.yaml")
    return str(info.value)


def test_principals_and_service_accounts_parse() -> None:
    policy = parse_policy(
        (BASE + "principals:\n  dana: dana@example.com\nservice_accounts: [ci-bot]\n").encode(), "policy.yaml"
    )
    p = policy.principals
    assert p.principal_of("dana") == "dana@example.com"
    assert p.principal_of("april") == "april"  # unmapped: its own principal
    assert p.is_service_account("ci-bot") and not p.is_service_account("dana@example.com")


@pytest.mark.parametrize(
    ("extra", "line", "words"),
    [
        ("principals:\n  dana: x@example.com\n  dan: x@example.com\n", 11, "'dana' and 'dan' both map"),
        ("principals:\n  dana: '*'\n", 10, "principal '*' contains '*'"),
        ("principals:\n  dana: '*@example.com'\n", 10, "'*@example.com' contains '*'"),
        ("principals:\n  dana: ''\n", 10, "must not be empty"),
        ('principals:\n  dana: "dana\\x07"\n', 10, "control character"),
        ("principals:\n  dana: '!april'\n", 10, "'!april' contains '!'"),
        ("principals:\n  dana: a b\n", 10, "whitespace"),
        ("principals:\n  - dana\n", 9, "expected a mapping, got a list"),
        ("principals:\n  dana: [a, b]\n", 10, "expected a string"),
        ("service_accounts: ci-bot\n", 9, "expected a list"),
        ("service_accounts: [ci-bot, ci-bot]\n", 9, "'ci-bot' is listed twice"),
        ("service_accounts: [april]\n", 9, "'april' holds roles (risk)"),
        ("service_accounts: ['ci*']\n", 9, "'ci*' contains '*'"),
        ("principal:\n  dana: x\n", 9, "unknown field 'principal'"),
    ],
)
def test_bad_sections_name_the_file_the_line_and_the_value(extra: str, line: int, words: str) -> None:
    message = policy_error(extra)
    assert message.startswith(f"governance/policy.yaml:{line}:"), message
    assert words in message, message


def test_a_wildcard_principal_cannot_hold_a_role() -> None:
    text = BASE.replace("  april: [risk]", "  '*@example.com': [risk]")
    with pytest.raises(ConfigError) as info:
        parse_policy(text.encode(), "governance/policy.yaml")
    assert str(info.value).startswith("governance/policy.yaml:4:") and "'*@example.com' contains '*'" in str(info.value)


def test_policy_validate_exits_2_naming_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "policy.yaml").write_text(BASE + "principals:\n  dana: x@e.com\n  dan: x@e.com\n")
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, ["policy", "validate"])
    assert out.exit_code == 2, out.output
    assert "policy.yaml:11:" in out.output and "'dana' and 'dan' both map to the principal 'x@e.com'" in out.output


def test_a_login_cannot_share_a_mapped_principal() -> None:
    policy = parse_policy((BASE + "principals:\n  dana: april\n").encode(), "governance/policy.yaml")
    assert policy.principals.principal_of("dana") == "april"
    with pytest.raises(ConfigError) as info:
        policy.principals.principal_of("april")  # the real april would act as dana's principal
    assert "governance/policy.yaml" in str(info.value) and "two logins would act as one" in str(info.value)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A committed governance folder: dana's key trusted for mlops-training, mallory's not; ci-bot a service account."""
    root = tmp_path / "proj"
    (root / "governance" / "models").mkdir(parents=True)
    keys = {who: tmp_path / "keys" / who for who in ("dana", "mallory")}
    pub = signing.generate_key(keys["dana"], "dana")
    signing.generate_key(keys["mallory"], "mallory")
    (root / "governance" / "allowed_signers").write_text(
        signing.allowed_signers_line("dana@example.com", pub, ["mlops-training", "mlops-approval"]) + "\n"
    )
    (root / "governance" / "policy.yaml").write_text(BASE + "service_accounts: [ci-bot]\n")
    (root / "governance" / "models" / "churn.yaml").write_text(CARD)
    commit_governance(root)
    monkeypatch.chdir(root)
    return {"root": root, **keys}


def _resolve(card_text: str, root: Path, at: datetime | None = None) -> tuple[str | None, str | None]:
    card = parse_card(card_text.encode(), "governance/models/churn.yaml", "churn")
    policy = parse_policy((root / "governance" / "policy.yaml").read_bytes(), "policy.yaml")
    found = resolve_trainer(
        "ci-bot",
        "churn",
        policy.principals,
        card.training_statements,
        root / "governance" / "allowed_signers",
        default_verifier(),
        at or datetime.now(timezone.utc),
    )
    return found.principal, found.problem


def test_sign_training_prints_an_entry_that_verifies_on_the_card(project: dict[str, Path]) -> None:
    out = runner.invoke(
        app,
        ["sign-training", "--model", "churn", "--service-account", "ci-bot", "--key", str(project["dana"])]
        + ["--until", "2099-01-31", "--json"],
    )
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["principal"] == "dana@example.com" and body["service_account"] == "ci-bot"
    st = body["entry"]["statement"]
    assert st["role"] == "trainer" and st["model"] == "churn" and st["until"] == "2099-01-31T23:59:59Z"
    # the printed YAML, pasted under the card, reads back and verifies against the committed signers
    principal, problem = _resolve(CARD + body["yaml"], project["root"])
    assert (principal, problem) == ("dana@example.com", None)
    # ...but not for a time after its expiry
    late = datetime(2099, 2, 1, tzinfo=timezone.utc)
    principal, problem = _resolve(CARD + body["yaml"], project["root"], late)
    assert principal == "ci-bot" and problem is not None and "expired" in problem
    # human output: the YAML on stdout, the instructions on stderr
    plain = runner.invoke(
        app, ["sign-training", "--model", "churn", "--service-account", "ci-bot", "--key", str(project["dana"])]
    )
    assert plain.exit_code == 0 and plain.stdout.startswith("training_statements:\n  - statement:")


def test_sign_training_refuses_an_untrusted_key_and_bad_input(project: dict[str, Path]) -> None:
    args = ["sign-training", "--model", "churn", "--service-account", "ci-bot", "--key"]
    out = runner.invoke(app, [*args, str(project["mallory"])])
    assert out.exit_code == 1 and "not trusted" in out.output, out.output
    out = runner.invoke(app, [*args, str(project["dana"]), "--until", "someday"])
    assert out.exit_code == 2 and "--until 'someday' is not a date" in out.output, out.output
    out = runner.invoke(app, ["sign-training", "--model", "../x", "--service-account", "ci-bot"])
    assert out.exit_code == 2 and "model name '../x' is not valid" in out.output, out.output
    out = runner.invoke(app, ["sign-training", "--help"])
    assert out.exit_code == 0 and "Example: mlops sign-training" in out.output


def _entry(statement: dict[str, str | None], key: Path) -> str:
    proof = sign_identity(statement, key, TRAINING_NAMESPACE)
    lines = ["training_statements:", "  - statement:"]
    lines += [f"      {k}: {json.dumps(v)}" for k, v in statement.items()]
    lines += ["    signature: |", *(f"      {x}" for x in str(proof["signature"]).strip().splitlines())]
    return "\n".join(lines) + "\n"


def test_forged_altered_and_misdirected_statements_name_nobody(project: dict[str, Path]) -> None:
    root = project["root"]
    now = "2026-01-01T00:00:00Z"
    # mallory signs claiming to be dana: her key is not trusted for dana
    forged = _entry(training_statement("dana@example.com", "ci-bot", "churn", None, now), project["mallory"])
    principal, problem = _resolve(CARD + forged, root)
    assert principal == "ci-bot" and problem is not None
    assert problem.startswith("trained by service account ci-bot with no signed training statement naming the human")
    assert "does not verify" in problem
    # dana's genuine statement for another model does not vouch for this one
    other = _entry(training_statement("dana@example.com", "ci-bot", "fraud", None, now), project["dana"])
    assert _resolve(CARD + other, root)[0] == "ci-bot"
    # a genuine statement edited after signing (the model swapped) does not verify
    genuine = _entry(training_statement("dana@example.com", "ci-bot", "fraud", None, now), project["dana"])
    assert _resolve(CARD + genuine.replace('"fraud"', '"churn"'), root)[0] == "ci-bot"
    # a trainer proof for a run (identity: signed) is not a training statement, and vice versa
    run_proof = _entry(
        {"schema": "mlops.identity/v1", "role": "trainer", "principal": "dana@example.com", "run_id": "r1"},
        project["dana"],
    )
    assert _resolve(CARD + run_proof, root)[0] == "ci-bot"


# -- local mode: the same attribution, on a real MLflow store and SQLite trail ------------------------------------
LOCAL_POLICY = BASE.replace("  april: [risk]", "  april@example.com: [risk]") + "service_accounts: [ci-bot]\n"


def _local_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, card_extra: str = ""
) -> tuple[Any, dict[str, Path]]:
    import hashlib

    from mlflow import MlflowClient

    from mlops_layer import api
    from mlops_layer.audit import actions
    from mlops_layer.audit.store import AuditStore

    root = tmp_path / "local"
    (root / "governance" / "models").mkdir(parents=True)
    keys = {who: tmp_path / "lkeys" / who for who in ("dana", "april")}
    lines = []
    for who, path in keys.items():
        pub = signing.generate_key(path, who)
        lines.append(signing.allowed_signers_line(f"{who}@example.com", pub, ["mlops-approval", "mlops-training"]))
    (root / "governance" / "allowed_signers").write_text("\n".join(lines) + "\n")
    (root / "governance" / "policy.yaml").write_text(LOCAL_POLICY)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (root / "mlops.yaml").write_text(f"tracking_uri: {uri}\naudit_url: sqlite:///.mlops/audit.db\n")
    commit_governance(root)
    monkeypatch.chdir(root)
    cfg = api.settings(root)
    if card_extra is not None:
        statement = api.sign_training("churn", "ci-bot", key_path=keys["dana"], settings=cfg)
        (root / "governance" / "models" / "churn.yaml").write_text(CARD + (statement.yaml if card_extra else ""))
        commit_governance(root, "card")
    client = MlflowClient(uri, uri)
    exp = client.create_experiment("ci", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(exp)
    client.log_text(run.info.run_id, "model bytes", "model/model.pkl")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("churn")
    # CI declares itself (MLOPS_ACTOR=ci-bot): in local mode the trainer is the declared name
    client.create_model_version(
        "churn",
        f"runs:/{run.info.run_id}/model",
        run_id=run.info.run_id,
        tags={"mlops.trained_by": "ci-bot", "mlops.registered_by": "ci-bot"},
    )
    with AuditStore.open(cfg.audit_url) as store:
        store.append(
            actions.MODEL_REGISTERED,
            actor="ci-bot",
            subject={"model": "churn", "version": "1"},
            run_id=run.info.run_id,
            details={"artifacts": {"model.pkl": "sha256:" + hashlib.sha256(b"model bytes").hexdigest()}, "metrics": {}},
        )
    return cfg, keys


@pytest.mark.parametrize("with_statement", [False, True])
def test_local_mode_attributes_ci_training_to_the_signer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_statement: bool
) -> None:
    from mlops_layer import api
    from mlops_layer.errors import ApprovalError

    cfg, keys = _local_project(tmp_path, monkeypatch, "yes" if with_statement else "")
    if not with_statement:
        api.approve("churn", "1", "champion", key_path=keys["april"], settings=cfg)
        decision = api.check("churn", "1", "champion", settings=cfg)
        approvals = next(r for r in decision.rules if r.name == "approvals")
        assert not decision.allowed and approvals.message.startswith(
            "trained by service account ci-bot with no signed training statement naming the human"
        ), approvals.message
        return
    with pytest.raises(ApprovalError, match="dana@example.com trained churn v1"):
        api.approve("churn", "1", "champion", key_path=keys["dana"], settings=cfg)
    api.approve("churn", "1", "champion", key_path=keys["april"], settings=cfg)
    assert api.check("churn", "1", "champion", settings=cfg).allowed
