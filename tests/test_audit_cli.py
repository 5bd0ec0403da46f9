"""`mlops audit ...` and `mlops history` through the real CLI app, on a real project folder."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import commit_governance
from typer.testing import CliRunner

from mlops_layer import api, signing
from mlops_layer.audit import actions
from mlops_layer.audit.store import ENTRIES
from mlops_layer.cli.main import app

runner = CliRunner()
DATA = b"id,label\n1,0\n2,1\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a trail of registrations and alias moves, a trusted checkpoint key, a data file."""
    root = tmp_path / "proj"
    (root / "governance").mkdir(parents=True)
    (root / "mlops.yaml").write_text("experiment: test\n")
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_bytes(DATA)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLOPS_ACTOR", "auditor@example.com")
    key = tmp_path / "keys" / "auditor"
    pub = signing.generate_key(key, "auditor")
    (root / "governance" / "allowed_signers").write_text(
        signing.allowed_signers_line("auditor@example.com", pub) + "\n"
    )
    md5 = hashlib.md5(DATA).hexdigest()
    with api.open_audit() as trail:
        for v in ("1", "2"):
            trail.append(
                actions.MODEL_REGISTERED,
                actor="ds@example.com",
                subject={"model": "churn", "version": v},
                dvc_hashes={"data/train.csv": md5},
                details={"artifacts": {"model.pkl": "sha256:" + hashlib.sha256(v.encode()).hexdigest()}},
            )
        trail.append(actions.ALIAS_SET, actor="ops", subject={"model": "churn", "alias": "champion", "version": "1"})
        trail.append(actions.ALIAS_SET, actor="ops", subject={"model": "churn", "alias": "champion", "version": "2"})
    commit_governance(root)
    return root


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_log_and_show(project: Path) -> None:
    code, out = run("audit", "log", "--json")
    assert code == 0
    assert [e["seq"] for e in json.loads(out)] == [1, 2, 3, 4]
    code, out = run("audit", "log", "--json", "--action", "alias.set", "--limit", "1")
    assert [e["seq"] for e in json.loads(out)] == [4]
    code, out = run("audit", "log", "--model", "nope", "--since", "1d")
    assert code == 0 and "No matching audit entries" in out
    code, out = run("audit", "log")
    assert code == 0 and "alias.set" in out
    code, out = run("audit", "show", "2", "--json")
    shown = json.loads(out)
    assert shown["subject"] == {"model": "churn", "version": "2"} and len(shown["entry_hash"]) == 64
    code, out = run("audit", "show", "99")
    assert code == 2 and "audit entry 99 does not exist" in out
    code, out = run("audit", "log", "--since", "last tuesday")
    assert code == 2 and "cannot read the time" in out


