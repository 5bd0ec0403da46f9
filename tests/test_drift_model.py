"""Model-mode drift checks against a real MLflow store and audit trail, and the Evidently report they write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops_layer import api
from mlops_layer.adapters.evidently_report import write_report
from mlops_layer.adapters.mlflow import MlflowRegistry, MlflowTracking
from mlops_layer.audit import actions
from mlops_layer.audit.store import AuditStore
from mlops_layer.cli.main import app
from mlops_layer.config import Settings
from mlops_layer.drift.config import DriftConfig
from mlops_layer.drift.gate import check
from mlops_layer.drift.io import file_digest
from mlops_layer.drift.profile import build_profile
from mlops_layer.errors import NotFoundError
from mlops_layer.governance.trail import AuditTrailView
from mlops_layer.lineage import PROFILE_ARTIFACT

runner = CliRunner()


def features(n: int, seed: int, shift: float = 0.0, colors: list[float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n) + shift,
            "b": rng.normal(5, 2, size=n) + 2 * shift,
            "c": rng.exponential(size=n),
            "d": rng.normal(size=n) - shift,
            "k": rng.integers(0, 30, size=n),
            "color": rng.choice(["red", "green", "blue"], size=n, p=colors or [0.5, 0.3, 0.2]),
        }
    )


CONFIG = "tracking_uri: sqlite:///mlflow.db\nexperiment: exp\nactor: tester\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once (MLflow's schema migrations take seconds): model 'm' with v1 (a reference profile, @champion)
    and v2 (logged before profiles existed), plus the batches."""
    root = tmp_path_factory.mktemp("drift-template")
    (root / "mlops.yaml").write_text(CONFIG)
    cfg = api.settings(root)
    tracking = MlflowTracking(cfg.tracking_uri)
    exp = tracking.ensure_experiment(cfg.experiment, cfg.artifact_location)
    registry = MlflowRegistry(cfg.tracking_uri)
    with tracking.run(exp, "train", {}) as run_id:
        tracking.log_dict(api.profile_for_training(features(20_000, 1), data_hash="md5:train"), PROFILE_ARTIFACT)
    registry.register("m", f"runs:/{run_id}/model", run_id, {})
    with tracking.run(exp, "old-train", {}) as old_run:
        tracking.log_metrics({"accuracy": 0.9})
    registry.register("m", f"runs:/{old_run}/model", old_run, {})
    registry.set_alias("m", "champion", "1")
    features(2_000, 2).to_csv(root / "same.csv", index=False)
    features(2_000, 3, shift=0.5).to_parquet(root / "shifted.parquet", index=False)
    features(20_000, 1).to_csv(root / "train.csv", index=False)
    return root


