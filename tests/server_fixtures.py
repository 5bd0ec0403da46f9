"""Launching real MLflow servers on loopback for the governing-server tests and benchmarks (owner: server).

``start_governing_server`` writes a governance clone, the server's config and keys, and runs
``mlflow server --app-name mlops`` with basic-auth on PostgreSQL; ``start_plain_server`` runs MLflow without the app
(the baseline). Both return a :class:`RunningServer`; ``stop()`` ends the whole process group.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_layer import signing

ADMIN_PASSWORD = "Admin-pass-1234"
# `python -c CLI_SNIPPET ARGS...` runs `mlops ARGS...` and says on stderr whether mlflow got imported
CLI_SNIPPET = """
import sys
from mlops_layer.cli.main import main
sys.argv = ["mlops", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("MLFLOW-IMPORTED" if "mlflow" in sys.modules else "NO-MLFLOW", file=sys.stderr)
sys.exit(code)
"""


@dataclass
class RunningServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    passwords: dict[str, str] = field(default_factory=dict)
    keys: dict[str, Path] = field(default_factory=dict)
    repo: Path | None = None

    def call(self, user: str | None, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One HTTP call as ``user`` (None: no credentials); (status, parsed JSON or text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if user is not None:
            token = base64.b64encode(f"{user}:{self.passwords[user]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def wait_healthy(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the server did not start:\n" + self.log.read_text()[-4000:]) from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def mlflow_client_as(server: RunningServer, user: str, password: str, monkeypatch: Any) -> Any:
    """An MlflowClient on ``server`` sending ``user``'s credentials (MLflow's own variables, no retries)."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(server.url, server.url)


def finished_run(
    client: Any,
    experiment: str,
    *,
    files: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
) -> Any:
    """A run created through the server in ``experiment`` (created when missing), ``metrics`` logged and ``files``
    uploaded under ``model/`` (what the server hashes at registration), then terminated."""
    from mlflow.exceptions import MlflowException

    try:
        exp = client.create_experiment(experiment)
    except MlflowException:
        exp = client.get_experiment_by_name(experiment).experiment_id
    run = client.create_run(exp, tags=tags)
    for key, value in (metrics or {}).items():
        client.log_metric(run.info.run_id, key, value)
    for name, text in (files or {}).items():
        client.log_text(run.info.run_id, text, f"model/{name}")
    client.set_terminated(run.info.run_id)
    return run


def register_run(client: Any, model: str, run: Any, tags: dict[str, str] | None = None) -> str:
    """Register ``runs:/ID/model`` of ``run`` as a new version of ``model`` (created when missing); its number."""
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        client.create_registered_model(model)
    mv = client.create_model_version(model, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags)
    return str(mv.version)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Ops", "-c", "user.email=ops@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def entry_point_shim(folder: Path) -> str | None:
    """When the venv's installed metadata predates the ``mlflow.app`` entry point (an editable install of another
    checkout), expose it through a minimal dist-info on PYTHONPATH; a fresh ``pip install -e .`` needs none."""
    from importlib.metadata import entry_points

    if any(ep.name == "mlops" for ep in entry_points(group="mlflow.app")):
        return None
    info = folder / "mlops_layer_server_ep-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlops-layer-server-ep\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[mlflow.app]\nmlops = mlops_layer.server.app:create_app\n")
    return str(folder)


def _launch(args: list[str], base: Path, env: dict[str, str], name: str) -> tuple[str, subprocess.Popen[bytes], Path]:
    port = free_port()
    log = base / f"{name}.log"
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return f"http://127.0.0.1:{port}", proc, log


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return env


def start_plain_server(backend: str, base: Path, *, workers: int = 2) -> RunningServer:
    """``mlflow server`` without the app and without auth (the baseline)."""
    base.mkdir(parents=True, exist_ok=True)
    args = [
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(base / "artifacts"),
        "--workers",
        str(workers),
    ]
    url, proc, log = _launch(args, base, _clean_env(), "plain-server")
    server = RunningServer(url, proc, log)
    server.wait_healthy()
    return server


def start_governing_server(
    backend: str,
    auth_db: str,
    audit_db: str,
    base: Path,
    *,
    policy: str,
    users: dict[str, str],
    signers: dict[str, list[str]],
    workers: int = 2,
    extra_config: str = "",
) -> RunningServer:
    """``mlflow server --app-name mlops``: a governance clone holding ``policy`` and an ``allowed_signers`` line per
    ``signers`` entry (principal -> namespaces, keys generated here), the server's checkpoint key, ``users`` created
    through MLflow's user API by the admin."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "keys").mkdir(exist_ok=True)
    keys = {who: base / "keys" / who for who in (*signers, "mlops-server")}
    lines = []
    for who, path in keys.items():
        # the server's key is a raw Ed25519 PEM key: it signs a checkpoint per append in-process
        pub = signing.generate_key(path, who, kind="ed25519" if who == "mlops-server" else "ssh")
        lines.append(signing.allowed_signers_line(who, pub, signers.get(who, ["mlops-audit-checkpoint"])))
    repo = base / "clone"
    (repo / "governance" / "models").mkdir(parents=True, exist_ok=True)
    (repo / "governance" / "policy.yaml").write_text(policy)
    (repo / "governance" / "allowed_signers").write_text("\n".join(lines) + "\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "governance")
    config = base / "server.yaml"
    config.write_text(
        f"governance_repo: {repo}\ngovernance_ref: main\naudit_url: {audit_db}\nauth_database_uri: {auth_db}\n"
        f"admin: admin\ncheckpoint_key: {keys['mlops-server']}\nstate_dir: {base / 'state'}\n{extra_config}"
    )
    env = _clean_env()
    shim = entry_point_shim(base / "ep")
    env.update(
        MLOPS_SERVER_CONFIG=str(config),
        MLFLOW_FLASK_SERVER_SECRET_KEY="test-secret-key-0123456789",
        MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PYTHONPATH=os.pathsep.join(p for p in (shim, env.get("PYTHONPATH", "")) if p),
    )
    args = [
        "--app-name",
        "mlops",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(base / "artifacts"),
        "--workers",
        str(workers),
    ]
    url, proc, log = _launch(args, base, env, "governing-server")
    server = RunningServer(url, proc, log, {"admin": ADMIN_PASSWORD, **users}, keys, repo)
    server.wait_healthy()
    for user, password in users.items():
        status, body = server.call(
            "admin", "POST", "/api/2.0/mlflow/users/create", {"username": user, "password": password}
        )
        if status != 200:
            server.stop()
            raise RuntimeError(f"creating user {user} failed: {status} {body}")
    return server


@contextlib.contextmanager
def governing_server(pg_server_url: str, base: Path, **options: Any) -> Iterator[RunningServer]:
    """``start_governing_server`` on three fresh databases of ``pg_server_url`` (MLflow's store, basic-auth's users,
    the audit trail); stopped on exit. ``options`` as for ``start_governing_server``."""
    from pg_fixtures import create_database

    backend, auth, audit = (create_database(pg_server_url) for _ in range(3))
    srv = start_governing_server(backend, auth, audit, base, **options)
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def mlflow_login(user: str, password: str) -> Iterator[None]:
    """MLflow's credential variables set to ``user`` for the block (what the CLI and the api send), then restored."""
    keys = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
