"""Attacks of a hostile insider (a checkout of the project, write access to its embedded stores) against the trust
roots: each is performed against real git, a real MLflow sqlite store and real keys, and must be refused or caught
with the right exit code and a one-line reason.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import TRAIN_LOCK, commit_governance, git
from typer.testing import CliRunner

from mlops_layer import api, signing
from mlops_layer.audit import actions
from mlops_layer.audit.store import CHECKPOINTS, ENTRIES, AuditStore
from mlops_layer.cli.main import app
from mlops_layer.config import Settings
from mlops_layer.errors import ApprovalError, AuditIntegrityError, ConfigError, InputError

POLICY = textwrap.dedent(
    """\
    version: 1
    roles:
      alice@example.com: [model-risk]
      dan@example.com: [model-risk]
    targets:
      staging:
        auto_promote: true
        rules:
          - {type: metric_threshold, metric: accuracy, min: 0.9}
      champion:
        rollback: {requires_approvals: 0}
        rules:
          - {type: metric_threshold, metric: accuracy, min: 0.9}
          - {type: approvals, count: 1, roles: [model-risk]}
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
runner = CliRunner()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    out = {who: folder / who for who in ("alice", "dan", "mallory")}
    for who, path in out.items():
        signing.generate_key(path, who, kind="ed25519")
    out["audit"] = folder / "audit-bot"
    signing.generate_key(out["audit"], "audit-bot", kind="ed25519")
    return out


def signers_text(keys: dict[str, Path]) -> str:
    lines = [
        signing.allowed_signers_line(f"{who}@example.com", signing.public_key(keys[who]), ["mlops-approval"])
        for who in ("alice", "dan")
    ]
    lines.append(
        signing.allowed_signers_line("audit-bot", signing.public_key(keys["audit"]), ["mlops-audit-checkpoint"])
    )
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(git_repo: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A committed project: policy, card, signers (with the checkpoint key), a hand-written dvc.lock."""
    root = git_repo
    (root / "governance" / "models").mkdir(parents=True)
    (root / "governance" / "policy.yaml").write_text(POLICY)
    (root / "governance" / "models" / "credit.yaml").write_text(CARD)
    (root / "governance" / "allowed_signers").write_text(signers_text(keys))
    (root / "mlops.yaml").write_text(
        f"experiment: trust\naudit:\n  checkpoint_key: {keys['audit']}\n"  # max_unanchored: 0 by default with a key
    )
    (root / ".gitignore").write_text("mlflow.db\nmlartifacts/\n.mlops/\n")
    (root / "params.yaml").write_text("train:\n  C: 0.5\n")
    (root / "dvc.lock").write_text(TRAIN_LOCK)
    git(root, "add", "-A")
    commit_governance(root, "project")
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLOPS_ACTOR", "carol@example.com")
    return api.settings(root)


def train(cfg: Settings, accuracy: float, name: str = "credit") -> str:
    """A real scikit-learn model logged by a governed run and registered through the layer; returns the version."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(int(accuracy * 1000))
    features = rng.normal(size=(40, 3))
    model = LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))
    with api.governed_run("train", settings=cfg) as run:
        run.log_metrics({"accuracy": accuracy})
        uri = run.log_model(model)
    return api.register(name, run.run_id, model_uri=uri, settings=cfg).version


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def cli_move(*args: str) -> tuple[int, dict[str, str], list[str]]:
    """A promote/rollback through the CLI: exit code, failed rules (name -> message), warnings."""
    code, out = cli(*args, "--json")
    body = json.loads(out)
    return code, {r["name"]: r["message"] for r in body["rules"] if not r["passed"]}, body["warnings"]


def failed(decision: Any) -> dict[str, str]:
    return {r.name: r.message for r in decision.rules if not r.passed}


def approve(cfg: Settings, keys: dict[str, Path], who: str, version: str, alias: str = "champion") -> Any:
    return api.approve("credit", version, alias, key_path=keys[who], settings=cfg)


