"""A governed project for the report and evidence-bundle tests, built through the api on real tools.

Real git (governance files committed), a real MLflow sqlite registry, the SQLite audit trail, real SSH keys: two
versions registered, promotions allowed and refused, a signed approval, monitored batches with an alert, a drift
check and a signed checkpoint. The model card and the approval comment carry HTML that must come out escaped.
"""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlops_layer import api, signing
from mlops_layer.audit import actions
from mlops_layer.audit.store import AuditStore
from mlops_layer.config import Settings

MODEL = "churn"
HOSTILE_CARD = "<script>window.__pwned = 1; console.error('pwned')</script>"
HOSTILE_COMMENT = "<img src=x onerror=\"console.error('pwned')\">looks good"

POLICY = textwrap.dedent(
    """\
    version: 1
    roles:
      alice@example.com: [model-risk]
    targets:
      staging:
        auto_promote: true
        rules:
          - {type: metric_threshold, metric: accuracy, min: 0.8}
      champion:
        rules:
          - {type: metric_threshold, metric: accuracy, min: 0.8}
          - {type: card_fields, required: [business_owner, stakeholders]}
          - {type: approvals, count: 1, roles: [model-risk]}
    """
)
CARD = textwrap.dedent(
    f"""\
    business_owner: Bob Owner <bob@example.com>
    intended_use: Predict which customers will churn next month.
    intended_users: [retention team]
    prediction_consumption: nightly batch scores in the CRM
    sla: {{availability_percent: 99.5, max_latency_ms: 200}}
    retraining: {{method: drift-triggered, cadence: on drift alert}}
    approver_roles: [model-risk]
    sensitivity: internal
    code_shareable: false
    limitations: "{HOSTILE_CARD}"
    stakeholders:
      - {{name: Ops, email: ops@example.com}}
    """
)


@dataclass(frozen=True)
class Project:
    root: Path
    cfg: Settings
    custodian_key: Path  # signs checkpoints and bundle manifests
    alice_key: Path
    mallory_key: Path  # trusted by nobody

    @property
    def custodian_fingerprint(self) -> str:
        return signing.fingerprint(signing.public_key(self.custodian_key))


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def build_project(folder: Path, *, batches: int = 24) -> Project:
    from mlflow import MlflowClient

    root = folder / "proj"
    keys = folder / "keys"
    (root / "governance" / "models").mkdir(parents=True)
    custodian_pub = signing.generate_key(keys / "custodian", "custodian", kind="ed25519")
    alice_pub = signing.generate_key(keys / "alice", "alice", kind="ed25519")
    signing.generate_key(keys / "mallory", "mallory", kind="ed25519")
    (root / "governance" / "policy.yaml").write_text(POLICY)
    (root / "governance" / "models" / f"{MODEL}.yaml").write_text(CARD)
    (root / "governance" / "allowed_signers").write_text(
        signing.allowed_signers_line("alice@example.com", alice_pub, ["mlops-approval"])
        + "\n"
        + signing.allowed_signers_line(
            "custodian@example.com", custodian_pub, ["mlops-audit-checkpoint", "mlops-evidence-bundle"]
        )
        + "\n"
    )
    uri = f"sqlite:///{root}/mlflow.db"
    (root / "mlops.yaml").write_text(
        f"tracking_uri: {uri}\naudit_url: sqlite:///.mlops/audit.db\nactor: ops@example.com\nexperiment: report\n"
    )
    (root / ".gitignore").write_text(".mlops/\nmlflow.db\nart/\nreports/\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "governance")
    cfg = api.settings(root)

    client = MlflowClient(uri, uri)
    exp = client.create_experiment("train", artifact_location=(root / "art").as_uri())
    client.create_registered_model(MODEL)
    with AuditStore.open(cfg.audit_url) as store:
        for number, acc in enumerate((0.91, 0.72), start=1):
            run = client.create_run(exp)
            client.log_metric(run.info.run_id, "accuracy", acc)
            model_bytes = f"model {number} of {MODEL}"  # the files a registration binds by sha256
            client.log_text(run.info.run_id, model_bytes, "model/model.pkl")
            client.set_terminated(run.info.run_id)
            mv = client.create_model_version(
                MODEL,
                source=f"runs:/{run.info.run_id}/model",
                run_id=run.info.run_id,
                tags={"mlops.registered_by": "carol@example.com", "mlops.trained_by": "carol@example.com"},
            )
            store.append(
                actions.MODEL_REGISTERED,
                actor="carol@example.com",
                subject={"model": MODEL, "version": str(mv.version)},
                git_commit=f"{number:040x}",
                dvc_hashes={"data/train.csv": f"{number:032x}"},
                run_id=run.info.run_id,
                details={
                    "params": {"train.C": 0.5 * number},
                    "artifacts": {"model.pkl": "sha256:" + hashlib.sha256(model_bytes.encode()).hexdigest()},
                    "metrics": {"accuracy": acc},
                },
            )
        # another model's entry in the middle: the bundle must carry it and say so
        store.append(actions.MODEL_REGISTERED, actor="dave@example.com", subject={"model": "fraud", "version": "1"})
    assert api.promote(MODEL, "1", "staging", settings=cfg).moved
    api.approve(MODEL, "1", "champion", key_path=keys / "alice", comment=HOSTILE_COMMENT, settings=cfg)
    assert api.promote(MODEL, "1", "champion", settings=cfg).moved
    assert not api.promote(MODEL, "2", "champion", settings=cfg).moved  # refused: accuracy and no approval
    start = datetime.now(timezone.utc)
    with AuditStore.open(cfg.audit_url) as store:
        store.append(
            actions.DRIFT_CHECKED,
            actor="ops@example.com",
            subject={"model": MODEL, "version": "1"},
            decision="passed",
            details={"passed": True, "share": 0.1, "summary": "1 of 10 columns drifted"},
        )
        for i in range(batches):
            drifted = i >= batches - 6
            store.append(
                actions.MONITOR_BATCH,
                actor="ops@example.com",
                subject={"model": MODEL, "version": "1", "alias": "champion"},
                decision="drift" if drifted else "ok",
                details={
                    "seq": i + 1,
                    "drift_share": 0.6 if drifted else 0.05,
                    "metrics": {"accuracy": 0.7 if drifted else 0.9, "rows": 500},
                    "at": (start + timedelta(minutes=i)).isoformat(),
                },
            )
            if i == batches - 4:
                store.append(
                    actions.ALERT_FIRED,
                    actor="ops@example.com",
                    subject={"model": MODEL, "version": "1", "alias": "champion"},
                    decision="fired",
                    details={
                        "kind": "fired",
                        "alert_id": f"{MODEL}:accuracy_low:1",
                        "rule": "accuracy_low",
                        "severity": "critical",
                        "message": "accuracy 0.7 < 0.8 in 3 of 3 batches",
                    },
                )
    api.checkpoint_audit(key=keys / "custodian", append_file=True, settings=cfg)
    return Project(root, cfg, keys / "custodian", keys / "alice", keys / "mallory")
