"""``governance/policy.yaml`` parsed once: one :class:`PolicyDocument` that every section reader takes.

The promotion rules (:func:`mlops_layer.governance.policy.policy_from_document`), the alert rules
(:func:`mlops_layer.monitoring.alerts.alert_rules_from_document`) and the drift settings
(:func:`mlops_layer.drift.config.drift_config_from_document`) all read their section of the same parsed document,
so a command parses the file once and every part of it agrees on one blob hash. Top-level sections that nothing
reads are reported as :class:`~mlops_layer.errors.ConfigWarning` naming file:line (they still parse, so existing
policies keep working); misspelt sections are refused by the policy reader.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mlops_layer.errors import ConfigWarning
from mlops_layer.yamlfile import Located, YamlFile, parse_located, read_yaml

# Top-level sections of policy.yaml and who reads them (None: accepted for compatibility, read by nobody).
POLICY_SECTIONS: dict[str, str | None] = {
    "version": "the promotion policy",
    "roles": "the promotion policy",
    "targets": "the promotion policy",
    "models": "the promotion policy",
    "identity": "the promotion policy (declared or signed trainer/registrant)",
    "principals": "the governing server (MLflow username -> principal)",
    "service_accounts": "the promotion policy (accounts CI trains under, on someone's signed behalf)",
    "monitoring_roles": "the governing server (roles whose holders may post drift and monitoring evidence)",
    "alerts": "monitoring (alert rules)",
    "drift": "the drift gate",
    "monitoring": None,
    "retraining": None,
}
_UNREAD_HINTS = {
    "monitoring": "alert rules go under 'alerts:'",
    "retraining": "retraining is set per model, on its card's 'retraining:'",
}
POLICY_HINT = "write governance/policy.yaml (run `mlops init` for a starting point)"


@dataclass(frozen=True)
class PolicyDocument:
    """The parsed policy file: its located document, its git blob hash and the warnings found while reading it."""

    file: YamlFile
    warnings: tuple[str, ...] = field(default=())

    @property
    def path(self) -> str:
        return self.file.path

    @property
    def exists(self) -> bool:
        return self.file.exists

    @property
    def root(self) -> Located:
        return self.file.root

    @property
    def policy_hash(self) -> str:
        return self.file.blob_hash

    def section(self, name: str) -> Located | None:
        """The top-level section ``name`` (None when absent or empty)."""
        return self.file.section(name)


def unread_sections(file: YamlFile) -> tuple[str, ...]:
    """One warning per top-level section that nothing reads, naming file:line."""
    out = []
    for name, node in file.top_level().items():
        if name in POLICY_SECTIONS and POLICY_SECTIONS[name] is None:
            out.append(
                f"{node.where}: section '{name}' is not read by anything in this layer and has no effect "
                f"({_UNREAD_HINTS.get(name, 'remove it')})"
            )
    return tuple(out)


def _document(file: YamlFile) -> PolicyDocument:
    found = unread_sections(file)
    for message in found:
        warnings.warn(message, ConfigWarning, stacklevel=3)
    return PolicyDocument(file, found)


def load_policy_document(path: Path, *, missing_ok: bool = False) -> PolicyDocument:
    """Read and parse ``path`` once. ``missing_ok``: an absent file is an empty document (``exists`` False)."""
    return _document(read_yaml(path, what="promotion policy", hint=POLICY_HINT, missing_ok=missing_ok))


def parse_policy_document(data: bytes, file: str) -> PolicyDocument:
    """A policy document from bytes already read (e.g. the file at a git commit); ``file`` names it in errors."""
    return _document(YamlFile(file, data, parse_located(data, file)))
