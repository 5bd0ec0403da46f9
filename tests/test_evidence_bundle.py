"""Evidence bundles: export one version's evidence, verify it offline in an empty folder with the auditor's anchor
only, and fail, naming the member, on any altered byte. Also the period archive (`audit export --since/--until`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_fixtures import MODEL, Project, build_project
from typer.testing import CliRunner

from mlops_layer import api, signing
from mlops_layer.audit import actions
from mlops_layer.audit import bundle as bundle_mod
from mlops_layer.audit.store import AuditStore
from mlops_layer.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith(("MLOPS_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")):
                mp.delenv(var, raising=False)
        yield build_project(tmp_path_factory.mktemp("bundle"), batches=8)


@pytest.fixture(scope="module")
def bundle(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "churn-v1.zip"
    made = api.export_bundle(MODEL, "1", out, key=project.custodian_key, settings=project.cfg)
    assert made.from_seq == 1 and made.other_subjects == ("fraud",)
    return out


def verify_cli(bundle: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`mlops audit verify --bundle` in a separate process, in ``cwd``, with no project settings around."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "mlops_layer.cli.main", "audit", "verify", "--bundle", str(bundle), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bundle_contents_and_manifest(bundle: Path, project: Project) -> None:
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        segment = zf.read("chain/segment.jsonl").decode().splitlines()
        statement = json.loads(zf.read("in-toto/statement.json"))
    assert {"manifest.sig", "chain/checkpoint.json", "lineage.json", "decisions.json", "approvals.json"} <= names
    assert {"evidence/drift.json", "evidence/evaluation.json", "in-toto/statement.json"} <= names
    kinds = {n.split("/")[1].split("-")[0] for n in names if n.startswith("governance/")}
    assert kinds == {"policy", "card", "allowed_signers"}
    seg = manifest["segment"]
    assert seg["other_subjects"] == ["fraud"] and "cannot be verified without them" in seg["note"]
    assert len(segment) == seg["entries"] == manifest["checkpoint"]["size"]
    for decision in manifest["decisions"]:  # policy and signers as of each decision, read from git
        assert decision["policy"]["source"].startswith("git blob ")
        assert decision["allowed_signers"]["source"].startswith("git ")
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {s["name"] for s in statement["subject"]} == {"model:churn/v1/model.pkl", "data:data/train.csv"}


def test_verifies_offline_in_an_empty_folder_with_a_trusted_fingerprint(
    bundle: Path, project: Project, tmp_path: Path
) -> None:
    empty = tmp_path / "auditor"
    empty.mkdir()
    copy = empty / "evidence.zip"
    copy.write_bytes(bundle.read_bytes())
    proc = verify_cli(copy, "--trust", project.custodian_fingerprint, cwd=empty)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verifies" in proc.stdout and "keys relied on" in proc.stdout
    alice = signing.fingerprint(signing.public_key(project.alice_key))
    flat = " ".join(proc.stdout.split())
    assert project.custodian_fingerprint in flat and alice in flat
    assert sorted(p.name for p in empty.iterdir()) == ["evidence.zip"]  # nothing written beside it


def test_verify_with_the_auditors_own_allowed_signers(bundle: Path, project: Project, tmp_path: Path) -> None:
    pub = signing.public_key(project.custodian_key)
    mine = tmp_path / "my_signers"
    mine.write_text(
        signing.allowed_signers_line("custodian@corp", pub, ["mlops-audit-checkpoint", "mlops-evidence-bundle"]) + "\n"
    )
    proc = verify_cli(bundle, "--allowed-signers", str(mine), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    body = json.loads(proc.stdout)
    assert body["ok"] and {k["principal"] for k in body["keys_relied_on"][:2]} == {"custodian@corp"}


def test_no_anchor_is_bad_input_and_an_untrusted_key_fails(bundle: Path, project: Project, tmp_path: Path) -> None:
    proc = verify_cli(bundle, cwd=tmp_path)
    assert proc.returncode == 2 and "trust anchor" in proc.stderr
    mallory = signing.fingerprint(signing.public_key(project.mallory_key))
    proc = verify_cli(bundle, "--trust", mallory, cwd=tmp_path)
    assert proc.returncode == 1 and "not one you trust" in " ".join(proc.stdout.split())
    proc = verify_cli(tmp_path / "absent.zip", "--trust", mallory, cwd=tmp_path)
    assert proc.returncode == 2
    (tmp_path / "not.zip").write_text("hello")
    assert verify_cli(tmp_path / "not.zip", "--trust", mallory, cwd=tmp_path).returncode == 2


def test_a_bundle_resigned_by_an_attacker_with_its_own_signers_file_proves_nothing(
    bundle: Path, project: Project, tmp_path: Path
) -> None:
    """Mallory rewrites an approval's comment, puts her key in the bundle's signers file and re-signs the manifest."""
    with zipfile.ZipFile(bundle) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    signers_member = manifest["decisions"][0]["allowed_signers"]["member"]
    members[signers_member] += (
        signing.allowed_signers_line("mallory@example.com", signing.public_key(project.mallory_key)) + "\n"
    ).encode()
    manifest["members"] = {
        n: __import__("hashlib").sha256(d).hexdigest()
        for n, d in members.items()
        if n not in bundle_mod.MANIFEST and n != bundle_mod.SIGNATURE
    }
    members["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    members["manifest.sig"] = signing.sign(members["manifest.json"], project.mallory_key, bundle_mod.NAMESPACE).encode()
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    proc = verify_cli(forged, "--trust", project.custodian_fingerprint, cwd=tmp_path)
    assert proc.returncode == 1 and "manifest.json" in proc.stdout


def _rezip(src: Path, dst: Path, member: str) -> None:
    """Copy the bundle with one byte of ``member`` flipped (a valid zip: the CRC matches the altered bytes)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = bytearray(zin.read(info))
            if info.filename == member:
                data[len(data) // 2] ^= 0x01
            zout.writestr(info, bytes(data))


def test_a_flipped_byte_in_any_member_fails_naming_that_member(bundle: Path, project: Project, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
    assert len(names) >= 13
    trust = (project.custodian_fingerprint,)
    assert api.verify_bundle(bundle, trust=trust).ok
    for member in names:
        altered = tmp_path / f"{member.replace('/', '_')}.zip"
        _rezip(bundle, altered, member)
        report = api.verify_bundle(altered, trust=trust)
        assert not report.ok, member
        assert any(member in f.member for f in report.failures), (member, report.failures)


def test_a_flipped_byte_in_the_raw_zip_data_names_the_member(bundle: Path, project: Project, tmp_path: Path) -> None:
    """Flip bits inside each member's stored bytes in the zip file: the member is named, never a crash."""
    trust = (project.custodian_fingerprint,)
    with zipfile.ZipFile(bundle) as zf:
        infos = zf.infolist()
    original = bundle.read_bytes()
    for info in infos:
        assert info.compress_type == zipfile.ZIP_STORED  # file bytes are content bytes
        # the member's data starts after its local header (30 bytes + name + extra)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for offset, bit in ((0, 0x01), (info.compress_size // 2, 0x40), (info.compress_size - 1, 0x80)):
            raw = bytearray(original)
            raw[start + offset] ^= bit
            altered = tmp_path / "raw.zip"
            altered.write_bytes(bytes(raw))
            report = api.verify_bundle(altered, trust=trust)
            assert not report.ok and any(info.filename in f.member for f in report.failures), (info.filename, offset)
    proc = verify_cli(altered, "--trust", project.custodian_fingerprint, cwd=tmp_path)
    assert proc.returncode == 1 and infos[-1].filename in proc.stdout, proc.stdout + proc.stderr


def test_verify_bundle_imports_no_heavy_library(bundle: Path, project: Project, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mlops_layer.cli.main import app\n"
        f"res = CliRunner().invoke(app, ['audit', 'verify', '--bundle', {str(bundle)!r}, '--trust', "
        f"{project.custodian_fingerprint!r}])\n"
        "assert res.exit_code == 0, res.output\n"
        "print('HEAVY=' + ','.join(m for m in ('mlflow', 'pandas', 'evidently', 'git', 'sqlalchemy') "
        "if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def test_cli_export_bundle_and_refusals(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root)
    out = tmp_path / "v2.zip"
    result = runner.invoke(
        app, ["audit", "export", MODEL, "2", "--bundle", str(out), "--key", str(project.custodian_key), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["entries_about_version"] == 2  # registered, refused
    assert api.verify_bundle(out, trust=(project.custodian_fingerprint,)).ok
    result = runner.invoke(app, ["audit", "export", MODEL, "--bundle", str(out)])
    assert result.exit_code == 2 and "NAME and VERSION" in result.output
    result = runner.invoke(
        app, ["audit", "export", MODEL, "7", "--bundle", str(tmp_path / "x.zip"), "--key", str(project.custodian_key)]
    )
    assert result.exit_code == 2 and "no entries about churn v7" in result.output
    with AuditStore.open(project.cfg.audit_url) as store:  # a version whose entries no checkpoint covers yet
        store.append(actions.MODEL_REGISTERED, actor="carol@example.com", subject={"model": MODEL, "version": "9"})
    result = runner.invoke(
        app, ["audit", "export", MODEL, "9", "--bundle", str(tmp_path / "y.zip"), "--key", str(project.custodian_key)]
    )
    assert result.exit_code == 2 and "no valid signed checkpoint covers" in result.output
    assert not (tmp_path / "y.zip").exists()


def test_export_a_period_as_an_archive(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root)
    entries = api.audit_log(settings=project.cfg)
    since, until = entries[3].timestamp, entries[10].timestamp
    expected = [e.seq for e in entries if since <= e.timestamp < until]
    out = tmp_path / "period.jsonl"
    result = runner.invoke(
        app, ["audit", "export", "--since", since.isoformat(), "--until", until.isoformat(), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines] == expected and expected
    # exact records: each links to the one before, so consecutive archives chain
    assert all(b["prev_hash"] == a["entry_hash"] for a, b in zip(lines, lines[1:], strict=False))


def test_an_approval_waiting_for_its_promotion_verifies_under_the_signers_of_its_own_time(
    project: Project, tmp_path: Path
) -> None:
    """v2 approved for @staging but never promoted there: no decision follows the approval, it still verifies."""
    api.approve(MODEL, "2", "staging", key_path=project.alice_key, comment="ok for staging", settings=project.cfg)
    api.checkpoint_audit(key=project.custodian_key, settings=project.cfg)
    out = tmp_path / "v2.zip"
    api.export_bundle(MODEL, "2", out, key=project.custodian_key, settings=project.cfg)
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    (approval,) = manifest["approvals"]
    assert approval["allowed_signers"]["source"].startswith("git ")
    report = api.verify_bundle(out, trust=(project.custodian_fingerprint,))
    assert report.ok, report.failures
    alice = signing.fingerprint(signing.public_key(project.alice_key))
    assert [k.principal for k in report.keys if k.fingerprint == alice] == ["alice@example.com"]
