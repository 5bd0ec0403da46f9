"""The main job on the embedded defaults, in a fresh throwaway workspace (``demo-workspace/``, git-ignored).

pipeline (dvc repro) -> governed registration -> drift check -> policy-gated promotion (one refusal, one signed
approval) -> audit checkpoint + verify -> HTML report + evidence bundle verified offline. Run by ``make demo``; safe to run again (the workspace is rebuilt).
No tracked file of this repository is modified; the demo signing key lives in the workspace's ignored .demo-keys/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "breast-cancer-classifier"
APPROVER = "alice@example.com"
TEMPLATE_FILES = ("dvc.yaml", "params.yaml")
# The scanner recalibration the demo simulates moves every mean_* and worst_* measurement.
FEATURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
)
TEMPLATE_DIRS = ("pipelines", "governance")


# Extra variables for every step (the loop sets the webhook secret here; never written to a file).
EXTRA_ENV: dict[str, str] = {}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
    env.update(
        DVC_NO_ANALYTICS="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME=env.get("GIT_AUTHOR_NAME", "Dana Scientist"),
        GIT_AUTHOR_EMAIL=env.get("GIT_AUTHOR_EMAIL", "dana@example.com"),
        GIT_COMMITTER_NAME=env.get("GIT_COMMITTER_NAME", "Dana Scientist"),
        GIT_COMMITTER_EMAIL=env.get("GIT_COMMITTER_EMAIL", "dana@example.com"),
        MLOPS_ACTOR="dana@example.com",
        COLUMNS=env.get("COLUMNS", "150"),
    )
    env.update(EXTRA_ENV)
    return env


def run(cmd: Sequence[str], cwd: Path, *, expect: Sequence[int] = (0,), quiet: bool = False) -> int:
    """Run one step, show it like a terminal session, stop the demo on an unexpected exit code."""
    shown = " ".join(cmd)
    print(f"\n\033[1;36m$ {shown}\033[0m", flush=True)
    proc = subprocess.run(list(cmd), cwd=cwd, env=_env(), capture_output=quiet, text=True, check=False)
    if proc.returncode not in expect:
        if quiet:
            print(proc.stdout, proc.stderr, sep="\n")
        raise SystemExit(f"demo step failed (exit {proc.returncode}, expected {list(expect)}): {shown}")
    return proc.returncode


def git(cwd: Path, *args: str) -> None:
    run(["git", *args], cwd, quiet=True)


def prepare_workspace(dest: Path, *, source: Path = REPO) -> Path:
    """A fresh git repository holding this repo's example pipeline and governance files, ready for `dvc repro`."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in TEMPLATE_FILES:
        shutil.copy2(source / name, dest / name)
    for name in TEMPLATE_DIRS:
        shutil.copytree(source / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "demo.py"))
    (dest / ".gitignore").write_text(".demo-keys/\n.dvc-remote/\nreports/\nbatches/\n.receiver/\nevidence/\n")
    git(dest, "init", "-q", "-b", "main")
    run([str(BIN / "mlops"), "init"], dest, quiet=True)
    run([sys.executable, "pipelines/ingest.py"], dest, quiet=True)
    run([str(BIN / "dvc"), "add", "-q", "data/raw"], dest, quiet=True)
    run([str(BIN / "dvc"), "remote", "add", "-q", "-d", "local", str(dest / ".dvc-remote")], dest, quiet=True)
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "example project: pipeline, governance, data v1")
    return dest


def make_batches(ws: Path) -> None:
    """Two production batches: one like the training data, one whose mean_*/worst_* features moved by 1.5 sigma."""
    run(
        [sys.executable, "pipelines/ingest.py", "--out", "batches/today.csv", "--shift", "0.02", "--rows", "400"],
        ws,
        quiet=True,
    )
    cols = ",".join(f"{kind}_{feature}" for kind in ("mean", "worst") for feature in FEATURES)
    shifted = ["--out", "batches/shifted.csv", "--shift", "1.5", "--rows", "400", "--columns", cols]
    run([sys.executable, "pipelines/ingest.py", *shifted], ws, quiet=True)