def model_files(cfg: Settings, version: str) -> list[Path]:
    """The model.pkl files of a version in the artifact store (the bytes an attacker would swap)."""
    run_id = api.lineage("credit", version, settings=cfg).run_id
    assert run_id
    found = [p for p in (cfg.root / "mlartifacts").rglob("model.pkl")]
    assert found, "no model.pkl in the artifact store"
    return found


def raw_sql(cfg: Settings, *statements: str) -> None:
    """What someone with write access to the audit database file can do."""
    con = sqlite3.connect(cfg.root / ".mlops" / "audit.db")
    for table in (ENTRIES, CHECKPOINTS):
        for op in ("update", "delete"):
            con.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()


# -- 1. governance from git -----------------------------------------------------------------------------------------
def test_uncommitted_policy_relaxation_counts_for_nothing(project: Settings) -> None:
    version = train(project, 0.95)
    relaxed = POLICY.replace("      - {type: approvals, count: 1, roles: [model-risk]}\n", "")
    assert relaxed != POLICY
    project.policy_file.write_text(relaxed)
    code, fails, warnings = cli_move("promote", "credit", version, "--to", "champion")
    assert code == 1 and "0 of 1 approval(s)" in fails["approvals"]
    assert any("uncommitted changes to governance/policy.yaml are ignored" in w for w in warnings)
    with AuditStore.open(project.audit_url) as store:
        decided = list(store.entries(action=actions.PROMOTION_DECIDED))[-1]
    gov = decided.details["governance"]
    assert gov["commit"] == git(project.root, "rev-parse", "HEAD")
    assert gov["policy_blob"] == git(project.root, "rev-parse", "HEAD:governance/policy.yaml")
    assert gov["allowed_signers_blob"] == git(project.root, "rev-parse", "HEAD:governance/allowed_signers")
    assert gov["card_blob"] == git(project.root, "rev-parse", "HEAD:governance/models/credit.yaml")


def test_uncommitted_signer_key_makes_no_approver(project: Settings, keys: dict[str, Path]) -> None:
    version = train(project, 0.95)
    forged = signing.allowed_signers_line("alice@example.com", signing.public_key(keys["mallory"]))
    with project.allowed_signers.open("a") as fh:
        fh.write(forged + "\n")
    code, out = cli("approve", "credit", version, "--to", "champion", "--key", str(keys["mallory"]))
    assert code == 1 and "not trusted" in out, out
    with pytest.raises(ApprovalError, match="not trusted"):
        api.approve("credit", version, "champion", key_path=keys["mallory"], principal="alice@example.com")
    assert "approvals" in failed(api.check("credit", version, "champion"))


def test_ignored_signers_file_is_refused(project: Settings, keys: dict[str, Path]) -> None:
    (project.root / ".demo-keys").mkdir()
    (project.root / ".demo-keys" / "allowed_signers").write_text(signers_text(keys))
    with (project.root / ".gitignore").open("a") as fh:
        fh.write(".demo-keys/\n")
    with (project.root / "mlops.yaml").open("a") as fh:
        fh.write("allowed_signers: .demo-keys/allowed_signers\n")
    commit_governance(project.root, "point at an ignored signers file")
    git(project.root, "commit", "-qam", "ignore it")
    code, out = cli("check", "credit", "1", "--to", "champion")
    assert code == 2 and "git-ignored" in out and "commit it" in out, out


def test_governance_must_be_committed_before_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "fresh"
    (root / "governance").mkdir(parents=True)
    (root / "governance" / "policy.yaml").write_text(POLICY)
    git(root, "init", "-q")
    monkeypatch.chdir(root)
    code, out = cli("check", "credit", "1", "--to", "champion")
    assert code == 2 and "names no commit" in out and "commit governance/" in out, out
    (root / "README.md").write_text("x\n")
    git(root, "add", "README.md")
    git(root, "commit", "-qm", "code only")
    code, out = cli("check", "credit", "1", "--to", "champion")
    assert code == 2 and "governance/policy.yaml is not committed" in out, out


