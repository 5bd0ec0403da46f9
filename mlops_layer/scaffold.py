"""Files ``mlops init`` writes into a project (never over existing ones)."""

from __future__ import annotations

MLOPS_YAML = """\
# mlops_layer settings. Resolution: command-line flag > environment (MLOPS_*, MLFLOW_TRACKING_URI) > this file >
# embedded defaults. Relative sqlite paths are relative to this folder.
tracking_uri: sqlite:///mlflow.db        # team mode: http://mlflow.example:5000 (mlflow server + PostgreSQL)
audit_url: sqlite:///.mlops/audit.db     # team mode: postgresql+psycopg://user@host/db
experiment: mlops-layer
governance_dir: governance
# allowed_signers: governance/allowed_signers     # who may sign approvals and checkpoints (git's format)
# checkpoint_file: governance/audit-checkpoints.jsonl
"""

ALLOWED_SIGNERS = """\
# Who may sign approvals and audit checkpoints, in git's allowed_signers format (man ssh-keygen):
#   alice@example.com namespaces="mlops-approval,mlops-audit-checkpoint" ssh-ed25519 AAAA... alice
# Changes to this file are reviewed by pull request like any other governance file.
"""

GOVERNANCE_README = """\
# governance/

Reviewed, versioned governance files of this project, read by `mlops`:

- `policy.yaml` — promotion rules per target alias, roles, drift thresholds, alert rules;
- `models/<name>.yaml` — the model card of each model (owner, use, SLA, retraining, approvers, sensitivity);
- `allowed_signers` — the SSH keys trusted to sign approvals and audit checkpoints;
- `audit-checkpoints.jsonl` — signed checkpoints of the audit trail (append-only; commit them).

Change them by pull request: every decision records the git blob hash of the policy that applied.
"""


def scaffold_files() -> dict[str, str]:
    """Relative path -> content of every file ``mlops init`` creates."""
    files = {
        "mlops.yaml": MLOPS_YAML,
        "governance/README.md": GOVERNANCE_README,
        "governance/allowed_signers": ALLOWED_SIGNERS,
    }
    try:
        from mlops_layer.governance.templates import POLICY_TEMPLATE  # provided by the governance package

        files["governance/policy.yaml"] = POLICY_TEMPLATE
    except ImportError:
        pass
    return files
