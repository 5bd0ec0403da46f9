"""Every MLflow tag name the layer writes or reads: one home, so the UI, the rules and reconcile agree on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_layer.errors import MlopsError

PREFIX = "mlops."

# lineage (run and version tags)
LINEAGE = "mlops.lineage"  # the whole record as compact JSON (when it fits a tag)
COMMIT = "mlops.git.commit"
BRANCH = "mlops.git.branch"
DIRTY = "mlops.git.dirty"
DIFF = "mlops.git.diff_sha256"
REMOTE = "mlops.git.remote"
STAGE = "mlops.dvc.stage"
DATA_PREFIX = "mlops.data."
PARENT = "mlops.parent"
RUN = "mlops.run_id"
TRAINED_BY = "mlops.trained_by"
TRAINED_VIA = "mlops.trained_via"  # the service account a version was trained under (trained_by: the person)
REGISTERED_BY = "mlops.registered_by"
AUDIT_SEQ = "mlops.audit.seq"

# DVC datasets logged with mlflow.log_input
DVC_MD5 = "mlops.dvc.md5"
DVC_PATH = "mlops.dvc.path"
DVC_SIZE = "mlops.dvc.size"

# the registrant's claim of the model files' sha256 (team mode: the governing server records the digests)
CLAIMED_FILES = "mlops.claims.model_files"

# governance (version tags mirrored from decisions)
DIGEST = "mlops.model.digest"
POLICY_HASH = "mlops.policy.hash"
DECISION_PREFIX = "mlops.decision."
APPROVALS_PREFIX = "mlops.approvals."

# drift (version tags and drift-run tags)
DRIFT_STATUS = "mlops.drift.status"  # passed | drift | schema
DRIFT_CHECKED_AT = "mlops.drift.checked_at"
DRIFT_SHARE = "mlops.drift.share"
DRIFT_RUN = "mlops.drift.run_id"
DRIFT_AUDIT_SEQ = "mlops.drift.audit_seq"
DRIFT_MODEL = "mlops.drift.model"
DRIFT_VERSION = "mlops.drift.version"
DRIFT_REFERENCE = "mlops.drift.reference"
DRIFT_CURRENT = "mlops.drift.current"

# monitoring runs
MONITORING_MODEL = "mlops.monitoring.model"
MONITORING_VERSION = "mlops.monitoring.version"

# registration of a model logged outside a governed run ("false": no lineage to show)
LINEAGE_GOVERNED = "mlops.lineage.governed"

# independent evaluation: the version links its latest evaluation run (never its training run) and audit entry
EVALUATION_RUN = "mlops.evaluation.run_id"
EVALUATION_AUDIT_SEQ = "mlops.evaluation.audit_seq"
EVALUATION_MODEL = "mlops.evaluation.model"
EVALUATION_VERSION = "mlops.evaluation.version"
EVALUATION_DATA = "mlops.evaluation.data"
EVALUATION_DATA_MD5 = "mlops.evaluation.data_md5"
EVALUATION_MODEL_DIGEST = "mlops.evaluation.model_digest"


def decision_tag(alias: str) -> str:
    """The version tag holding the last decision for ``alias`` (JSON)."""
    return f"{DECISION_PREFIX}{alias}"


def approvals_tag(alias: str) -> str:
    """The version tag listing the standing approvals for ``alias``."""
    return f"{APPROVALS_PREFIX}{alias}"


def mirror(registry: Any, name: str, version: str, values: Mapping[str, Any], *, what: str = "tags") -> str | None:
    """Write governance state onto MLflow version tags, the one way every caller does it.

    Mirroring is a side effect that never stops a command: a refusal by the registry comes back as a one-line
    warning (None when the tags were written) for the caller to show.
    """
    try:
        registry.set_version_tags(name, version, values)
    except MlopsError as exc:
        return f"could not mirror {what} onto {name} v{version}: {exc.message}"
    return None
