"""The governing server: cold `mlops check` in team mode vs local mode, and a load run against the server vs MLflow
without the app, all in one run.

1. Cold CLI: `mlops check MODEL 1 --to staging --json` as a fresh process, median of 5, (a) against the governing
   server (the CLI detects the app, calls its endpoint, imports no mlflow) and (b) in a local project (embedded sqlite
   MLflow store, sqlite audit trail) — today's local mode. Ratio b/a.
2. Load: 8 concurrent clients, each on its own model with 3 versions. Against the governing server (2 workers, basic
   auth, PostgreSQL): every client alternates a policy check (POST /mlops/api/v1/check) and a governed alias move
   (POST /api/2.0/mlflow/registered-models/alias, cycling v1 -> v2 -> v3, so every move is a promotion). Against plain
   `mlflow server` (2 workers, no app, no auth, same PostgreSQL server): the same alias sets. Throughput, p50/p99 per
   kind, overhead ratios.

Run: `.venv/bin/python benchmarks/bench_server.py [--ops 30]`
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from pg_fixtures import ThrowawayPostgres, create_database  # noqa: E402
from server_fixtures import start_governing_server, start_plain_server  # noqa: E402

CLIENTS = 8
POLICY = """version: 1
roles: {}
targets:
  staging:
    rules:
      - {type: metric_threshold, metric: accuracy, min: 0.8}