def test_verify_names_a_decision_made_under_uncommitted_governance(project: Settings) -> None:
    version = train(project, 0.95)
    assert api.promote("credit", version, "staging", settings=project).moved
    assert api.verify_audit(settings=project).ok
    with AuditStore.open(project.audit_url) as store:
        store.checkpoint_key = project.checkpoint_key  # even someone holding the checkpoint key
        forged = store.append(
            actions.PROMOTION_DECIDED,
            actor="carol@example.com",
            subject={"model": "credit", "version": version, "alias": "champion"},
            decision="allowed",
            details={"governance": {"policy_blob": hashlib.sha1(b"relaxed policy").hexdigest()}},
        )
    code, out = cli("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and [(p["kind"], p["seq"]) for p in report["problems"]] == [
        ("governance_not_committed", forged.seq)
    ]
    assert "never committed (reachable from HEAD)" in report["problems"][0]["message"]
    code, out = cli("audit", "verify", "--no-git", "--json")
    assert code == 0, out


# -- 2. model bytes bound -------------------------------------------------------------------------------------------
def test_model_swapped_after_approval_is_refused_everywhere(project: Settings, keys: dict[str, Path]) -> None:
    version = train(project, 0.95)
    assert api.promote("credit", version, "staging", settings=project).moved
    approve(project, keys, "alice", version)
    run_id = api.lineage("credit", version, settings=project).run_id
    for path in model_files(project, version):
        path.write_bytes(path.read_bytes() + b"\x00swapped")
    code, fails, _ = cli_move("promote", "credit", version, "--to", "champion")
    assert code == 1 and list(fails) == ["model_files"]
    assert "changed since registration: model.pkl" in fails["model_files"]
    for ref in ("credit/1", "credit@staging", "models:/credit/1", "models:/credit@staging", f"runs:/{run_id}/model"):
        with pytest.raises(AuditIntegrityError, match="differ from the sha256 digests|differ from what was"):
            api.load_model(ref, settings=project)


def test_a_later_registration_entry_cannot_rebind_the_bytes(project: Settings) -> None:
    version = train(project, 0.95)
    assert api.load_model(f"credit/{version}", settings=project) is not None
    paths = model_files(project, version)
    for path in paths:
        path.write_bytes(b"not the registered model")
    swapped = "sha256:" + hashlib.sha256(b"not the registered model").hexdigest()
    with AuditStore.open(project.audit_url) as store:
        first = next(iter(store.entries(action=actions.MODEL_REGISTERED)))
        claimed = {**first.details["artifacts"], "model.pkl": swapped}
        second = store.append(
            actions.MODEL_REGISTERED,
            actor="carol@example.com",
            subject={"model": "credit", "version": version},
            details={**first.details, "artifacts": claimed},
        )
    with pytest.raises(AuditIntegrityError):
        api.load_model(f"credit/{version}", settings=project)
    report = api.verify_audit(settings=project)
    assert not report.ok
    kinds = {(p.kind, p.seq) for p in report.problems}
    assert ("registration_conflict", second.seq) in kinds


def test_a_uri_without_recorded_digests_is_refused_unless_allowed(project: Settings) -> None:
    from mlflow import MlflowClient

    version = train(project, 0.95)
    run_id = api.lineage("credit", version, settings=project).run_id
    assert run_id
    MlflowClient(project.tracking_uri).delete_tag(run_id, "mlops.model.digests")
    with pytest.raises(InputError, match="no recorded sha256 digests"):
        api.load_model(f"runs:/{run_id}/model", settings=project)
    assert api.load_model(f"runs:/{run_id}/model", allow_unverified=True, settings=project) is not None


# -- 3. metrics frozen at registration ------------------------------------------------------------------------------
def test_metrics_logged_after_registration_change_no_verdict(project: Settings) -> None:
    weak = train(project, 0.70)
    run_id = api.lineage("credit", weak, settings=project).run_id
    assert run_id
    api.log_run_metrics(run_id, {"accuracy": 0.99}, settings=project)
    decision = api.check("credit", weak, "staging", settings=project)
    assert not decision.allowed and "0.7 is below the minimum 0.9" in failed(decision)["metric_threshold:accuracy"]
    code, out = cli("audit", "reconcile", "--json")
    report = json.loads(out)
    assert code == 1 and [f["kind"] for f in report["findings"]] == ["metrics_changed"]
    assert "accuracy 0.7 -> 0.99" in report["findings"][0]["message"]


