"""Settings of a project: where the stores live and who is acting.

Resolution order: explicit argument (a CLI flag) > environment (``MLOPS_*``, ``MLFLOW_TRACKING_URI``) >
``mlops.yaml`` at the project root > embedded defaults. Nothing needs a server to get started.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlops_layer.adapters.git import user_email
from mlops_layer.errors import ConfigError
from mlops_layer.yamlfile import YamlFile, kind_of, read_yaml

CONFIG_FILE = "mlops.yaml"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_AUDIT_URL = "sqlite:///.mlops/audit.db"
DEFAULT_EXPERIMENT = "mlops-layer"
DEFAULT_GOVERNANCE_DIR = "governance"

# Keys mlops.yaml may hold. Security-relevant ones (allowed_signers, governance_dir) are deliberately NOT read from
# the environment: a variable anyone can set must not change who is trusted to approve.
_FILE_KEYS = {
    "tracking_uri",
    "registry_uri",
    "artifact_location",
    "audit_url",
    "experiment",
    "governance_dir",
    "allowed_signers",
    "checkpoint_file",
    "governance_ref",
    "signing_key",
    "dvc_remote",
    "actor",
}
# Sections that are mappings, validated by their owners (monitoring reads ``notifications``).
_SECTION_KEYS = {"notifications", "audit"}
# Switches (true/false).  git_tags: write GTO's annotated git tags on registration and alias moves.
_BOOL_KEYS = {"git_tags"}
# Keys of the ``audit:`` section: automatic signed checkpoints (the key's path; MLOPS_CHECKPOINT_KEY overrides) and
# how many entries may follow the newest valid checkpoint before `mlops audit verify` fails.
AUDIT_KEYS = ("checkpoint_key", "max_unanchored")
_ENV_KEYS = {
    "tracking_uri": ("MLOPS_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    "registry_uri": ("MLOPS_REGISTRY_URI", "MLFLOW_REGISTRY_URI"),
    "audit_url": ("MLOPS_AUDIT_URL",),
    "experiment": ("MLOPS_EXPERIMENT",),
    "actor": ("MLOPS_ACTOR",),
    "signing_key": ("MLOPS_SIGNING_KEY",),  # a private key: who it proves is decided by the committed signers
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one project. Paths are absolute; sqlite URLs are made absolute too."""

    root: Path
    tracking_uri: str
    registry_uri: str
    artifact_location: str
    audit_url: str
    experiment: str
    governance_dir: Path
    allowed_signers: Path
    checkpoint_file: Path
    dvc_remote: str | None
    actor: str
    governance_ref: str = "HEAD"
    checkpoint_key: Path | None = None
    max_unanchored: int | None = None
    signing_key: Path | None = None  # signs the trainer's and registrant's identity (policy `identity: signed`)
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    git_tags: bool = False  # also write GTO's git tags for registrations and alias moves

    @property
    def policy_file(self) -> Path:
        return self.governance_dir / "policy.yaml"

    @property
    def cards_dir(self) -> Path:
        return self.governance_dir / "models"

    @property
    def state_dir(self) -> Path:
        """Local, ignored state of the layer (audit db, locks, caches)."""
        return self.root / ".mlops"

    def with_overrides(self, **overrides: Any) -> Settings:
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "tracking_uri" in clean:
            clean["tracking_uri"] = absolute_sqlite_url(clean["tracking_uri"], self.root)
            clean.setdefault("registry_uri", clean["tracking_uri"])
        if "audit_url" in clean:
            clean["audit_url"] = absolute_sqlite_url(clean["audit_url"], self.root)
        return replace(self, **clean)


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder holding mlops.yaml, else the git work tree, else ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