"""
USERS = {"dana": "Dana-pass-1234"}


class Client:
    """One persistent HTTP connection (each benchmark client has its own)."""

    def __init__(self, url: str, user: str | None = None, password: str = "") -> None:
        parsed = urlparse(url)
        self.conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=120)
        self.headers = {"Content-Type": "application/json"}
        if user:
            self.headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.conn.request("POST", path, json.dumps(body), self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None

    def put(self, path: str, data: bytes) -> int:
        self.conn.request("PUT", path, data, {**self.headers, "Content-Type": "application/octet-stream"})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status


def _seed(url: str, user: str | None, password: str, model: str) -> None:
    c = Client(url, user, password)
    status, exp = c.post("/api/2.0/mlflow/experiments/create", {"name": f"bench-{model}"})
    assert status == 200, exp
    c.post("/api/2.0/mlflow/registered-models/create", {"name": model})
    for accuracy in (0.91, 0.92, 0.93):
        status, run = c.post("/api/2.0/mlflow/runs/create", {"experiment_id": exp["experiment_id"]})
        assert status == 200, run
        run_id = run["run"]["info"]["run_id"]
        # a model file: the governing server hashes a version's files at registration (none: promotion refused)
        where = run["run"]["info"]["artifact_uri"].removeprefix("mlflow-artifacts:").lstrip("/")
        status = c.put(f"/api/2.0/mlflow-artifacts/artifacts/{where}/model/MLmodel", f"accuracy: {accuracy}\n".encode())
        assert status == 200, status
        c.post(
            "/api/2.0/mlflow/runs/log-metric",
            {"run_id": run_id, "key": "accuracy", "value": accuracy, "timestamp": int(time.time() * 1000), "step": 0},
        )
        status, mv = c.post(
            "/api/2.0/mlflow/model-versions/create",
            {"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id},
        )
        assert status == 200, mv


def _load(url: str, user: str | None, password: str, ops: int, governed: bool) -> dict[str, list[float]]:
    """8 threads; returns latencies per kind and the wall time."""
    lat: dict[str, list[float]] = {"move": [], "check": []}
    lock = threading.Lock()
    errors: list[str] = []
    barrier = threading.Barrier(CLIENTS + 1)

    def work(i: int) -> None:
        c = Client(url, user, password)
        model = f"load-{i}"
        mine: dict[str, list[float]] = {"move": [], "check": []}
        barrier.wait()
        for n in range(ops):
            version = str(n % 3 + 1)
            if governed:
                t0 = time.perf_counter()
                status, body = c.post("/mlops/api/v1/check", {"model": model, "version": version, "to": "staging"})
                mine["check"].append(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"check {status} {body}")
            t0 = time.perf_counter()
            status, body = c.post(
                "/api/2.0/mlflow/registered-models/alias", {"name": model, "alias": "staging", "version": version}
            )
            mine["move"].append(time.perf_counter() - t0)
            if status != 200:
                errors.append(f"move {status} {body}")
        with lock:
            for k, v in mine.items():
                lat[k].extend(v)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    lat["wall"] = [time.perf_counter() - t0]
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    return lat


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _cold_check(cwd: Path, env: dict[str, str], runs: int = 5) -> float:
    mlops = str(Path(sys.executable).parent / "mlops")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [mlops, "check", "bench", "1", "--to", "staging", "--json"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0 or '"allowed": true' not in proc.stdout:
            raise SystemExit(f"mlops check failed ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-1500:]}")
    return statistics.median(times)


def _local_project(base: Path) -> Path:
    from mlflow import MlflowClient

    root = base / "local"
    (root / "governance").mkdir(parents=True)
    (root / "governance" / "policy.yaml").write_text(POLICY)
    (root / "mlops.yaml").write_text("tracking_uri: sqlite:///mlflow.db\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@x", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "g"], cwd=root, check=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    exp = client.create_experiment("bench", artifact_location=(root / "art").as_uri())
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "accuracy", 0.9)
    client.log_text(run.info.run_id, "bench", "model/MLmodel")
    client.set_terminated(run.info.run_id)
    # registered through the layer: its metrics and files are frozen (the gate never reads live run metrics)
    from mlops_layer import api

    api.register("bench", run.info.run_id, root=root)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=30, help="alias moves per client in the load run")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-server-"))
    pg = ThrowawayPostgres()
    pg_url = pg.start()
    servers = []
    try:
        gov = start_governing_server(
            create_database(pg_url),
            create_database(pg_url),
            create_database(pg_url),
            base / "gov",
            policy=POLICY,
            users=USERS,
            signers={},
        )
        servers.append(gov)
        plain = start_plain_server(create_database(pg_url), base / "plain")
        servers.append(plain)
        for i in range(CLIENTS):
            _seed(gov.url, "dana", USERS["dana"], f"load-{i}")
            _seed(plain.url, None, "", f"load-{i}")
        _seed(gov.url, "dana", USERS["dana"], "bench")

        # 1. cold CLI
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
        team_env = {
            **env,
            "MLFLOW_TRACKING_URI": gov.url,
            "MLFLOW_TRACKING_USERNAME": "dana",
            "MLFLOW_TRACKING_PASSWORD": USERS["dana"],
        }
        empty = base / "client"
        empty.mkdir()
        team = _cold_check(empty, team_env)
        local = _cold_check(_local_project(base), env)

        # 2. load
        plain_lat = _load(plain.url, None, "", args.ops, governed=False)
        gov_lat = _load(gov.url, "dana", USERS["dana"], args.ops, governed=True)
    finally:
        for s in servers:
            s.stop()
        pg.stop()

    n_plain = len(plain_lat["move"])
    n_gov = len(gov_lat["move"]) + len(gov_lat["check"])
    rows = [
        ("cold `mlops check --json`, team mode (governing server, no mlflow import), median of 5", f"{team:.2f} s"),
        ("cold `mlops check --json`, local mode (embedded sqlite), median of 5", f"{local:.2f} s"),
        ("local / team", f"{local / team:.1f}x"),
        (
            f"plain alias sets, {CLIENTS} clients x {args.ops}: throughput",
            f"{n_plain / plain_lat['wall'][0]:.1f} ops/s",
        ),
        (
            "plain alias set p50 / p99",
            f"{_pct(plain_lat['move'], 0.5) * 1000:.0f} / {_pct(plain_lat['move'], 0.99) * 1000:.0f} ms",
        ),
        (
            f"governed: {CLIENTS} clients x {args.ops} (check + alias move): throughput",
            f"{n_gov / gov_lat['wall'][0]:.1f} ops/s ({len(gov_lat['move']) / gov_lat['wall'][0]:.1f} moves/s)",
        ),
        (
            "governed alias move p50 / p99",
            f"{_pct(gov_lat['move'], 0.5) * 1000:.0f} / {_pct(gov_lat['move'], 0.99) * 1000:.0f} ms",
        ),
        (
            "governed check p50 / p99",
            f"{_pct(gov_lat['check'], 0.5) * 1000:.0f} / {_pct(gov_lat['check'], 0.99) * 1000:.0f} ms",
        ),
        (
            "overhead: governed move p50 / plain set p50",
            f"{_pct(gov_lat['move'], 0.5) / _pct(plain_lat['move'], 0.5):.1f}x",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, figure in rows:
        print(f"{name.ljust(width)}  {figure}")


if __name__ == "__main__":
    main()