# -- 6. claims are not evidence ---------------------------------------------------------------------------------------
def test_rollback_to_a_holder_no_decision_ever_allowed(project: Settings, keys: dict[str, Path]) -> None:
    good = train(project, 0.95)
    weak = train(project, 0.70)
    approve(project, keys, "alice", good)
    assert api.promote("credit", good, "champion", settings=project).moved
    with AuditStore.open(project.audit_url) as store:  # two alias events appended straight to the trail
        for v in (weak, good):
            store.append(
                actions.ALIAS_SET,
                actor="carol@example.com",
                subject={"model": "credit", "alias": "champion", "version": v},
                details={"via": "promote"},
            )
    code, fails, _ = cli_move("rollback", "credit", "--to", "champion")
    assert code == 1 and "a claim, not evidence" in fails["previous_holder_decided"]
    code, out = cli("audit", "verify")
    assert code == 1 and "unanchored" in out, out


def test_an_unsigned_incident_does_not_reopen_promotion(project: Settings, keys: dict[str, Path]) -> None:
    from mlflow import MlflowClient

    first = train(project, 0.95)
    second = train(project, 0.96)
    assert api.promote("credit", first, "staging", settings=project).moved
    MlflowClient(project.tracking_uri).set_registered_model_alias("credit", "staging", second)  # out of band
    marked = api.status("credit", settings=project).models[0].ungoverned_aliases
    assert marked == (f"@staging -> v{second} (the trail says v{first})",)
    code, out = cli("audit", "reconcile", "--record-incident")  # anyone, unsigned
    assert code == 1, out
    code, fails, _ = cli_move("promote", "credit", second, "--to", "staging")
    assert code == 1 and "it is unsigned" in fails["registry_matches_trail"]
    code, out = cli("audit", "reconcile", "--record-incident", "--key", str(keys["mallory"]))
    assert code == 1 and "not trusted" in out, out
    code, out = cli("audit", "reconcile", "--record-incident", "--key", str(keys["alice"]))
    assert code == 1, out  # the finding is reported, and now acknowledged by an approver
    code, fails, _ = cli_move("promote", "credit", second, "--to", "staging")
    assert code == 0 and not fails


def test_monitor_scores_an_ungoverned_holder_but_raises_an_alert(project: Settings) -> None:
    from mlflow import MlflowClient

    first = train(project, 0.95)
    second = train(project, 0.96)
    assert api.promote("credit", first, "staging", settings=project).moved
    MlflowClient(project.tracking_uri).set_registered_model_alias("credit", "staging", second)  # out of band
    batch = project.root.parent / "batch.csv"
    batch.write_text("a,b,c\n" + "".join(f"{i / 10},{-i / 10},{i % 3}\n" for i in range(20)))
    result = api.monitor("credit@staging", batch, settings=project)
    assert result.version == second  # production stays watched
    assert any("moved outside governance" in w for w in result.warnings)
    with AuditStore.open(project.audit_url) as store:
        fired = [e for e in store.entries(action=actions.ALERT_FIRED)]
        batches = [e for e in store.entries(action=actions.MONITOR_BATCH)]
    assert [e.details["rule"] for e in fired] == ["alias_outside_governance"]
    assert batches and batches[-1].details["evidence"] is False