@pytest.fixture
def project(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh copy of the template's store (its run artifacts stay in the template) and an empty audit trail."""
    for name in ("mlops.yaml", "mlflow.db", "same.csv", "shifted.parquet", "train.csv"):
        shutil.copy(template / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return api.settings(tmp_path)


def drift_entries(cfg: Settings) -> list[object]:
    with AuditStore.open(cfg.audit_url) as store:
        return list(store.entries(model="m", action=actions.DRIFT_CHECKED))


def test_model_check_is_logged_to_mlflow_and_the_audit_trail(project: Settings, tmp_path: Path) -> None:
    result = api.drift_check("m@champion", tmp_path / "shifted.parquet", settings=project)
    assert result.model == "m" and result.version == "1" and result.drift and not result.passed
    assert set(result.drifted_columns) == {"a", "b", "d"}
    assert result.reference == "m v1 profile (md5:train)" and result.audit_seq is not None
    registry = MlflowRegistry(project.tracking_uri)
    tags = registry.get_version("m", "1").tags
    assert tags["mlops.drift.status"] == "drift" and tags["mlops.drift.checked_at"] == result.checked_at
    assert tags["mlops.drift.run_id"] == result.mlflow_run_id
    run = registry.get_run(result.mlflow_run_id or "")
    assert run.metrics["drift_share"] == pytest.approx(result.share)
    assert run.metrics["a.wasserstein"] == pytest.approx(result.columns[0].score) and run.metrics["a.drifted"] == 1.0
    assert registry.load_json_artifact(run.run_id, "mlops/drift_result.json")["drift"] is True
    entries = drift_entries(project)
    assert len(entries) == 1
    entry = entries[0]
    assert entry.subject == {"model": "m", "version": "1"} and entry.decision == "failed"  # type: ignore[attr-defined]
    assert entry.details["passed"] is False and set(entry.details["drifted_columns"]) == {"a", "b", "d"}  # type: ignore[attr-defined]
    # the promotion rule drift_passed reads exactly this entry, once the file is known as production data
    with AuditStore.open(project.audit_url) as store:
        status = AuditTrailView(store, "tester").drift_status("m", "1")
    assert status is not None and status.passed is None and status.ignored == 1  # not a production batch (yet)
    with AuditStore.open(project.audit_url) as store:
        for name in ("shifted.parquet", "same.csv"):  # as `mlops monitor` records production batches
            store.append(
                actions.MONITOR_BATCH,
                actor="monitor",
                subject={"model": "m", "version": "1", "alias": "champion"},
                decision="ok",
                details={"batch": name, "batch_sha256": file_digest(tmp_path / name).removeprefix("sha256:")},
            )
        status = AuditTrailView(store, "tester").drift_status("m", "1")
    assert status is not None and status.passed is False and "drift share" in status.detail
    ok = api.drift_check("m/1", tmp_path / "same.csv", settings=project)
    assert ok.passed and registry.get_version("m", "1").tags["mlops.drift.status"] == "passed"
    with AuditStore.open(project.audit_url) as store:
        latest = AuditTrailView(store, "tester").drift_status("m", "1")
    assert latest is not None and latest.passed
    unlogged = api.drift_check("m/1", tmp_path / "same.csv", settings=project, log=False)
    assert unlogged.audit_seq is None and len(drift_entries(project)) == 2
    # a check on the training data itself satisfies nothing: the latest production check still stands
    api.drift_check("m/1", tmp_path / "train.csv", settings=project)
    with AuditStore.open(project.audit_url) as store:
        after = AuditTrailView(store, "tester").drift_status("m", "1")
    assert after is not None and after.audit_seq == latest.audit_seq and after.ignored == 1


def test_version_logged_before_profiles_gets_a_clear_message(project: Settings, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"m v2 has no drift reference profile") as exc:
        api.drift_check("m/2", tmp_path / "same.csv", settings=project)
    assert "dvc repro" in str(exc.value) and "--reference" in str(exc.value)
    cli = runner.invoke(app, ["drift", "m/2", "--current", str(tmp_path / "same.csv")])
    assert cli.exit_code == 2 and "has no drift reference profile" in cli.output and "hint:" in cli.output
    # the way out the message offers: compare against the training data file, recorded for that version
    fallback = api.drift_check("m/2", tmp_path / "same.csv", reference=tmp_path / "train.csv", settings=project)
    assert fallback.passed and fallback.version == "2" and fallback.reference.startswith("train.csv sha256:")  # type: ignore[union-attr]
    assert MlflowRegistry(project.tracking_uri).get_version("m", "2").tags["mlops.drift.status"] == "passed"


def test_cli_model_check_json_exit_code_and_policy_settings(project: Settings, tmp_path: Path) -> None:
    bad = runner.invoke(app, ["drift", "m@champion", "--current", str(tmp_path / "shifted.parquet"), "--json"])
    assert bad.exit_code == 1, bad.output
    body = json.loads(bad.stdout)
    assert body["drift"] is True and body["model"] == "m" and body["version"] == "1"
    assert {c["name"] for c in body["columns"] if c["drifted"]} == {"a", "b", "d"}
    # drift: settings in policy.yaml apply per model: here a lenient threshold for m
    gov = tmp_path / "governance"
    gov.mkdir()
    (gov / "policy.yaml").write_text("drift:\n  models:\n    m:\n      thresholds: {wasserstein: 0.9}\n")
    lenient = runner.invoke(app, ["drift", "m@champion", "--current", str(tmp_path / "shifted.parquet"), "--json"])
    assert lenient.exit_code == 0 and json.loads(lenient.stdout)["columns"][0]["threshold"] == 0.9
    (gov / "policy.yaml").write_text("drift:\n  thresholds: {wasserstein: lots}\n")
    broken = runner.invoke(app, ["drift", "m@champion", "--current", str(tmp_path / "same.csv")])
    assert broken.exit_code == 2 and "policy.yaml:2: drift.thresholds.wasserstein: expected a number" in broken.output
    (gov / "policy.yaml").write_text(
        "version: 1\ndrift:\n  models:\n    m:\n      columns:\n        a: {method: ttest}\n"
    )
    typo = runner.invoke(app, ["drift", "m@champion", "--current", str(tmp_path / "same.csv")])
    assert typo.exit_code == 2 and "policy.yaml:6: drift.models.m.columns.a.method: unknown drift method" in typo.output
    (gov / "policy.yaml").unlink()
    unknown = runner.invoke(app, ["drift", "nope@champion", "--current", str(tmp_path / "same.csv")])
    assert unknown.exit_code == 2 and "not registered" in unknown.output


def test_report_is_written_logged_and_agrees_with_the_gate(project: Settings, tmp_path: Path) -> None:
    html = tmp_path / "out" / "drift.html"
    result = api.drift_check("m@champion", tmp_path / "shifted.parquet", report=html, settings=project)
    assert html.is_file() and "<html" in html.read_text(encoding="utf-8")[:2000].lower()
    assert result.report == str(html) and result.report_scores is not None
    # the report rebuilt the reference from the profile; same method, same number within sampling tolerance
    for col in result.columns:
        assert result.report_scores[col.name] == pytest.approx(col.score, abs=0.03, rel=0.05), col.name
    assert result.warnings == ()
    artifacts = MlflowRegistry(project.tracking_uri).client.list_artifacts(result.mlflow_run_id, "mlops")
    assert "mlops/drift.html" in {a.path for a in artifacts}


@pytest.mark.parametrize("numeric_method", ["wasserstein", "psi", "jensenshannon"])
def test_report_numbers_agree_with_the_gate_on_raw_reference(tmp_path: Path, numeric_method: str) -> None:
    ref = features(20_000, 4)
    cur = features(20_000, 5, shift=0.5, colors=[0.3, 0.5, 0.2])
    profile = build_profile(ref)
    cfg = DriftConfig(
        numeric_method=numeric_method, categorical_method="psi" if numeric_method == "psi" else "jensenshannon"
    )
    result = check(profile, cur, cfg)
    report = write_report(tmp_path / "r.html", profile, cur, result, reference=ref)
    assert report.path.is_file() and not report.reference_from_profile
    for col in result.columns:
        assert report.methods[col.name] == col.method
        assert report.scores[col.name] == pytest.approx(col.score, abs=0.01, rel=0.03), (col.name, col.method)
        assert report.drifted[col.name] == col.drifted


def test_report_for_a_one_row_batch(tmp_path: Path) -> None:
    ref = features(5_000, 6)
    profile = build_profile(ref)
    one = features(1, 7, shift=2.0)
    result = check(profile, one)
    report = write_report(tmp_path / "one.html", profile, one, result)
    assert report.path.is_file() and report.current_rows == 1 and report.reference_from_profile
    for col in result.columns:
        assert report.scores[col.name] == pytest.approx(col.score, abs=0.02, rel=0.03), col.name


def test_later_warnings_add_to_the_gates_notes(
    project: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warning raised while recording (MLflow refused the drift run) joins the notes gathered while checking."""
    from mlops_layer.api import drift as drift_api
    from mlops_layer.errors import BackendError

    def refuse(*_args: object, **_kwargs: object) -> str:
        raise BackendError("the tracking server is read-only")

    monkeypatch.setattr(drift_api, "_log_drift_run", refuse)
    config = {"prediction_column": "prediction"}
    result = api.drift_check("m@champion", tmp_path / "same.csv", settings=project, config=config)
    assert any("prediction drift not checked" in w for w in result.warnings), result.warnings
    assert any("could not log the drift check to MLflow" in w for w in result.warnings), result.warnings
    assert result.audit_seq is not None


def test_streamed_model_check_is_recorded_like_any_other(project: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "day"
    folder.mkdir()
    batch = features(90_000, 5, shift=0.5)
    for i in range(3):
        batch.iloc[i * 30_000 : (i + 1) * 30_000].to_parquet(folder / f"part-{i}.parquet", index=False)
    result = api.drift_check("m@champion", folder, settings=project)
    assert result.engine == "stream" and result.n_current == 90_000 and result.approximate
    assert set(result.drifted_columns) == set(check(build_profile(features(20_000, 1)), batch).drifted_columns)
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert result.audit_seq is not None and result.current == f"day/ (3 Parquet files, {size:,} bytes)"
    entry = drift_entries(project)[-1]
    assert entry.details["engine"] == "stream" and entry.details["near_threshold"] == []  # type: ignore[attr-defined]
    with AuditStore.open(project.audit_url) as store:
        status = AuditTrailView(store, "tester").drift_status("m", "1")
    # a folder has no content hash a monitored production batch could match: recorded, and evidence for nothing
    assert status is not None and status.passed is None and status.ignored == 1
