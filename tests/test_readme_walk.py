"""The README's "Using it in your project", run as written in a fresh git repository, on real git, DVC, MLflow and GTO.

Blocks starting with ``# file:`` are written, ``# append:`` appended, ``bash`` blocks run (``# (example)`` ones are
only shown). The walk ends with a clean ``git status``, the alert lifecycle in the trail, and GTO showing the same
aliases as ``mlops status``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

from mlops_layer import api
from mlops_layer.audit import actions
from mlops_layer.audit.store import AuditStore
from mlops_layer.monitoring.state import load_state

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent


def walk_blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using it in your project", 1)[1].split("\n## ", 1)[0]
    return [(m[1], m[2]) for m in re.finditer(r"```(\w+)\n(.*?)```", section, re.S)]


def seed_project(root: Path) -> None:
    """An existing project: a git repository, labelled CSVs in data/raw (not in git), new batches beside it."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    features = [c for c in frame.columns if c != "target"]
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "ann@example.com")
    git(root, "config", "user.name", "Ann")
    (root / "README.md").write_text("my project\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "start")
    (root / "data" / "raw").mkdir(parents=True)
    frame.iloc[:400].to_csv(root / "data" / "raw" / "part-1.csv", index=False)
    incoming = root.parent / "incoming"
    incoming.mkdir()
    shifted = frame.iloc[400:].copy()
    shifted[features] = shifted[features] + 1.5 * frame[features].std()  # a recalibrated sensor
    shifted.drop(columns=["target"]).to_csv(incoming / "batch-0601.csv", index=False)
    shifted.to_csv(incoming / "labelled-0601.csv", index=False)


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
    out.update(
        PATH=f"{BIN}{os.pathsep}{out.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        GIT_AUTHOR_NAME="Ann",
        GIT_AUTHOR_EMAIL="ann@example.com",
        GIT_COMMITTER_NAME="Ann",
        GIT_COMMITTER_EMAIL="ann@example.com",
        COLUMNS="200",
    )
    return out


def test_the_readme_walk_ends_clean_with_gto_agreeing(tmp_path: Path) -> None:
    root = tmp_path / "your-ml-repo"
    seed_project(root)
    ran = 0
    for lang, body in walk_blocks():
        first = body.splitlines()[0] if body.strip() else ""
        if first.startswith("# file: ") or first.startswith("# append: "):
            path = root / first.split(": ", 1)[1].strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            content = body.split("\n", 1)[1]
            if first.startswith("# append: "):
                with path.open("a", encoding="utf-8") as fh:
                    fh.write("\n" + content)
            else:
                path.write_text(content, encoding="utf-8")
        elif lang == "bash" and not first.startswith("# (example)"):
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                cwd=root,
                env=env(),
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            assert proc.returncode == 0, (
                f"README block failed:\n{body}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
            ran += 1
            last_out = proc.stdout
    assert ran == 3  # scaffold; train, register, promote; monitor, ack, retrain

    # the walk ended clean: retraining committed the data pointer, then what the pipeline wrote
    assert git(root, "status", "--porcelain") == ""
    subjects = git(root, "log", "--format=%s", "-3").splitlines()
    assert subjects[0].startswith("retrain: my-model v2 (dvc.lock, metrics and outputs")
    assert subjects[1].startswith("retrain: new data version of data/raw")

    cfg = api.settings(root)
    assert cfg.git_tags
    status = api.status("my-model", settings=cfg).models[0]
    assert status.aliases == {"staging": "2"}
    # `gto show` printed the same aliases; ask it again for JSON
    shown = json.loads(
        subprocess.run(
            [str(BIN / "gto"), "show", "--json"], cwd=root, env=env(), check=True, capture_output=True, text=True
        ).stdout
    )
    assert shown["my-model"]["stage"] == {alias: f"v{v}.0.0" for alias, v in status.aliases.items()}
    assert "my-model" in last_out and "staging" in last_out

    # the alert: fired on v1@staging, acknowledged, then closed as superseded when the challenger took @staging
    assert load_state(cfg.state_dir, "my-model").open_alerts() == []
    store = AuditStore.open(cfg.audit_url)
    try:
        trail = [(e.action, e.decision, e.subject.get("version")) for e in store.entries(model="my-model")]
    finally:
        store.close()
    alert_events = [t for t in trail if t[0].startswith("alert.")]
    assert alert_events == [
        (actions.ALERT_FIRED, "fired", "1"),
        (actions.ALERT_ACKNOWLEDGED, "acknowledged", "1"),
        (actions.ALERT_RESOLVED, "superseded", "1"),
    ]
    assert api.reconcile_audit(settings=cfg).ok

    # a GTO tag moved behind the layer's back is reported by reconcile
    git(root, "tag", "-f", "-a", "my-model@v1.0.0", "-m", "moved by hand", "HEAD")
    report = api.reconcile_audit(settings=cfg)
    assert not report.ok
    assert [f.kind for f in report.findings] == ["git_tag.version_tag_moved"]
    assert "moved behind the layer's back" in report.findings[0].message