# -- 7. checkpoints protect the tail --------------------------------------------------------------------------------
def test_every_command_anchors_the_tail(project: Settings, keys: dict[str, Path]) -> None:
    version = train(project, 0.95)
    approve(project, keys, "dan", version)
    rejection = api.approve(
        "credit", version, "champion", key_path=keys["alice"], reject=True, settings=project
    ).audit_seq
    report = api.verify_audit(settings=project)
    assert report.ok and report.unanchored == 0, report.problems
    kept = project.root.parent / "kept-checkpoint.json"
    code, out = cli("audit", "checkpoint", "--key", str(keys["audit"]), "--json")
    assert code == 0, out
    kept.write_text(out)

    # the signed rejection and everything after it removed: the promotion would go through, verify catches it
    raw_sql(project, f"DELETE FROM {ENTRIES} WHERE seq >= {rejection}")
    assert api.check("credit", version, "champion", settings=project).allowed
    code, out = cli("audit", "verify")
    assert code == 1 and "truncated" in out, out

    # ... and with the database checkpoints deleted too, the kept checkpoint still catches it
    raw_sql(project, f"DELETE FROM {CHECKPOINTS}")
    code, out = cli("audit", "verify", "--expect", str(kept))
    assert code == 1 and "truncated" in out, out


def test_entries_appended_without_the_key_are_unanchored(project: Settings) -> None:
    train(project, 0.95)
    with AuditStore.open(project.audit_url) as store:
        store.append(actions.DRIFT_CHECKED, actor="carol@example.com", subject={"model": "credit", "version": "1"})
    code, out = cli("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and [p["kind"] for p in report["problems"]] == ["unanchored"]


def test_the_committed_checkpoint_file_counts_not_the_working_copy(project: Settings, keys: dict[str, Path]) -> None:
    train(project, 0.95)
    code, out = cli("audit", "checkpoint", "--key", str(keys["audit"]), "--append-file")
    assert code == 0, out
    git(project.root, "add", "governance/audit-checkpoints.jsonl")
    git(project.root, "commit", "-qm", "anchor the trail")
    raw_sql(project, f"DELETE FROM {ENTRIES} WHERE seq >= 2", f"DELETE FROM {CHECKPOINTS}")
    project.checkpoint_file.write_text("")  # emptied in the working copy
    code, out = cli("audit", "verify")
    assert code == 1 and "truncated" in out and "uncommitted changes to governance/audit-checkpoints.jsonl" in out


def test_a_checkpoint_signed_by_an_uncommitted_key_counts_for_nothing(project: Settings, keys: dict[str, Path]) -> None:
    train(project, 0.95)
    with project.allowed_signers.open("a") as fh:
        fh.write(signing.allowed_signers_line("audit-bot", signing.public_key(keys["mallory"])) + "\n")
    with AuditStore.open(project.audit_url) as store:
        store.append(actions.DRIFT_CHECKED, actor="mallory", subject={"model": "credit", "version": "1"})
        store.checkpoint_now(keys["mallory"], None)
    code, out = cli("audit", "verify", "--json")
    kinds = [p["kind"] for p in json.loads(out)["problems"]]
    assert code == 1 and "checkpoint_untrusted" in kinds and "unanchored" in kinds


def test_a_key_trusted_later_does_not_vouch_for_earlier_checkpoints(
    project: Settings, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime, timedelta, timezone

    train(project, 0.95)
    with AuditStore.open(project.audit_url) as store:
        store.append(actions.DRIFT_CHECKED, actor="mallory", subject={"model": "credit", "version": "1"})
        store.checkpoint_now(keys["mallory"], None)
    line = signing.allowed_signers_line("audit-bot", signing.public_key(keys["mallory"]), ["mlops-audit-checkpoint"])
    with project.allowed_signers.open("a") as fh:
        fh.write(line + "\n")
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    monkeypatch.setenv("GIT_COMMITTER_DATE", later.strftime("%Y-%m-%dT%H:%M:%S+0000"))
    commit_governance(project.root, "trust a second audit key from now on")
    code, out = cli("audit", "verify", "--json")
    problems = json.loads(out)["problems"]
    assert code == 1 and {p["kind"] for p in problems} == {"checkpoint_untrusted", "unanchored"}


# -- 8. approvals are used once -------------------------------------------------------------------------------------
def test_an_approval_enables_one_promotion(project: Settings, keys: dict[str, Path]) -> None:
    first = train(project, 0.95)
    second = train(project, 0.96)
    for version in (first, second):
        approve(project, keys, "alice", version)
        assert api.promote("credit", version, "champion", settings=project).moved
    back = api.rollback("credit", "champion", settings=project)
    assert back.moved and back.current == first
    again = api.promote("credit", second, "champion", settings=project)
    assert not again.allowed and "used by that promotion" in failed(again.decision)["approvals"]
    approve(project, keys, "dan", second)
    assert api.promote("credit", second, "champion", settings=project).moved


# -- 9. wildcard principals -----------------------------------------------------------------------------------------
def test_a_wildcard_principal_never_names_an_approver(project: Settings, keys: dict[str, Path]) -> None:
    version = train(project, 0.95)
    with project.allowed_signers.open("a") as fh:
        fh.write(signing.allowed_signers_line("*", signing.public_key(keys["mallory"]), ["mlops-approval"]) + "\n")
    commit_governance(project.root, "a catch-all signer line slipped through review")
    with pytest.raises(ApprovalError, match="not trusted"):
        api.approve("credit", version, "champion", key_path=keys["mallory"], principal="alice@example.com")
    assert "approvals" in failed(api.check("credit", version, "champion", settings=project))


# -- 10. names --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("promote", "a/b", "1", "--to", "champion"),
        ("promote", "..", "1", "--to", "champion"),
        ("promote", "credit", "../1", "--to", "champion"),
        ("check", "cred\x1bit", "1", "--to", "champion"),
        ("check", "credit", "1\n", "--to", "champion"),
        ("rollback", "a/../b", "--to", "champion"),
    ],
)
def test_bad_names_are_bad_input(project: Settings, args: tuple[str, ...]) -> None:
    code, out = cli(*args)
    assert code == 2 and " is not valid" in out or "is not a valid" in out, out
    assert code == 2