def make_demo_keys(ws: Path) -> None:
    """Throwaway keys: the private halves stay in the ignored ``.demo-keys/``; the public lines are committed to
    ``governance/allowed_signers`` (only committed signers count), and the audit bot's key signs a checkpoint after
    every command that appends to the trail (``audit.checkpoint_key``)."""
    keys = ws / ".demo-keys"
    keys.mkdir()
    lines = []
    for who, namespace in (
        ("alice", "mlops-approval"),
        ("audit-bot", "mlops-audit-checkpoint,mlops-evidence-bundle"),
    ):
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{who}@example.com", "-f", str(keys / who)],
            ws,
            quiet=True,
        )
        pub = (keys / f"{who}.pub").read_text().split()
        lines.append(f'{who}@example.com namespaces="{namespace}" {pub[0]} {pub[1]}')
    signers = ws / "governance" / "allowed_signers"
    signers.write_text(signers.read_text() + "\n".join(lines) + "\n")
    with (ws / "mlops.yaml").open("a") as fh:
        fh.write("audit:\n  checkpoint_key: .demo-keys/audit-bot   # private key: ignored, generated by make demo\n")
    git(ws, "add", "mlops.yaml", "governance/allowed_signers")
    git(ws, "commit", "-q", "-m", "demo: trust the demo approver and audit bot (public keys only)")


def commit_all(ws: Path, message: str) -> None:
    """Commit what a pipeline run changed (dvc.lock), as a data scientist would before asking for promotion."""
    git(ws, "add", "-A")
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=ws, check=False).returncode:
        git(ws, "commit", "-q", "-m", message)


def enable_git_tags(ws: Path) -> None:
    """Registrations and alias moves also become GTO's annotated git tags (`gto show` reads them)."""
    with (ws / "mlops.yaml").open("a") as fh:
        fh.write("git_tags: true   # GTO tags: NAME@vN.0.0 per version, NAME#ALIAS#N per alias move\n")
    git(ws, "add", "mlops.yaml")
    git(ws, "commit", "-q", "-m", "registry in git: GTO tags on")


def weaker_params(ws: Path) -> None:
    """A second training run a data scientist might try: far fewer, shallower trees."""
    text = (ws / "params.yaml").read_text()
    text = text.replace("n_estimators: 60", "n_estimators: 3").replace("max_depth: 6", "max_depth: 1")
    (ws / "params.yaml").write_text(text)
    git(ws, "commit", "-q", "-am", "try a much smaller forest")


