"""The governing server's own settings: read by the server only, never by clients.

A YAML file named by ``MLOPS_SERVER_CONFIG`` (read through the located reader, so errors name file:line)::

    governance_repo: /srv/mlops/governance      # the server's git clone of the project
    governance_ref: origin/main                 # the protected ref whose governance files count
    governance_dir: governance                  # where policy.yaml, models/, allowed_signers live in it
    audit_url: postgresql+psycopg://mlops@db/mlops
    auth_database_uri: postgresql+psycopg://mlops@db/mlflow_auth   # MLflow basic-auth users and permissions
    admin: admin                                # MLflow's admin user (password: MLFLOW_AUTH_ADMIN_PASSWORD)
    checkpoint_key: /srv/mlops/keys/server      # SSH key signing a checkpoint after every append (optional)
    state_dir: /var/lib/mlops-server            # snapshots of the governance files per commit
    fetch_seconds: 0                            # >0: `git fetch` the clone at most that often
    auth_cache_seconds: 30                      # basic-auth credential cache per worker (0: verify every request)
    data_dir: /srv/mlops/dvc-remote             # data the server can read (a DVC cache or local remote, or a
                                                # folder of batches): posted drift evidence is recomputed from it
    dvc_remote: s3://bucket/dvc-store           # the DVC remote the server can read (optional): data-in-remote check

Secrets stay in the environment: ``MLFLOW_AUTH_ADMIN_PASSWORD``, ``MLFLOW_FLASK_SERVER_SECRET_KEY``. Any key can be
overridden by ``MLOPS_SERVER_<KEY>`` (e.g. ``MLOPS_SERVER_AUDIT_URL``) for deployments that inject URLs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlops_layer.errors import ConfigError

CONFIG_ENV = "MLOPS_SERVER_CONFIG"
_KEYS = (
    "governance_repo",
    "governance_ref",
    "governance_dir",
    "audit_url",
    "auth_database_uri",
    "admin",
    "checkpoint_key",
    "state_dir",
    "fetch_seconds",
    "auth_cache_seconds",
    "data_dir",
    "dvc_remote",
)


@dataclass(frozen=True)
class ServerConfig:
    """Where the server's governance comes from and where its trail lives."""

    governance_repo: Path
    governance_ref: str
    governance_dir: str
    audit_url: str
    auth_database_uri: str | None
    admin: str
    checkpoint_key: Path | None
    state_dir: Path
    fetch_seconds: float = 0.0
    auth_cache_seconds: int = 30
    source: str = ""
    data_dir: Path | None = None
    dvc_remote: str | None = None  # a URL DVC understands, or a folder; None: data-in-remote is "not checked"


def load_server_config(path: Path | None = None) -> ServerConfig:
    """Read the server's config (``MLOPS_SERVER_CONFIG`` when ``path`` is None); env ``MLOPS_SERVER_*`` overrides."""
    from mlops_layer.governance.located_yaml import Fields, parse_located, read_bytes

    values: dict[str, str] = {}
    file = path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if file is not None:
        doc = parse_located(read_bytes(file, what="server config"), str(file))
        if doc.value is not None:
            fields = Fields(doc, allowed=_KEYS)
            for key in _KEYS:
                item = fields.get(key)
                if item is not None:
                    values[key] = str(item.value)
            fields.finish()
    for key in _KEYS:
        env = os.environ.get(f"MLOPS_SERVER_{key.upper()}")
        if env:
            values[key] = env
    where = str(file) if file is not None else "the environment"
    for required in ("governance_repo", "audit_url"):
        if not values.get(required):
            raise ConfigError(
                f"{where}: the governing server needs '{required}'",
                hint=f"set it in the file named by {CONFIG_ENV} or as MLOPS_SERVER_{required.upper()}",
            )
    repo = Path(values["governance_repo"]).expanduser().resolve()
    try:
        fetch = float(values.get("fetch_seconds") or 0)
    except ValueError:
        raise ConfigError(f"{where}: fetch_seconds must be a number, got {values['fetch_seconds']!r}") from None
    try:
        cache = int(values.get("auth_cache_seconds") or 30)
    except ValueError:
        raise ConfigError(
            f"{where}: auth_cache_seconds must be an integer, got {values['auth_cache_seconds']!r}"
        ) from None
    checkpoint_key = values.get("checkpoint_key") or None
    data_dir = values.get("data_dir") or None
    return ServerConfig(
        governance_repo=repo,
        governance_ref=values.get("governance_ref") or "HEAD",
        governance_dir=values.get("governance_dir") or "governance",
        audit_url=values["audit_url"],
        auth_database_uri=values.get("auth_database_uri") or None,
        admin=values.get("admin") or "admin",
        checkpoint_key=Path(checkpoint_key).expanduser().resolve() if checkpoint_key else None,
        state_dir=Path(values.get("state_dir") or repo / ".mlops" / "server").expanduser().resolve(),
        fetch_seconds=fetch,
        auth_cache_seconds=cache,
        source=where,
        data_dir=Path(data_dir).expanduser().resolve() if data_dir else None,
        dvc_remote=_remote(values.get("dvc_remote")),
    )


def _remote(value: str | None) -> str | None:
    """A DVC remote URL as given; a plain folder path made absolute (the server's working directory is no anchor)."""
    if not value:
        return None
    return value if "://" in value else str(Path(value).expanduser().resolve())