def test_bad_load_reference_is_bad_input(project: Settings) -> None:
    with pytest.raises(InputError):
        api.load_model("../credit/1", settings=project)
    with pytest.raises(ConfigError):
        api.check("credit", "1", "champion", settings=api.settings(project.root.parent))


# -- 11. existing workspaces keep working -----------------------------------------------------------------------------
def test_versions_registered_before_snapshots_are_named_until_migrated(project: Settings) -> None:
    from mlflow import MlflowClient

    from mlops_layer.adapters.mlflow import MlflowRegistry

    first = train(project, 0.95)
    info = MlflowRegistry(project.tracking_uri).get_version("credit", first)
    legacy = MlflowClient(project.tracking_uri).create_model_version("credit", source=info.source, run_id=info.run_id)
    with AuditStore.open(project.audit_url) as store:  # what the layer wrote before metrics were frozen
        registered = next(iter(store.entries(action=actions.MODEL_REGISTERED)))
        store.append(
            actions.MODEL_REGISTERED,
            actor="carol@example.com",
            subject={"model": "credit", "version": str(legacy.version)},
            run_id=info.run_id,
            details={"artifacts": registered.details["artifacts"]},
        )
    before = failed(api.check("credit", str(legacy.version), "staging", settings=project))
    assert f"version {legacy.version} has no metrics snapshot" in before["metric_threshold:accuracy"]
    assert "mlops migrate" in before["metric_threshold:accuracy"]
    code, out = cli("migrate", "--json")
    report = json.loads(out)
    assert code == 0 and [(r["model"], r["version"]) for r in report["recorded"]] == [("credit", str(legacy.version))]
    assert report["recorded"][0]["metrics"] == {"accuracy": 0.95}
    assert api.check("credit", str(legacy.version), "staging", settings=project).allowed
    assert json.loads(cli("migrate", "--json")[1])["recorded"] == []


# -- 4. drift evidence --------------------------------------------------------------------------------------------
def track(root: Path, rel: str) -> None:
    """Record ``rel`` in a .dvc file with the md5 of its current bytes, as `dvc add` would, and commit it."""
    path = root / rel
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    size = path.stat().st_size
    (root / f"{rel}.dvc").write_text(f"outs:\n- md5: {md5}\n  size: {size}\n  hash: md5\n  path: {path.name}\n")
    git(root, "add", f"{rel}.dvc")
    git(root, "commit", "-qm", f"track {rel}")


