"""`mlops check` on a model with 200 versions: answered in one metrics query, not per-version round trips.

Builds a throwaway project (MLflow sqlite store, SQLite audit trail, a signed approval, an alias history and a drift
verdict in the trail), then times:
  1. `api.check` in-process (warm) on the model with 200 versions, and on one with 10 versions (the baseline: the
     time must not grow with the number of versions);
  2. the same answer computed the naive way — one `get_run` per version — for contrast;
  3. `mlops check ... --json` as a fresh process, with the bare cost of importing the MLflow client beside it.
Limit (issue 4): under 2 s on the embedded store.

Run: .venv/bin/python benchmarks/bench_governance.py
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

LIMIT_S = 2.0
N_VERSIONS = 200
POLICY = textwrap.dedent(
    """\
    roles:
      alice@example.com: [model-risk]
    targets:
      staging:
        rules: []
      champion:
        rules:
          - {type: metric_threshold, metric: accuracy, min: 0.5}
          - {type: metric_threshold, metric: roc_auc, min: 0.5}
          - {type: no_regression, metric: accuracy, direction: higher, min_delta: -0.5}
          - {type: lineage_clean, require_data_in_remote: false, require_lock_up_to_date: false}
          - {type: promotion_order, must_have_held: staging}
          - {type: card_fields, required: [business_owner, approver_roles]}
          - {type: drift_passed, max_age_days: 7}
          - {type: approvals, count: 1, roles: [model-risk]}
    """
)
CARD = textwrap.dedent(
    """\
    business_owner: bob@example.com
    intended_use: benchmark
    intended_users: [nobody]
    prediction_consumption: none
    sla: {availability_percent: 99}
    retraining: {method: manual, cadence: never}
    approver_roles: [model-risk]
    sensitivity: internal
    code_shareable: true
    """
)


def build(root: Path, name: str, n: int, key: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from mlops_layer import api
    from mlops_layer.audit import actions
    from mlops_layer.audit.store import AuditStore

    cfg = api.settings(root)
    (cfg.cards_dir / f"{name}.yaml").write_text(CARD)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", f"card of {name}")  # the gate reads governance from the commit
    client = MlflowClient(cfg.tracking_uri, cfg.registry_uri)
    exp = client.get_experiment_by_name("bench") or client.get_experiment(client.create_experiment("bench"))
    client.create_registered_model(name)
    with AuditStore.open(cfg.audit_url) as store:
        for i in range(1, n + 1):
            run = client.create_run(exp.experiment_id)
            ts = int(time.time() * 1000)
            metrics = [Metric(k, 0.8 + i / (10 * n), ts, 0) for k in ("accuracy", "roc_auc", "f1", "precision")]
            client.log_batch(run.info.run_id, metrics=metrics)
            model_file = f"flavors: {{}}\nversion: {i}\n"
            client.log_text(run.info.run_id, model_file, "model/MLmodel")  # the bytes promotion re-checks
            files = {"MLmodel": "sha256:" + hashlib.sha256(model_file.encode()).hexdigest()}
            client.set_terminated(run.info.run_id)
            tags = {"mlops.git.commit": "c" * 40, "mlops.git.dirty": "false", "mlops.registered_by": "carol@x.org"}
            mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags)
            subject = {"model": name, "version": str(mv.version)}
            # frozen at registration: the metric rules read this snapshot, never the run's live metrics
            frozen = {m.key: m.value for m in metrics}
            store.append(
                actions.MODEL_REGISTERED,
                actor="carol@x.org",
                subject=subject,
                details={"metrics": frozen, "artifacts": files},
            )
            # drift evidence counts only on a batch `mlops monitor` recorded for the model (matched by content hash)
            batch = f"{i:064x}"
            store.append(actions.MONITOR_BATCH, actor="bench", subject=subject, details={"batch_sha256": batch})
            store.append(
                actions.DRIFT_CHECKED,
                actor="bench",
                subject=subject,
                decision="passed",
                details={"passed": True, "current": f"batch.csv sha256:{batch}", "n_current": 500},
            )
    # history: the previous version is champion, the candidate went through staging first
    for version, alias in ((n - 1, "staging"), (n - 1, "champion"), (n, "staging")):
        result = api.promote(name, str(version), alias, settings=cfg) if alias == "staging" else None
        if alias == "champion":
            api.approve(name, str(version), "champion", key_path=key, settings=cfg)
            result = api.promote(name, str(version), "champion", settings=cfg)
        assert result is not None and result.moved, result
    api.approve(name, str(n), "champion", key_path=key, settings=cfg)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@x.org", *args], cwd=root, check=True)


def timed(fn: object, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    from mlops_layer import api, signing

    with tempfile.TemporaryDirectory(prefix="bench-governance-") as tmp:
        root = Path(tmp)
        (root / "governance" / "models").mkdir(parents=True)
        (root / "governance" / "policy.yaml").write_text(POLICY)
        pub = signing.generate_key(root / "alice", "alice")
        (root / "governance" / "allowed_signers").write_text(
            signing.allowed_signers_line("alice@example.com", pub) + "\n"
        )
        (root / "mlops.yaml").write_text("tracking_uri: sqlite:///mlflow.db\naudit_url: sqlite:///.mlops/audit.db\n")
        (root / ".gitignore").write_text("mlflow.db\nmlruns/\nmlartifacts/\n.mlops/\nalice\nalice.pub\n")
        _git(root, "init", "-q")
        _git(root, "add", "-A")
        _git(root, "commit", "-qm", "governance")
        cfg = api.settings(root)
        t0 = time.perf_counter()
        build(root, "big", N_VERSIONS, root / "alice")
        build(root, "small", 10, root / "alice")
        print(f"setup: 2 models, {N_VERSIONS + 10} versions in {time.perf_counter() - t0:.1f} s")

        decision = api.check("big", str(N_VERSIONS), "champion", settings=cfg)
        assert decision.allowed, [(r.name, r.message) for r in decision.rules if not r.passed]
        big = timed(lambda: api.check("big", str(N_VERSIONS), "champion", settings=cfg))
        small = timed(lambda: api.check("small", "10", "champion", settings=cfg))

        from mlops_layer.adapters.mlflow import MlflowRegistry

        registry = MlflowRegistry(cfg.tracking_uri)

        def naive() -> None:  # what one round trip per version costs
            for v in registry.versions("big"):
                if v.run_id:
                    registry.get_run(v.run_id)

        per_version = timed(naive, repeat=1)

        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        cmd = [sys.executable, "-m", "mlops_layer.cli.main", "check", "big", str(N_VERSIONS), "--to", "champion"]
        cli_samples, import_samples = [], []
        for _ in range(3):
            start = time.perf_counter()
            proc = subprocess.run([*cmd, "--json"], cwd=root, capture_output=True, text=True, env=env, check=False)
            cli_samples.append(time.perf_counter() - start)
            assert proc.returncode == 0, proc.stderr
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from mlflow import MlflowClient"], check=True, env=env)
            import_samples.append(time.perf_counter() - start)
        cli, imports = statistics.median(cli_samples), statistics.median(import_samples)

    print(
        f"api.check, {N_VERSIONS} versions (warm, median of 5): {big:.3f} s   limit {LIMIT_S:.1f} s -> {big / LIMIT_S:.0%} of it"
    )
    print(
        f"api.check, 10 versions (baseline):                    {small:.3f} s   ratio 200/10 versions: {big / small:.2f}x"
    )
    print(
        f"naive: one get_run per version ({N_VERSIONS} round trips): {per_version:.3f} s   = {per_version / big:.1f}x the check"
    )
    print(
        f"`mlops check --json` as a fresh process (median of 3): {cli:.3f} s, of which importing MLflow's client alone "
        f"takes {imports:.3f} s -> {cli - imports:.3f} s of work"
    )
    ok = big < LIMIT_S
    print("PASS" if ok else "FAIL", f"(check on {N_VERSIONS} versions {'<' if ok else '>='} {LIMIT_S} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
