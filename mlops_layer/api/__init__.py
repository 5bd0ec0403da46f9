"""The one facade of mlops_layer: plain functions that open adapters, call the core, close them, return results.

One module per capability — ``training`` (init, governed runs, registration, lineage, loading), ``status``,
``audit``, ``evidence`` (bundles), ``governance`` (cards, check, promote, rollback, approve, withdraw),
``authoring`` (card new, card and policy validation of the working copy), ``evaluation`` (the layer's own scores on
a holdout), ``drift``, ``monitoring``, ``lifecycle`` (alert ack/resolve, what follows an alias move, GTO's git
tags), ``retrain``, ``report`` (HTML pages) — wired by ``_wiring``. The CLI, the pipeline stages and users' own
scripts all call these; nothing here prints. Heavy
libraries (mlflow, dvc, pandas, evidently) are imported inside functions, never at module top.
"""

from __future__ import annotations

from mlops_layer.api._wiring import settings
from mlops_layer.api.audit import (
    AuditCheckpointResult,
    AuditExport,
    HistoryReport,
    audit_entry,
    audit_log,
    checkpoint_audit,
    export_audit,
    history,
    open_audit,
    parse_time,
    reconcile_audit,
    verify_audit,
)
from mlops_layer.api.authoring import (
    CardDraft,
    FilesValidation,
    TrainingStatement,
    card_new,
    card_validate,
    policy_validate,
    sign_training,
)
from mlops_layer.api.drift import drift_check, drift_config, profile_for_training, reference_profile
from mlops_layer.api.evaluation import evaluate
from mlops_layer.api.evidence import BundleExport, export_bundle, verify_bundle
from mlops_layer.api.governance import approve, card_show, check, promote, rollback, withdraw_approval
from mlops_layer.api.lifecycle import alert_ack, alert_resolve
from mlops_layer.api.loading import load_model
from mlops_layer.api.migrate import MigrationReport, migrate
from mlops_layer.api.monitoring import AlertStatus, alert_status, flush_notifications, monitor, monitor_every
from mlops_layer.api.report import ReportResult, inventory_page, model_page, report
from mlops_layer.api.retrain import RetrainResult, retrain
from mlops_layer.api.status import ModelStatus, StatusReport, VersionStatus, status
from mlops_layer.api.training import (
    GovernedRun,
    InitResult,
    LineageReport,
    Registration,
    governed_run,
    init,
    lineage,
    log_run_metrics,
    register,
)

__all__ = [
    "AlertStatus",
    "AuditCheckpointResult",
    "AuditExport",
    "BundleExport",
    "CardDraft",
    "FilesValidation",
    "GovernedRun",
    "HistoryReport",
    "InitResult",
    "LineageReport",
    "MigrationReport",
    "ModelStatus",
    "Registration",
    "ReportResult",
    "RetrainResult",
    "StatusReport",
    "TrainingStatement",
    "VersionStatus",
    "alert_ack",
    "alert_resolve",
    "alert_status",
    "approve",
    "audit_entry",
    "audit_log",
    "card_new",
    "card_show",
    "card_validate",
    "check",
    "checkpoint_audit",
    "drift_check",
    "drift_config",
    "evaluate",
    "export_audit",
    "export_bundle",
    "flush_notifications",
    "governed_run",
    "history",
    "init",
    "inventory_page",
    "lineage",
    "load_model",
    "log_run_metrics",
    "migrate",
    "model_page",
    "monitor",
    "monitor_every",
    "open_audit",
    "parse_time",
    "policy_validate",
    "profile_for_training",
    "promote",
    "reconcile_audit",
    "reference_profile",
    "register",
    "report",
    "retrain",
    "rollback",
    "settings",
    "sign_training",
    "status",
    "verify_audit",
    "verify_bundle",
    "withdraw_approval",
]