def test_drift_evidence_must_be_the_dataset_the_policy_names(project: Settings) -> None:
    import numpy as np
    import pandas as pd

    policy = POLICY.replace(
        "- {type: approvals, count: 1, roles: [model-risk]}",
        "- {type: drift_passed, dataset: data/prod/batch.csv, min_rows: 50, max_age_days: 7}",
    )
    project.policy_file.write_text(policy)
    commit_governance(project.root, "champion needs a drift check of the production batch")
    version = train(project, 0.95)
    data = project.root / "data"
    (data / "prod").mkdir(parents=True)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(5, 2, size=400)})
    frame.to_csv(data / "train.csv", index=False)
    frame.iloc[:20].to_csv(data / "prod" / "batch.csv", index=False)
    track(project.root, "data/prod/batch.csv")

    def check_with(current: str) -> dict[str, str]:
        result = api.drift_check(f"credit/{version}", current, reference=data / "train.csv", settings=project)
        assert result.passed, result.summary()
        return failed(api.check("credit", version, "champion", settings=project))

    # a passing check on an unrelated file (the training data) satisfies nothing
    fails = check_with("data/train.csv")
    assert "no drift check of version" in fails["drift_passed"] and "data/prod/batch.csv" in fails["drift_passed"]
    # the named dataset, but fewer rows than min_rows
    assert "fewer than 50" in check_with("data/prod/batch.csv")["drift_passed"]
    # the named path with 200 rows DVC does not record for it: no evidence, the 20-row check is still the latest
    frame.iloc[100:300].to_csv(data / "prod" / "batch.csv", index=False)
    unrecorded = api.drift_check("credit/" + version, "data/prod/batch.csv", reference=data / "train.csv")
    assert any("differs from what DVC records" in w for w in unrecorded.warnings), unrecorded.warnings
    assert "fewer than 50" in failed(api.check("credit", version, "champion", settings=project))["drift_passed"]
    # the dataset as DVC records it: the rule passes, and the entry names its path and md5
    track(project.root, "data/prod/batch.csv")
    assert "drift_passed" not in check_with("data/prod/batch.csv")
    with AuditStore.open(project.audit_url) as store:
        last = list(store.entries(model="credit", action=actions.DRIFT_CHECKED))[-1]
    md5 = hashlib.md5((data / "prod" / "batch.csv").read_bytes()).hexdigest()
    assert (last.details["dvc_path"], last.details["dvc_md5"]) == ("data/prod/batch.csv", md5)