def test_verify_checkpoint_and_tamper(project: Path, tmp_path: Path) -> None:
    code, out = run("audit", "verify")
    assert code == 0 and "intact: 4 entries" in out and "no signed checkpoint" in out
    code, out = run("audit", "checkpoint", "--key", str(tmp_path / "keys" / "auditor"), "--append-file", "--json")
    assert code == 0, out
    cp = json.loads(out)
    assert cp["size"] == 5 and cp["signer"] == "auditor@example.com" and cp["entry_seq"] == 5
    lines = (project / "governance" / "audit-checkpoints.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["head"] == cp["head"]
    code, out = run("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["anchored"] == 5 and report["unanchored"] == 0

    con = sqlite3.connect(project / ".mlops" / "audit.db")
    con.execute(f"DROP TRIGGER {ENTRIES}_no_update")
    con.execute(f"UPDATE {ENTRIES} SET body = replace(body, 'ops', 'eve') WHERE seq = 3")
    con.commit()
    con.close()
    code, out = run("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert [(p["kind"], p["seq"]) for p in report["problems"]] == [("content_altered", 3)]
    code, out = run("audit", "verify")
    assert code == 1 and "FAILED" in out and "entry 3" in out


def test_checkpoint_needs_a_key(project: Path) -> None:
    code, out = run("audit", "checkpoint")
    assert code == 2 and "no signing key" in out


def test_export_jsonl_roundtrip_and_in_toto(project: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "trail.jsonl"
    code, out = run("audit", "export", "--format", "jsonl", "--out", str(out_file), "--json")
    assert code == 0 and json.loads(out)["count"] == 4
    code, out = run("audit", "verify", "--export", str(out_file), "--json")
    assert code == 0 and json.loads(out)["size"] == 4
    lines = out_file.read_text().splitlines()
    lines[1] = lines[1].replace("ds@example.com", "ds@evil.example")
    out_file.write_text("\n".join(lines) + "\n")
    code, out = run("audit", "verify", "--export", str(out_file))
    assert code == 1 and "entry 2" in out

    code, out = run("audit", "export", "--format", "in-toto")
    assert code == 0
    statement = json.loads(out)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    subjects = {s["name"]: s["digest"] for s in statement["subject"]}
    assert subjects["model:churn/v1/model.pkl"] == {"sha256": hashlib.sha256(b"1").hexdigest()}
    assert subjects["data:data/train.csv"] == {
        "md5": hashlib.md5(DATA).hexdigest(),
        "sha256": hashlib.sha256(DATA).hexdigest(),
    }
    assert [e["seq"] for e in statement["predicate"]["entries"]] == [1, 2, 3, 4]
    assert statement["predicate"]["trail"]["size"] == 4
    code, out = run("audit", "export", "--format", "xml")
    assert code == 2 and "unknown export format" in out


def test_history(project: Path) -> None:
    code, out = run("history", "churn", "--json")
    spans = json.loads(out)["spans"]
    assert code == 0 and [(s["alias"], s["version"], s["end"] is None) for s in spans] == [
        ("champion", "1", False),
        ("champion", "2", True),
    ]
    code, out = run("history", "churn", "--alias", "champion", "--at", "now", "--json")
    assert json.loads(out)["holder"] == "2"
    code, out = run("history", "churn", "--alias", "champion", "--at", "2000-01-01")
    assert code == 0 and "no version" in out
    code, out = run("history", "churn")
    assert code == 0 and "champion" in out
    code, out = run("history", "nope")
    assert code == 2 and "no entries for model 'nope'" in out


def test_reconcile_against_a_real_mlflow_registry(project: Path) -> None:
    """champion moved to v2 by the trail, but a bare MLflow call moves it to v1 and deletes nothing else."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{project}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    with mlflow.start_run() as run_:
        mlflow.log_text("x", "model/MLmodel")
    client.create_registered_model("churn")
    for _ in range(2):
        client.create_model_version("churn", f"runs:/{run_.info.run_id}/model", run_id=run_.info.run_id)
    client.set_registered_model_alias("churn", "champion", "2")
    code, out = run("audit", "reconcile", "--json")
    assert code == 0 and json.loads(out)["ok"], out

    client.set_registered_model_alias("churn", "champion", "1")  # behind the layer's back
    client.delete_model_version("churn", "2")
    code, out = run("audit", "reconcile", "--json", "--record-incident")
    report = json.loads(out)
    assert code == 1
    kinds = {(f["kind"], f["alias"], f["expected"], f["actual"]) for f in report["findings"]}
    assert kinds == {("alias_moved", "champion", "2", "1"), ("version_missing", None, "2", None)}
    assert len(report["incident_seqs"]) == 2
    code, out = run("audit", "reconcile")
    assert code == 1 and "alias_moved" in out


def test_verify_and_history_do_not_import_heavy_libraries(project: Path) -> None:
    """`mlops audit verify` and `mlops history` must stay light: no mlflow, pandas, evidently (nor dvc)."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mlops_layer.cli.main import app\n"
        "r = CliRunner()\n"
        "for args in (['audit', 'verify', '--json'], ['history', 'churn', '--json'], ['--help']):\n"
        "    res = r.invoke(app, args)\n"
        "    assert res.exit_code == 0, (args, res.output)\n"
        "heavy = sorted(m for m in ('mlflow', 'pandas', 'evidently', 'dvc', 'sklearn') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY=\n" in proc.stdout, proc.stdout
