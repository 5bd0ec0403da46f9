"""Governance end to end on real tools: a MLflow sqlite store, the SQLite audit trail, real SSH keys, the CLI."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import commit_governance
from typer.testing import CliRunner

from mlops_layer import api, signing
from mlops_layer.audit import actions
from mlops_layer.audit.store import AuditStore
from mlops_layer.cli.main import app
from mlops_layer.config import Settings
from mlops_layer.errors import ApprovalError
from mlops_layer.governance.approvals import SignedApproval, default_signer, make_statement, sign_statement
from mlops_layer.governance.candidates import bound_identity
from mlops_layer.governance.trail import AuditTrailView

POLICY = textwrap.dedent(
    """\
    version: 1
    roles:
      alice@example.com: [model-risk]
      dan@example.com: [model-risk]
      carol@example.com: [model-risk]
    targets:
      staging:
        auto_promote: true
        rules:
          - {type: metric_threshold, metric: accuracy, min: 0.8}
          - {type: lineage_clean, require_data_in_remote: false, require_lock_up_to_date: false}
      champion:
        rules:
          - {type: metric_threshold, metric: accuracy, min: 0.8}
          - {type: no_regression, metric: accuracy, direction: higher}
          - {type: card_fields, required: [business_owner, stakeholders]}
          - {type: approvals, count: 1, roles: [model-risk]}
      race:
        rules:
          - {type: no_regression, metric: accuracy, direction: higher, min_delta: 0.01}
      audited:
        rules:
          - {type: metric_threshold, metric: auc, min: 0.7}
      gated:
        rollback: {requires_approvals: 1, roles: [model-risk]}
        rules: []
    """
)
CARD = textwrap.dedent(
    """\
    business_owner: bob@example.com
    intended_use: Rank applications for review.
    intended_users: [analysts]
    prediction_consumption: nightly batch
    sla: {availability_percent: 99.5}
    retraining: {method: scheduled, cadence: monthly}
    approver_roles: [model-risk]
    sensitivity: internal
    code_shareable: false
    stakeholders:
      - {name: Ops, email: ops@example.com}
    """
)


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    MlflowClient(uri, uri).create_experiment("gov", artifact_location=(folder / "art").as_uri())
    return uri


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    out: dict[str, Path] = {}
    lines = []
    for who in ("alice", "dan", "carol", "mallory"):
        pub = signing.generate_key(folder / who, who)
        out[who] = folder / who
        if who != "mallory":
            lines.append(signing.allowed_signers_line(f"{who}@example.com", pub, ["mlops-approval"]))
    out["signers"] = folder / "allowed_signers"
    out["signers"].write_text("\n".join(lines) + "\n")
    return out


_counter = iter(range(1, 10_000))


@pytest.fixture
def project(tmp_path: Path, mlflow_uri: str, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Settings:
    root = tmp_path / "proj"
    (root / "governance" / "models").mkdir(parents=True)
    (root / "governance" / "policy.yaml").write_text(POLICY)
    (root / "governance" / "allowed_signers").write_text(keys["signers"].read_text())
    (root / "mlops.yaml").write_text(f"tracking_uri: {mlflow_uri}\naudit_url: sqlite:///.mlops/audit.db\n")
    commit_governance(root)
    monkeypatch.chdir(root)
    return api.settings(root)


def new_model(cfg: Settings, accuracies: list[float | None], *, registered_by: str = "carol@example.com") -> str:
    """A model with one version per accuracy (None: the run logs no accuracy), registered like the layer does."""
    from mlflow import MlflowClient

    name = f"credit{next(_counter)}"
    (cfg.cards_dir / f"{name}.yaml").write_text(CARD)
    commit_governance(cfg.root, f"card of {name}")
    client = MlflowClient(cfg.tracking_uri, cfg.registry_uri)
    exp = client.get_experiment_by_name("gov")
    assert exp is not None
    client.create_registered_model(name)
    with AuditStore.open(cfg.audit_url) as store:
        for acc in accuracies:
            run = client.create_run(exp.experiment_id)
            if acc is not None:
                client.log_metric(run.info.run_id, "accuracy", acc)
            model_bytes = f"model of {name} run {run.info.run_id}"
            client.log_text(run.info.run_id, model_bytes, "model/model.pkl")
            client.set_terminated(run.info.run_id)
            mv = client.create_model_version(
                name,
                source=f"runs:/{run.info.run_id}/model",
                run_id=run.info.run_id,
                tags={
                    "mlops.git.commit": "a" * 40,
                    "mlops.git.dirty": "false",
                    "mlops.registered_by": registered_by,
                    "mlops.trained_by": "trainer@example.com",
                },
            )
            store.append(
                actions.MODEL_REGISTERED,
                actor=registered_by,
                subject={"model": name, "version": str(mv.version)},
                run_id=run.info.run_id,
                details={
                    "artifacts": {"model.pkl": "sha256:" + hashlib.sha256(model_bytes.encode()).hexdigest()},
                    "metrics": {} if acc is None else {"accuracy": acc},
                },
            )
    return name


def trail(cfg: Settings, name: str) -> list[Any]:
    with AuditStore.open(cfg.audit_url) as store:
        return list(store.entries(model=name))


def version_tags(cfg: Settings, name: str, version: str) -> dict[str, str]:
    from mlops_layer.adapters.mlflow import MlflowRegistry

    return MlflowRegistry(cfg.tracking_uri).get_version(name, version).tags


def file_approval(cfg: Settings, name: str, version: str, alias: str, approval: SignedApproval) -> None:
    """Write an approval record straight into the trail, as an attacker with database access could."""
    body = approval.to_dict()
    body.pop("audit_seq")
    with AuditStore.open(cfg.audit_url) as store:
        store.append(
            actions.APPROVAL_GRANTED,
            actor=approval.statement.approver,
            subject={"model": name, "version": version, "alias": alias},
            details=body,
        )


def statement_for(cfg: Settings, name: str, version: str, alias: str, who: str, key: Path) -> SignedApproval:
    from mlops_layer.adapters.mlflow import MlflowRegistry

    info = MlflowRegistry(cfg.tracking_uri).get_version(name, version)
    with AuditStore.open(cfg.audit_url) as store:
        record = AuditTrailView(store, "test").registration(name, version)
    return sign_statement(make_statement(bound_identity(info, record), alias, who), key, default_signer())


def failed(decision: Any) -> dict[str, str]:
    return {r.name: r.message for r in decision.rules if not r.passed}


# -- promotion ------------------------------------------------------------------------------------------------------
def test_first_promotion_moves_alias_audits_and_mirrors(project: Settings) -> None:
    name = new_model(project, [0.9])
    decision = api.check(name, "1", "staging", settings=project)
    assert decision.allowed and decision.current_holder is None and decision.audit_seq is None
    result = api.promote(name, "1", "staging", settings=project)
    assert result.moved and result.current == "1" and result.previous is None
    from mlops_layer.adapters.mlflow import MlflowRegistry

    assert MlflowRegistry(project.tracking_uri).get_aliases(name) == {"staging": "1"}
    entries = trail(project, name)
    acts = [e.action for e in entries]
    assert acts[-3:] == [actions.CARD_CHANGED, actions.PROMOTION_DECIDED, actions.ALIAS_SET]
    decided = entries[-2]
    assert decided.decision == "allowed" and decided.details["policy_hash"] == decision.policy_hash
    assert decided.seq == result.audit_seq and entries[-1].details["decision_seq"] == decided.seq
    tags = version_tags(project, name, "1")
    assert json.loads(tags["mlops.decision.staging"])["allowed"] is True
    assert tags["mlops.policy.hash"] == decision.policy_hash
    assert api.promote(name, "1", "staging", settings=project).allowed  # already there: allowed, nothing moves
    with AuditStore.open(project.audit_url) as store:
        changes = list(store.entries(action=actions.POLICY_CHANGED))
    assert len(changes) == 1 and changes[0].details["policy_hash"] == decision.policy_hash


def test_metric_never_logged_is_a_clear_audited_refusal(project: Settings) -> None:
    name = new_model(project, [0.9, None])
    result = api.promote(name, "1", "audited", settings=project)
    assert not result.allowed and not result.moved
    assert "never logged metric 'auc'" in failed(result.decision)["metric_threshold:auc"]
    no_acc = api.check(name, "2", "staging", settings=project)
    assert "never logged metric 'accuracy'" in failed(no_acc)["metric_threshold:accuracy"]
    last = trail(project, name)[-1]
    assert last.action == actions.PROMOTION_DECIDED and last.decision == "refused"
    assert any("auc" in r for r in last.reasons)
    assert json.loads(version_tags(project, name, "1")["mlops.decision.audited"])["allowed"] is False


def test_signed_approval_then_promotion(project: Settings, keys: dict[str, Path]) -> None:
    name = new_model(project, [0.9])
    refused = api.check(name, "1", "champion", settings=project)
    assert "0 of 1 approval(s)" in failed(refused)["approvals"]
    approval = api.approve(name, "1", "champion", key_path=keys["alice"], comment="report reviewed", settings=project)
    assert approval.statement.approver == "alice@example.com" and approval.audit_seq is not None
    entry = trail(project, name)[-1]
    assert entry.action == actions.APPROVAL_GRANTED and entry.actor == "alice@example.com"
    assert "BEGIN SSH SIGNATURE" in entry.details["signature"]
    assert version_tags(project, name, "1")["mlops.approvals.champion"] == "alice@example.com:approve"
    result = api.promote(name, "1", "champion", settings=project)
    assert result.moved, failed(result.decision)
    assert json.loads(version_tags(project, name, "1")["mlops.decision.champion"])["allowed"] is True
    # a rejection by another approver now blocks promotion of the same version elsewhere... and here
    api.approve(name, "1", "champion", key_path=keys["dan"], reject=True, comment="bias", settings=project)
    blocked = api.check(name, "1", "champion", settings=project)
    assert "dan@example.com (model-risk) rejected: bias" in failed(blocked)["approvals"]
    tag = version_tags(project, name, "1")["mlops.approvals.champion"]
    assert tag == "alice@example.com:approve,dan@example.com:reject"


def test_registrant_cannot_approve_own_version(project: Settings, keys: dict[str, Path]) -> None:
    name = new_model(project, [0.9])  # registered by carol
    with pytest.raises(ApprovalError, match="separation of duties"):
        api.approve(name, "1", "champion", key_path=keys["carol"], settings=project)
    # signed by carol and written straight into the trail: the rule still refuses it
    file_approval(
        project,
        name,
        "1",
        "champion",
        statement_for(project, name, "1", "champion", "carol@example.com", keys["carol"]),
    )
    decision = api.check(name, "1", "champion", settings=project)
    assert "carol@example.com registered version 1: separation of duties" in failed(decision)["approvals"]


def test_key_not_in_allowed_signers_and_forgery(project: Settings, keys: dict[str, Path]) -> None:
    name = new_model(project, [0.9])
    with pytest.raises(ApprovalError, match="not trusted"):
        api.approve(name, "1", "champion", key_path=keys["mallory"], settings=project)
    # mallory signs a statement claiming to be alice and writes it into the trail
    forged = statement_for(project, name, "1", "champion", "alice@example.com", keys["mallory"])
    file_approval(project, name, "1", "champion", forged)
    # an unsigned approval
    bare = SignedApproval(statement_for(project, name, "1", "champion", "dan@example.com", keys["dan"]).statement, "")
    file_approval(project, name, "1", "champion", bare)
    message = failed(api.check(name, "1", "champion", settings=project))["approvals"]
    assert "claiming to be by alice@example.com does not verify" in message
    assert "claiming to be by dan@example.com is unsigned" in message
    assert "0 of 1" in message


def test_approval_for_v3_replayed_for_v4_and_other_alias(project: Settings, keys: dict[str, Path]) -> None:
    name = new_model(project, [0.85, 0.86, 0.87, 0.9])
    api.approve(name, "3", "champion", key_path=keys["alice"], settings=project)
    original = trail(project, name)[-1]
    with AuditStore.open(project.audit_url) as store:
        for version, alias in (("4", "champion"), ("3", "staging")):
            store.append(
                actions.APPROVAL_GRANTED,
                actor="alice@example.com",
                subject={"model": name, "version": version, "alias": alias},
                details=original.details,
            )
    v4 = failed(api.check(name, "4", "champion", settings=project))["approvals"]
    assert "signed for another version '3' (this is '4')" in v4 and "replay refused" in v4
    # for staging the replayed champion approval is not even needed, but it must not count as one either
    from mlops_layer.governance.approvals import check_approvals as check_all
    from mlops_layer.governance.approvals import default_verifier
    from mlops_layer.governance.policy import load_policy
    from mlops_layer.governance.trail import AuditTrailView

    with AuditStore.open(project.audit_url) as store:
        view = AuditTrailView(store, "x")
        from mlops_layer.adapters.mlflow import MlflowRegistry

        ident = bound_identity(
            MlflowRegistry(project.tracking_uri).get_version(name, "3"), view.registration(name, "3")
        )
        checks = check_all(
            view.approvals(name, "3", "staging"),
            ident,
            "staging",
            "promote",
            project.allowed_signers,
            default_verifier(),
            load_policy(project.policy_file).roles_of,
        )
    assert len(checks) == 1 and not checks[0].valid and "alias 'champion' (this is 'staging')" in checks[0].reason
    assert api.check(name, "3", "champion", settings=project).allowed


def test_actor_name_never_satisfies_an_approval(project: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ACTOR", "alice@example.com")
    cfg = api.settings(project.root)
    assert cfg.actor == "alice@example.com"
    name = new_model(cfg, [0.9])
    result = api.promote(name, "1", "champion", settings=cfg)
    assert not result.moved and "0 of 1 approval(s)" in failed(result.decision)["approvals"]
    assert trail(cfg, name)[-1].actor == "alice@example.com"  # recorded, but proves nothing


def test_alias_moved_behind_the_layers_back_between_check_and_promote(project: Settings, keys: dict[str, Path]) -> None:
    from mlflow import MlflowClient

    name = new_model(project, [0.85, 0.9, 0.95])
    assert api.promote(name, "1", "staging", settings=project).moved
    assert api.check(name, "3", "staging", settings=project).allowed
    MlflowClient(project.tracking_uri, project.registry_uri).set_registered_model_alias(name, "staging", "2")
    result = api.promote(name, "3", "staging", settings=project)
    assert not result.moved
    msg = failed(result.decision)["registry_matches_trail"]
    assert f"{name}@staging -> v2 but the audit trail says v1" in msg and "behind the layer's back" in msg
    from mlops_layer.adapters.mlflow import MlflowRegistry

    assert MlflowRegistry(project.tracking_uri).get_aliases(name)["staging"] == "2"  # left for reconciliation
    assert trail(project, name)[-1].decision == "refused"
    # reconciliation finds it; once an approver signs the incident, governance resumes from the registry's state
    report = api.reconcile_audit(settings=project, record_incident=True, key_path=keys["alice"])
    assert any(f.model == name and f.alias == "staging" for f in report.findings)
    resumed = api.promote(name, "3", "staging", settings=project)
    assert resumed.moved and resumed.previous == "2", failed(resumed.decision)
    assert "recorded as incident" in resumed.decision.rules[0].message
    assert not [f for f in api.reconcile_audit(settings=project).findings if f.model == name]


def _race(root: str, name: str, version: str, barrier: Any, out: Any) -> None:
    from mlops_layer import api as child_api

    cfg = child_api.settings(root)
    barrier.wait(timeout=60)
    result = child_api.promote(name, version, "race", settings=cfg)
    out.put((version, result.moved, [r.name for r in result.decision.rules if not r.passed]))


def test_two_concurrent_promotions_exactly_one_wins(project: Settings) -> None:
    name = new_model(project, [0.9, 0.9])
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(project.root), name, v, barrier, out)) for v in ("1", "2")]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    winners = [r for r in results if r[1]]
    losers = [r for r in results if not r[1]]
    assert len(winners) == 1 and len(losers) == 1, results
    # the loser was refused either under the lock (moved since evaluated) or by the policy against the new holder
    assert set(losers[0][2]) & {"holder_unchanged", "no_regression:accuracy"}
    from mlops_layer.adapters.mlflow import MlflowRegistry

    assert MlflowRegistry(project.tracking_uri).get_aliases(name)["race"] == winners[0][0]
    decided = [e for e in trail(project, name) if e.action == actions.PROMOTION_DECIDED]
    assert sorted(e.decision for e in decided) == ["allowed", "refused"]
    assert [e.action for e in trail(project, name)].count(actions.ALIAS_SET) == 1


def test_rollback_returns_previous_holder(project: Settings) -> None:
    name = new_model(project, [0.85, 0.9])
    assert api.promote(name, "1", "staging", settings=project).moved
    assert api.promote(name, "2", "staging", settings=project).moved
    result = api.rollback(name, "staging", settings=project)
    assert result.moved and result.previous == "2" and result.current == "1"
    acts = [e.action for e in trail(project, name)]
    assert acts[-2:] == [actions.ROLLBACK_DECIDED, actions.ALIAS_SET]


def test_rollback_needing_a_signed_rollback_approval(project: Settings, keys: dict[str, Path]) -> None:
    name = new_model(project, [0.85, 0.9])
    assert api.promote(name, "1", "gated", settings=project).moved
    assert api.promote(name, "2", "gated", settings=project).moved
    refused = api.rollback(name, "gated", settings=project)
    assert not refused.moved and "0 of 1" in failed(refused.decision)["rollback_approvals"]
    # a promotion approval of v1 does not count for a rollback; a rollback approval does (non-NFC comment too)
    api.approve(name, "1", "gated", key_path=keys["alice"], settings=project)
    assert not api.rollback(name, "gated", settings=project).moved
    api.approve(name, "1", "gated", key_path=keys["carol"], action="rollback", comment="cafe\u0301", settings=project)
    done = api.rollback(name, "gated", settings=project)
    assert done.moved and done.current == "1", failed(done.decision)


def test_card_change_is_audited_once_per_content_when_promotion_uses_it(project: Settings) -> None:
    name = new_model(project, [0.9, 0.9])

    def card_entries() -> list[str]:
        return [e.details["card_hash"] for e in trail(project, name) if e.action == actions.CARD_CHANGED]

    report = api.card_validate(name, settings=project)  # the working copy, checked: nothing recorded
    assert report.ok and card_entries() == []
    api.promote(name, "1", "staging", settings=project)
    first = card_entries()
    assert len(first) == 1
    api.promote(name, "2", "staging", settings=project)
    assert card_entries() == first  # same content: recorded once
    path = project.cards_dir / f"{name}.yaml"
    path.write_text(path.read_text() + "reuse_notes: EU only\n")
    api.promote(name, "1", "staging", settings=project)
    assert card_entries() == first  # uncommitted: the committed card is the one that counts
    commit_governance(project.root, "card: reuse notes")
    api.promote(name, "1", "staging", settings=project)
    assert len(card_entries()) == 2 and card_entries()[1] != first[0]
    path.write_text(path.read_text().replace("sensitivity: internal", "sensitivity: top-secret"))
    bad = api.card_validate(name, settings=project)
    assert not bad.ok and re.search(r"\.yaml:8: field 'sensitivity'", bad.problems[0])
    assert len(card_entries()) == 2


# -- CLI --------------------------------------------------------------------------------------------------------------
def test_cli_check_promote_json_and_exit_codes(project: Settings, keys: dict[str, Path]) -> None:
    name = new_model(project, [0.9, 0.5])
    runner = CliRunner()
    ok = runner.invoke(app, ["check", name, "1", "--to", "staging", "--json"])
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.stdout)
    assert body["allowed"] is True and body["audit_seq"] is None
    assert set(body["rules"][0]) == {"name", "passed", "observed", "expected", "message"}
    refused = runner.invoke(app, ["promote", name, "2", "--to", "staging", "--json"])
    assert refused.exit_code == 1
    data = json.loads(refused.stdout)
    assert data["allowed"] is False and isinstance(data["audit_seq"], int) and data["moved"] is False
    table = runner.invoke(app, ["promote", name, "1", "--to", "staging"])
    assert table.exit_code == 0 and "ALLOWED" in table.stdout and "✔" in table.stdout and "-> v1" in table.stdout
    table = runner.invoke(app, ["check", name, "2", "--to", "staging"])
    assert (
        table.exit_code == 1
        and "REFUSED" in table.stdout
        and "✘" in table.stdout
        and "0.5" in table.stdout
        and "below" in table.stdout
    )
    approve = runner.invoke(
        app, ["approve", name, "1", "--to", "champion", "--key", str(keys["alice"]), "--comment", "ok"]
    )
    assert approve.exit_code == 0 and "alice@example.com approved" in approve.stdout
    own = runner.invoke(app, ["approve", name, "1", "--to", "champion", "--key", str(keys["carol"])])
    assert own.exit_code == 1 and "separation of duties" in own.output
    bad_alias = runner.invoke(app, ["check", name, "1", "--to", "nope", "--json"])
    assert bad_alias.exit_code == 1 and "no target 'nope'" in bad_alias.stdout
    rollback = runner.invoke(app, ["rollback", name, "--to", "staging", "--json"])
    assert rollback.exit_code == 1 and "no earlier holder" in rollback.stdout


def test_cli_card_show_validate_and_bad_policy(project: Settings) -> None:
    name = new_model(project, [0.9])
    runner = CliRunner()
    show = runner.invoke(app, ["card", "show", name])
    assert show.exit_code == 0 and "bob@example.com" in show.stdout
    assert json.loads(runner.invoke(app, ["card", "show", name, "--json"]).stdout)["sensitivity"] == "internal"
    valid = runner.invoke(app, ["card", "validate", name])
    assert valid.exit_code == 0 and ": valid (working copy; nothing recorded)" in valid.stdout
    missing = runner.invoke(app, ["card", "show", "nobody"])
    assert missing.exit_code == 2 and "model card of 'nobody'" in missing.output
    project.policy_file.write_text(POLICY.replace("type: no_regression", "type: no_regresion"))
    assert runner.invoke(app, ["check", name, "1", "--to", "staging"]).exit_code == 0  # uncommitted: ignored
    commit_governance(project.root, "a broken policy")
    broken = runner.invoke(app, ["check", name, "1", "--to", "staging"])
    assert broken.exit_code == 2 and "policy.yaml:15: field 'targets.champion.rules[1].type'" in broken.output
    assert "unknown rule type 'no_regresion'" in broken.output
    checked = runner.invoke(app, ["policy", "validate"])
    assert checked.exit_code == 2 and "policy.yaml:15: field 'targets.champion.rules[1].type'" in checked.output


def test_first_promotion_tolerates_unlisted_models_in_trail(project: Settings) -> None:
    """A model whose alias was set before the layer governed it: the trail adopts the holder, then governs it."""
    from mlflow import MlflowClient

    name = new_model(project, [0.85, 0.9])
    MlflowClient(project.tracking_uri, project.registry_uri).set_registered_model_alias(name, "staging", "1")
    result = api.promote(name, "2", "staging", settings=project)
    assert result.moved and result.previous == "1"
    assert replace(result, warnings=()).warnings == ()