def test_an_unreadable_drift_input_is_an_error_on_record_that_blocks_nothing(project: Settings) -> None:
    import numpy as np
    import pandas as pd

    project.policy_file.write_text(
        POLICY.replace("- {type: approvals, count: 1, roles: [model-risk]}", "- {type: drift_passed}")
    )
    commit_governance(project.root, "champion needs a drift check")
    version = train(project, 0.95)
    rng = np.random.default_rng(3)
    pd.DataFrame({"a": rng.normal(size=300)}).to_csv(project.root / "reference.csv", index=False)
    (project.root / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    before = api.check("credit", version, "champion", settings=project)

    code, out = cli("drift", f"credit/{version}", "--current", "corrupt.parquet", "--reference", "reference.csv")
    assert code == 2 and "not a readable Parquet file" in out, out
    with pytest.raises(InputError, match="does not exist"):
        api.drift_check(f"credit/{version}", "missing.csv", reference="reference.csv", settings=project)
    with AuditStore.open(project.audit_url) as store:
        errors = list(store.entries(model="credit", action=actions.DRIFT_CHECKED))
    assert [(e.decision, e.details["current"]) for e in errors] == [
        ("error", "corrupt.parquet"),
        ("error", "missing.csv"),
    ]
    assert all("passed" not in e.details for e in errors)
    # no drift verdict: the rule says the same as before, neither satisfied nor failed by the errors
    after = failed(api.check("credit", version, "champion", settings=project))
    assert after["drift_passed"] == failed(before)["drift_passed"]
    assert "no drift check of version" in after["drift_passed"] and "were on data" not in after["drift_passed"]


# -- 5. identity without a server -------------------------------------------------------------------------------------
def test_signed_identity_unmasks_a_self_approval(
    project: Settings, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    namespaces = ["mlops-approval", "mlops-training", "mlops-registration"]
    lines = [
        signing.allowed_signers_line(f"{who}@example.com", signing.public_key(keys[who]), namespaces)
        for who in ("alice", "dan")
    ]
    lines.append(
        signing.allowed_signers_line("audit-bot", signing.public_key(keys["audit"]), ["mlops-audit-checkpoint"])
    )
    project.allowed_signers.write_text("\n".join(lines) + "\n")
    project.policy_file.write_text("identity: signed\n" + POLICY)
    commit_governance(project.root, "identity: signed")

    unsigned = train(project, 0.95)
    assert (
        "the trainer is not proven by a signature"
        in failed(api.check("credit", unsigned, "champion"))["identity_signed"]
    )

    # alice trains and registers under a borrowed name, then approves her own version with her own key
    monkeypatch.setenv("MLOPS_ACTOR", "ci-runner@example.com")
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(keys["alice"]))
    cfg = api.settings(project.root)
    mine = train(cfg, 0.96)
    # `mlops approve` compares the signed principals too: alice's own key cannot approve what she registered
    code, out = cli("approve", "credit", mine, "--to", "champion", "--key", str(keys["alice"]))
    assert code == 1 and "alice@example.com registered" in out and "separation of duties" in out, out
    with pytest.raises(ApprovalError, match="alice@example.com registered"):
        approve(cfg, keys, "alice", mine)
    # signed and appended to the trail without the api: the promotion rules still refuse it
    self_approval(cfg, keys, mine)
    code, fails, _ = cli_move("promote", "credit", mine, "--to", "champion")
    assert code == 1 and "alice@example.com registered version" in fails["approvals"]
    assert "separation of duties forbids approving it" in fails["approvals"]
    assert "identity_signed" not in fails
    approve(cfg, keys, "dan", mine)
    assert api.promote("credit", mine, "champion", settings=cfg).moved


def self_approval(cfg: Settings, keys: dict[str, Path], version: str) -> None:
    """alice signs an approval of ``version`` herself and appends it to the trail, skipping `mlops approve`."""
    from mlops_layer.api import _wiring
    from mlops_layer.governance.approvals import default_signer, make_statement, sign_statement
    from mlops_layer.governance.candidates import bound_identity

    info = _wiring.registry(cfg).get_version("credit", version)
    with _wiring.governance_trail(cfg) as trail:
        identity = bound_identity(info, trail.registration("credit", version))
        statement = make_statement(identity, "champion", "alice@example.com")
        trail.record_approval(sign_statement(statement, keys["alice"], default_signer()))


def test_declared_identity_is_said_to_be_declared(project: Settings, keys: dict[str, Path]) -> None:
    version = train(project, 0.95)
    approve(project, keys, "alice", version)
    decision = api.check("credit", version, "champion", settings=project)
    assert decision.allowed
    message = next(r.message for r in decision.rules if r.name == "approvals")
    assert "compared declared names" in message


def test_file_history_keeps_commit_order_within_one_second(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_layer.adapters.git import GitCommits

    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00+0000")
    path = git_repo / "allowed_signers"
    for text in ("first\n", "second\n"):
        path.write_text(text)
        git(git_repo, "add", "allowed_signers")
        git(git_repo, "commit", "-qm", text.strip())
    history = GitCommits(git_repo).file_history("HEAD", path)
    assert [blob for _, blob in history] == [
        git(git_repo, "rev-parse", "HEAD~1:allowed_signers"),
        git(git_repo, "rev-parse", "HEAD:allowed_signers"),
    ]
