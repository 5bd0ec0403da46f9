"""The main job on the embedded defaults, in a fresh throwaway workspace (``demo-workspace/``, git-ignored).

pipeline (dvc repro) -> governed registration -> drift check -> policy-gated promotion (one refusal, one signed
approval) -> audit checkpoint + verify. Run by ``make demo``; safe to run again (the workspace is rebuilt).
No tracked file of this repository is modified; the demo signing key lives in the workspace's ignored .demo-keys/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "breast-cancer-classifier"
APPROVER = "alice@example.com"
TEMPLATE_FILES = ("dvc.yaml", "params.yaml")
TEMPLATE_DIRS = ("pipelines", "governance")


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLOPS_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))
    }
    env.update(
        DVC_NO_ANALYTICS="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME=env.get("GIT_AUTHOR_NAME", "Dana Scientist"),
        GIT_AUTHOR_EMAIL=env.get("GIT_AUTHOR_EMAIL", "dana@example.com"),
        GIT_COMMITTER_NAME=env.get("GIT_COMMITTER_NAME", "Dana Scientist"),
        GIT_COMMITTER_EMAIL=env.get("GIT_COMMITTER_EMAIL", "dana@example.com"),
        MLOPS_ACTOR="dana@example.com",
    )
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
    (dest / ".gitignore").write_text(".demo-keys/\n.dvc-remote/\nreports/\nbatches/\n")
    git(dest, "init", "-q", "-b", "main")
    run([str(BIN / "mlops"), "init"], dest, quiet=True)
    run([sys.executable, "pipelines/ingest.py"], dest, quiet=True)
    run([str(BIN / "dvc"), "add", "-q", "data/raw"], dest, quiet=True)
    run([str(BIN / "dvc"), "remote", "add", "-q", "-d", "local", str(dest / ".dvc-remote")], dest, quiet=True)
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "example project: pipeline, governance, data v1")
    return dest


def main() -> None:
    started = time.monotonic()
    ws = prepare_workspace(REPO / "demo-workspace")
    mlops = str(BIN / "mlops")
    print(f"\033[1mWorkspace ready: {ws}\033[0m (a git repo with DVC, mlops.yaml and governance/)")

    run([str(BIN / "dvc"), "repro"], ws)
    run([str(BIN / "dvc"), "push", "-q"], ws)
    run([mlops, "lineage", MODEL, "1"], ws)
    run([mlops, "status", MODEL], ws)
    run([mlops, "audit", "verify"], ws)
    print(f"\n\033[1;32mDemo finished in {time.monotonic() - started:.0f} s.\033[0m")
    print(
        f"Browse runs, versions and their governance tags:\n  cd {ws} && {BIN / 'mlflow'} ui "
        f"--backend-store-uri sqlite:///mlflow.db\n  then open http://127.0.0.1:5000"
    )


if __name__ == "__main__":
    main()
