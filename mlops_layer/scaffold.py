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
# Who may sign approvals and audit checkpoints, in git's allowed_signers format (man ssh-keygen, ALLOWED SIGNERS).
# Changes to this file are reviewed by pull request like any other governance file; only the committed version
# counts. One line per trusted key:
#
#   alice@example.com namespaces="mlops-approval,mlops-audit-checkpoint" ssh-ed25519 AAAA... alice
#
# To add yourself as an approver:
#   1. make a key (keep the private half to yourself; a passphrase is fine):
#        ssh-keygen -t ed25519 -f ~/.ssh/mlops_approval -C you@example.com
#   2. add a line with your principal (as named under `roles:` in policy.yaml) and the public key:
#        echo "you@example.com namespaces=\"mlops-approval\" $(cat ~/.ssh/mlops_approval.pub)" >> governance/allowed_signers
#      (namespace mlops-audit-checkpoint as well if you sign audit checkpoints);
#   3. open a pull request; once merged, `mlops approve NAME VERSION --to ALIAS --key ~/.ssh/mlops_approval` counts.
"""

GOVERNANCE_README = """\
# governance/

Reviewed, versioned governance files of this project, read by `mlops`:

- `policy.yaml` — promotion rules per target alias, roles, drift thresholds, alert rules;
- `models/<name>.yaml` — the model card of each model (owner, use, SLA, retraining, approvers, sensitivity);
  start one with `mlops card new NAME --owner ... --use ...`; `card-template.yaml` shows every question;
- `allowed_signers` — the SSH keys trusted to sign approvals and audit checkpoints;
- `audit-checkpoints.jsonl` — signed checkpoints of the audit trail (append-only; commit them).

Change them by pull request: every decision records the git blob hash of the policy that applied.
Check the working copy before committing: `mlops policy validate` and `mlops card validate`.
"""


def scaffold_files() -> dict[str, str]:
    """Relative path -> content of every file ``mlops init`` creates."""
    files = {
        "mlops.yaml": MLOPS_YAML,
        "governance/README.md": GOVERNANCE_README,
        "governance/allowed_signers": ALLOWED_SIGNERS,
    }
    from mlops_layer.governance.templates import POLICY_TEMPLATE, card_template

    files["governance/policy.yaml"] = POLICY_TEMPLATE
    files["governance/card-template.yaml"] = card_template()
    return files
