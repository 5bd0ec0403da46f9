"""`mlops report`: the per-model page and the inventory, from a real governed project (git, MLflow, trail, keys)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from report_fixtures import HOSTILE_CARD, MODEL, Project, build_project
from typer.testing import CliRunner

from mlops_layer import api, signing
from mlops_layer.api.report import REPORT_ARTIFACT_DIR
from mlops_layer.cli.main import app
from mlops_layer.report.html import render_model_page, script_json
from mlops_layer.report.page import AuditHead, build_model_page

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith(("MLOPS_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")):
                mp.delenv(var, raising=False)
        yield build_project(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def pages(project: Project, tmp_path_factory: pytest.TempPathFactory) -> api.ReportResult:
    return api.report(out=tmp_path_factory.mktemp("pages"), settings=project.cfg)


def text_of(html: str) -> str:
    """The visible text, roughly: tags removed, whitespace collapsed (entities kept as written)."""
    body = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def test_model_page_shows_card_lineage_decisions_approvals_monitoring_and_audit(
    pages: api.ReportResult, project: Project
) -> None:
    html = (pages.out_dir / f"{MODEL}.html").read_text()
    text = text_of(html)
    # the card: questions with their answers
    assert "Who is accountable for this model? Bob Owner &lt;bob@example.com&gt;" in text
    assert "How and when is it retrained? drift-triggered, on drift alert" in text
    # versions and aliases over time, lineage
    assert "v1 @champion" in text and "@staging v1" in text
    assert f"{1:040x}" in text and f"data/train.csv {2:032x}" in text and "train.C=1.0" in text
    # every decision with each rule's observed and expected, policy and card hashes
    assert text.count("policy hash") == 3
    assert "refused : promote v2 → @champion" in text
    assert "metric_threshold:accuracy FAIL 0.72 accuracy &gt;= 0.8" in text
    card_hash = re.search(r"card hash \(git blob\) ([0-9a-f]{40})", text)
    assert card_hash is not None and text.count(card_hash.group(1)) == 4  # the card itself + 3 decisions
    # approvals with signer and key fingerprint
    alice = signing.fingerprint(signing.public_key(project.alice_key))
    assert f"alice@example.com {alice}" in text
    # monitoring: charts with the alert marked, the open alert, the audit head and the oldest entry
    charts = json.loads(re.search(r'id="chart-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    drift = charts["chart-drift"]
    assert len(drift["traces"][0]["y"]) == 24 and len(drift["layout"]["shapes"]) == 1
    assert [t["name"] for t in charts["chart-metrics"]["traces"]] == ["accuracy", "rows", "alert fired"]
    assert "accuracy_low" in re.search(r'id="alerts".*?</section>', html, re.S).group(0)  # type: ignore[union-attr]
    assert "oldest entry held #1" in text.replace(",", "")
    assert "every entry covered by a signed checkpoint" in text
    # self-contained: plotly.js inline once, nothing fetched from the network
    assert html.count("<script") == 3 and html.count("* plotly.js v") == 1
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)  # our markup, not plotly.js's own strings
    assert not re.search(r'(src|href)="(https?:)?//', markup) and "<link" not in markup


def test_user_text_is_escaped_everywhere(pages: api.ReportResult) -> None:
    html = (pages.out_dir / f"{MODEL}.html").read_text()
    assert HOSTILE_CARD not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned = 1;" in html
    assert "&lt;img src=x onerror=" in html
    # only our own three script elements; nothing user-written opened a fourth
    assert len(re.findall(r"<script\b", html)) == 3


def test_script_json_cannot_close_the_script_element() -> None:
    text = script_json({"a": "</script><script>alert(1)</script>", "b": "&amp; \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["a"] == "</script><script>alert(1)</script>"


def test_inventory_lists_models_with_owner_serving_drift_alerts_and_links(pages: api.ReportResult) -> None:
    assert pages.index is not None and pages.models == ("churn", "fraud")
    html = pages.index.read_text()
    rows = re.findall(r'<tr class="model-row">(.*?)</tr>', html, re.S)
    assert len(rows) == 2
    churn = text_of(rows[0])
    assert 'href="churn.html"' in rows[0] and 'href="fraud.html"' in rows[1]
    assert "Bob Owner" in churn and "v1 @champion" in churn and "drift" in churn and "accuracy_low" in churn
    assert "no card" in text_of(rows[1]) and "never checked" in text_of(rows[1])
    assert all(p.is_file() and p.stat().st_mode & 0o044 for p in pages.pages)


def test_reports_are_logged_as_mlflow_artifacts(pages: api.ReportResult, project: Project) -> None:
    from mlflow import MlflowClient

    assert pages.mlflow_run_id
    client = MlflowClient(project.cfg.tracking_uri)
    names = sorted(a.path for a in client.list_artifacts(pages.mlflow_run_id, REPORT_ARTIFACT_DIR))
    assert names == [f"{REPORT_ARTIFACT_DIR}/{n}" for n in ("churn.html", "fraud.html", "index.html")]


def test_cli_report_one_model_json_and_unknown_model(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.root)
    result = runner.invoke(app, ["report", MODEL, "--out", str(tmp_path / "one"), "--no-mlflow", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["pages"] == [str(tmp_path / "one" / "churn.html")] and body["index"] is None
    assert body["mlflow_run_id"] is None
    result = runner.invoke(app, ["report", "nosuch", "--out", str(tmp_path / "x"), "--no-mlflow"])
    assert result.exit_code == 2 and "nosuch" in result.output
    assert not (tmp_path / "x" / "nosuch.html").exists()
    result = runner.invoke(app, ["report", "../evil", "--no-mlflow"])
    assert result.exit_code == 2 and "not valid" in result.output


def test_page_from_the_trail_alone_without_card_or_registry() -> None:
    from mlops_layer.audit.entry import AuditEntry, build_body, compute_entry_hash

    entries = []
    prev = "0" * 64
    when = datetime(2025, 1, 2, tzinfo=timezone.utc)
    for seq, (action, subject, details) in enumerate(
        [
            ("model.registered", {"model": "m", "version": "1"}, {"params": {"lr": 0.1}}),
            ("alias.set", {"model": "m", "version": "1", "alias": "champion"}, {"via": "promote"}),
            ("alert.fired", {"model": "m", "version": "1"}, {"rule": "r<1>", "message": "<b>bad</b>"}),
        ],
        start=1,
    ):
        body = build_body(action, actor="x@example.com", timestamp=when, subject=subject, details=details)
        entry = AuditEntry(seq, prev, compute_entry_hash(seq, prev, body), body)
        prev = entry.entry_hash
        entries.append(entry)
    page = build_model_page("m", entries, generated_at=when, audit=AuditHead(3, prev, 1, when), card_error="no card")
    assert page.serving == ("champion", "1") and [a.rule for a in page.open_alerts] == ["r<1>"]
    html = render_model_page(page, inline_js=False)
    assert "r&lt;1&gt;" in html and "&lt;b&gt;bad&lt;/b&gt;" in html and "<b>bad" not in html
    assert "No valid model card: no card" in html and "no signed checkpoint" in html


def test_audit_head_status_reports_a_checkpoint_the_trail_no_longer_matches(tmp_path: Path) -> None:
    from dataclasses import replace

    from mlops_layer.audit.checkpoints import make_checkpoint
    from mlops_layer.audit.store import AuditStore
    from mlops_layer.report.page import audit_head

    key = tmp_path / "k"
    signers = tmp_path / "allowed_signers"
    signers.write_text(signing.allowed_signers_line("c@example.com", signing.generate_key(key, kind="ed25519")) + "\n")
    with AuditStore.open(f"sqlite:///{tmp_path}/a.db") as store:
        for i in range(3):
            store.append("model.registered", actor="a@example.com", subject={"model": "m", "version": str(i + 1)})
        size, head = store.head()
        good = make_checkpoint(size, head, datetime.now(timezone.utc), key, signers)
        store.append("alias.set", actor="a@example.com", subject={"model": "m", "version": "1", "alias": "x"})
        status = audit_head(store, [good], signers)
        assert status.checkpoint_ok and status.unanchored == 1 and status.oldest_seq == 1
        assert status.status == "1 entries after the newest signed checkpoint"
        forged = make_checkpoint(size, "ab" * 32, datetime.now(timezone.utc), key, signers)
        status = audit_head(store, [forged], signers)
        assert not status.checkpoint_ok and "rewritten" in status.status
        unsigned = replace(good, signature=good.signature.replace("A", "B", 3))
        assert not audit_head(store, [unsigned], signers).checkpoint_ok
        assert audit_head(store, [], signers).status == "no signed checkpoint"
