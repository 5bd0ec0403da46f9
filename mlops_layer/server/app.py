"""``mlflow server --app-name mlops``: MLflow with its basic-auth and the layer's governance, one app.

The ``mlflow.app`` entry point ``mlops`` names :func:`create_app`. It reads the server's own config
(``MLOPS_SERVER_CONFIG``), points MLflow's auth database at ``auth_database_uri`` (PostgreSQL, shared by every worker
and host), adds the governance endpoints' hook *before* basic-auth's and the registry guard *after* it, and returns
``mlflow.server.auth.create_app(app)``: authentication is MLflow's, never the layer's.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from mlops_layer.server.config import ServerConfig, load_server_config
from mlops_layer.server.governing import ServerGovernance

_lock = threading.Lock()
_state: dict[str, ServerGovernance] = {}


def _auth_ini(config: ServerConfig) -> Path | None:
    """Write basic-auth's ini for ``auth_database_uri`` (unless the operator set MLFLOW_AUTH_CONFIG_PATH)."""
    if os.environ.get("MLFLOW_AUTH_CONFIG_PATH") or not config.auth_database_uri:
        return None
    import importlib.util

    # located, not imported: mlflow.server.auth reads its config when first imported
    spec = importlib.util.find_spec("mlflow.server.auth")
    shipped = Path(str(spec.origin if spec else "")).parent / "basic_auth.ini"
    parser = configparser.ConfigParser()
    parser.read(shipped)
    parser["mlflow"]["database_uri"] = config.auth_database_uri
    parser["mlflow"]["admin_username"] = config.admin
    parser["mlflow"]["authorization_function"] = "mlflow.server.auth:authenticate_request_basic_auth"
    # PBKDF2 costs ~0.5 s of CPU per request; cache verified credentials per worker for a short window
    parser["mlflow"]["auth_cache_ttl_seconds"] = str(config.auth_cache_seconds)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    path = config.state_dir / "basic_auth.ini"
    tmp = path.with_name(f"basic_auth.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        parser.write(fh)
    tmp.replace(path)
    return path


def _governance() -> ServerGovernance:
    gov = _state.get("gov")
    if gov is None:
        raise RuntimeError("the mlops app is not initialised (create_app was not called in this process)")
    return gov


@contextlib.contextmanager
def _startup_lock(url: str | None) -> Any:
    """Serialise worker start-up (auth schema migrations, admin bootstrap) across workers on PostgreSQL."""
    if not url or not url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine

    engine = create_engine(url, poolclass=__import__("sqlalchemy.pool", fromlist=["NullPool"]).NullPool)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("SELECT pg_advisory_lock(7262013391)")
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(7262013391)")
    engine.dispose()


def create_app(app: Any = None) -> Any:
    """The governing server app (the ``mlflow.app`` factory uvicorn calls in every worker)."""
    from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR, REGISTRY_STORE_URI_ENV_VAR

    from mlops_layer.server.endpoints import Endpoints
    from mlops_layer.server.guard import ArtifactGuard, RegistryGuard

    config = load_server_config()
    ini = _auth_ini(config)
    if ini is not None:
        os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
    os.environ.setdefault("MLFLOW_AUTH_ADMIN_USERNAME", config.admin)
    if app is None:
        from mlflow.server import app as flask_app

        app = flask_app
    backend = os.environ.get(BACKEND_STORE_URI_ENV_VAR) or ""
    if not backend:
        raise RuntimeError("the mlops app runs inside `mlflow server` (no backend store URI in the environment)")
    with _lock, _startup_lock(config.auth_database_uri):
        if "gov" not in _state:
            _state["gov"] = ServerGovernance(config, backend, os.environ.get(REGISTRY_STORE_URI_ENV_VAR) or None)
            _state["gov"].snapshot()  # fail at start-up, not at the first request, when the clone is unusable
            _state["gov"].recover_all()
        import mlflow.server.auth as auth

        endpoints = Endpoints(_governance)
        guard = RegistryGuard(_governance)
        app.before_request(endpoints.before_request)  # before basic-auth: it fail-closes on routes it does not know
        composed = auth.create_app(app)
    app.before_request(guard.before_request)  # after basic-auth: the caller is authenticated and permitted
    app.after_request(guard.after_request)
    if hasattr(composed, "add_middleware"):  # uvicorn: a FastAPI app whose native routes serve artifact uploads
        composed.add_middleware(ArtifactGuard, governance=_governance)
    return composed