def absolute_sqlite_url(url: str, root: Path) -> str:
    """Make ``sqlite:///relative.db`` relative to the project root, not to whatever the cwd happens to be."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rel = url[len(prefix) :]
        if rel and rel != ":memory:":
            return prefix + str((root / rel).resolve())
    return url


def read_config_document(root: Path) -> YamlFile:
    """``mlops.yaml`` through the one YAML reader (an absent file is an empty document), validated at the top level.

    Settings must be strings; sections (``notifications``) must be mappings and are validated by their owners.
    """
    doc = read_yaml(root / CONFIG_FILE, what="settings file", missing_ok=True)
    if doc.root.value is None:
        return doc
    if not isinstance(doc.root.value, dict):
        doc.root.fail(f"expected a mapping of settings, got {kind_of(doc.root.value)}")
    top = doc.top_level()
    unknown = [key for key in top if key not in _FILE_KEYS | _SECTION_KEYS | _BOOL_KEYS]
    if unknown:
        first = top[unknown[0]]
        raise ConfigError(
            f"{first.where}: unknown setting(s) {', '.join(sorted(unknown))}",
            hint=f"known settings: {', '.join(sorted(_FILE_KEYS | _SECTION_KEYS | _BOOL_KEYS))}",
        )
    for key, node in top.items():
        if node.value is None:
            continue
        if key in _SECTION_KEYS:
            node.mapping()
        elif key in _BOOL_KEYS:
            node.boolean()
        elif not isinstance(node.value, str):
            node.fail(f"a setting must be a string, got {kind_of(node.value)} {node.value!r}")
    return doc


def read_config_file(root: Path) -> dict[str, Any]:
    """Read and validate ``mlops.yaml`` as plain values; an absent file is an empty config."""
    value = read_config_document(root).root.plain()
    return value if isinstance(value, dict) else {}


def load_settings(root: Path | None = None, **overrides: Any) -> Settings:
    """Resolve the settings of the project at ``root`` (found from the cwd when None)."""
    root = (root or find_root()).resolve()
    file_cfg = read_config_file(root)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    defaults: dict[str, str | None] = {
        "tracking_uri": DEFAULT_TRACKING_URI,
        "registry_uri": None,
        "artifact_location": None,
        "audit_url": DEFAULT_AUDIT_URL,
        "experiment": DEFAULT_EXPERIMENT,
        "governance_dir": DEFAULT_GOVERNANCE_DIR,
        "allowed_signers": None,
        "checkpoint_file": None,
        "governance_ref": None,
        "signing_key": None,
        "dvc_remote": None,
        "actor": None,
    }
    for key, default in defaults.items():
        value, source = default, "default"
        if file_cfg.get(key) is not None:
            value, source = file_cfg[key], CONFIG_FILE
        for env in _ENV_KEYS.get(key, ()):
            if os.environ.get(env):
                value, source = os.environ[env], env
                break
        if overrides.get(key) is not None:
            value, source = overrides[key], "flag"
        values[key] = value
        sources[key] = source

    tracking = absolute_sqlite_url(str(values["tracking_uri"]), root)
    registry = absolute_sqlite_url(str(values["registry_uri"] or tracking), root)
    governance_dir = (root / str(values["governance_dir"])).resolve()
    artifact_location = values["artifact_location"] or ""
    if not artifact_location and not tracking.startswith(("http://", "https://", "databricks")):
        # an embedded store keeps files next to it; a tracking server's clients use the server's artifact store
        # (its default root, `mlflow-artifacts:/` when it serves artifacts), which every client and the server reach
        artifact_location = str(root / "mlartifacts")
    if artifact_location and "://" not in artifact_location:
        artifact_location = str((root / artifact_location).resolve())
    actor = values["actor"] or user_email(root) or getpass.getuser()
    checkpoint_key, max_unanchored = _audit_section(root, file_cfg.get("audit") or {})
    return Settings(
        root=root,
        tracking_uri=tracking,
        registry_uri=registry,
        artifact_location=artifact_location,
        audit_url=absolute_sqlite_url(str(values["audit_url"]), root),
        experiment=str(values["experiment"]),
        governance_dir=governance_dir,
        allowed_signers=(root / str(values["allowed_signers"])).resolve()
        if values["allowed_signers"]
        else governance_dir / "allowed_signers",
        checkpoint_file=(root / str(values["checkpoint_file"])).resolve()
        if values["checkpoint_file"]
        else governance_dir / "audit-checkpoints.jsonl",
        dvc_remote=values["dvc_remote"],
        actor=str(actor),
        governance_ref=str(values["governance_ref"] or "HEAD"),
        checkpoint_key=checkpoint_key,
        max_unanchored=max_unanchored,
        signing_key=(root / Path(str(values["signing_key"])).expanduser()).resolve() if values["signing_key"] else None,
        sources=sources,
        git_tags=bool(file_cfg.get("git_tags") or False),
    )


def _audit_section(root: Path, section: dict[str, Any]) -> tuple[Path | None, int | None]:
    """``audit: {checkpoint_key: PATH, max_unanchored: N}``; the key may also come from MLOPS_CHECKPOINT_KEY."""
    unknown = sorted(set(section) - set(AUDIT_KEYS))
    if unknown:
        raise ConfigError(
            f"{root / CONFIG_FILE}: unknown setting(s) audit.{', audit.'.join(unknown)}",
            hint=f"the audit section takes: {', '.join(AUDIT_KEYS)}",
        )
    raw_key = os.environ.get("MLOPS_CHECKPOINT_KEY") or section.get("checkpoint_key")
    if raw_key is not None and not isinstance(raw_key, str):
        raise ConfigError(f"{root / CONFIG_FILE}: audit.checkpoint_key must be a path, got {raw_key!r}")
    limit = section.get("max_unanchored")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"{root / CONFIG_FILE}: audit.max_unanchored must be a whole number >= 0, got {limit!r}")
    key = (root / Path(raw_key).expanduser()).resolve() if raw_key else None
    return key, limit