def main() -> None:
    started = time.monotonic()
    ws = prepare_workspace(REPO / "demo-workspace")
    make_demo_keys(ws)
    enable_git_tags(ws)
    make_batches(ws)
    mlops, dvc = str(BIN / "mlops"), str(BIN / "dvc")
    print(f"\033[1mWorkspace ready: {ws}\033[0m (git + DVC project with mlops.yaml and governance/)")

    banner("1. Pipeline: dvc repro (prepare -> train -> evaluate -> register), data pushed to the DVC remote")
    run([dvc, "repro"], ws)
    run([dvc, "push", "-q"], ws)
    commit_all(ws, "pipeline run: model v1")
    run([mlops, "lineage", MODEL, "1"], ws)

    banner("2. Drift: a shifted batch breaches the gate (exit 1)")
    run(
        [
            mlops,
            "drift",
            f"{MODEL}/1",
            "--current",
            "batches/shifted.csv",
            "--exclude",
            "target",
            "--report",
            "reports/drift-shifted.html",
        ],
        ws,
        expect=(1,),
    )

    banner("3. Promotion: staging is automatic; champion needs drift evidence on production data and a signature")
    run([mlops, "promote", MODEL, "1", "--to", "staging"], ws)
    # only a batch `mlops monitor` saw in production is drift evidence: a check on any other file satisfies nothing
    run([mlops, "monitor", f"{MODEL}@staging", "--batch", "batches/today.csv", "--labels", "target"], ws)
    run([mlops, "drift", f"{MODEL}/1", "--current", "batches/today.csv", "--exclude", "target"], ws)
    run([mlops, "promote", MODEL, "1", "--to", "champion"], ws, expect=(1,))
    run(
        [
            mlops,
            "approve",
            MODEL,
            "1",
            "--to",
            "champion",
            "--key",
            ".demo-keys/alice",
            "--comment",
            "validated on Q3 holdout",
        ],
        ws,
    )
    run([mlops, "promote", MODEL, "1", "--to", "champion"], ws)

    banner("4. A weaker model is trained, registered, and refused with its reasons")
    weaker_params(ws)
    run([dvc, "repro"], ws)
    commit_all(ws, "pipeline run: model v2")
    run([mlops, "promote", MODEL, "2", "--to", "champion"], ws, expect=(1,))

    banner(
        "5. Audit: history, every command's automatic checkpoint, a committed anchor, offline verification; "
        "GTO reads the same registry from git tags"
    )
    run([mlops, "history", MODEL, "--alias", "champion"], ws)
    run([mlops, "audit", "checkpoint", "--key", ".demo-keys/audit-bot", "--append-file"], ws)
    git(ws, "add", "governance/audit-checkpoints.jsonl")
    git(ws, "commit", "-q", "-m", "audit: anchor the trail in git")
    run([mlops, "audit", "verify"], ws)
    run([mlops, "status", MODEL], ws)
    run([str(BIN / "gto"), "show"], ws)  # the same aliases, read from git tags by GTO
    run([mlops, "audit", "reconcile"], ws)  # registry, trail and tags agree

    banner("6. Reports and evidence: HTML pages for people; a signed bundle an auditor verifies offline")
    run([mlops, "report", "--out", "reports"], ws)
    bundle = ws / "evidence" / f"{MODEL}-v1.zip"
    run([mlops, "audit", "export", MODEL, "1", "--bundle", str(bundle), "--key", ".demo-keys/audit-bot"], ws)
    # the auditor's desk: an empty folder outside the project, nothing but the bundle and their trust anchor
    trusted = _fingerprint(ws / ".demo-keys" / "audit-bot.pub")
    with tempfile.TemporaryDirectory(prefix="auditor-desk-") as desk:
        shutil.copy2(bundle, Path(desk) / bundle.name)
        run([mlops, "audit", "verify", "--bundle", bundle.name, "--trust", trusted], Path(desk))
    run(["git", "status", "--short"], ws)  # nothing left uncommitted apart from ignored files

    print(f"\n\033[1;32mDemo finished in {time.monotonic() - started:.0f} s.\033[0m")
    print(f"Model report: {ws / 'reports' / f'{MODEL}.html'}")
    print(f"Inventory of every model: {ws / 'reports' / 'index.html'}")
    print(f"Evidence bundle: {bundle} (verify offline: mlops audit verify --bundle FILE --trust {trusted})")
    print(f"Drift report for people: {ws / 'reports' / 'drift-shifted.html'}")
    print(
        f"Browse runs, versions and their governance tags:\n  cd {ws} && {BIN / 'mlflow'} ui "
        "--backend-store-uri sqlite:///mlflow.db\n  then open http://127.0.0.1:5000"
    )


def _fingerprint(pub: Path) -> str:
    """The SHA256 fingerprint of a public key file, as ssh-keygen -l shows it (the auditor's --trust anchor)."""
    from mlops_layer import signing

    return signing.fingerprint(pub.read_text())


def banner(text: str) -> None:
    print(f"\n\033[1;35m== {text}\033[0m", flush=True)


if __name__ == "__main__":
    main()
