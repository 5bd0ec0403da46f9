"""Benchmark: `mlops report` for a model with 200 versions and 1,000 monitored batches — page size and render time.

The state is appended straight to a fresh SQLite trail through the audit store's API (200 registrations with
lineage, a promotion decision with its rules and an alias move per version, 50 signed approvals, 1,000 monitored
batches with metrics, 20 alert firings, a drift check every 50 batches, a signed checkpoint) instead of training 200
models; the report is then built exactly as `mlops report NAME` builds it (trail only: no MLflow registry in the
loop). Baselines in the same run: reading the model's entries from the trail (the floor for gathering), the page
without plotly.js (the fixed cost of inlining the charting library), and Chromium loading an empty page (the floor
for the browser's render time).

Run: .venv/bin/python benchmarks/bench_report.py [--versions 200] [--batches 1000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mlops_layer import api, signing
from mlops_layer.audit import actions
from mlops_layer.audit.checkpoints import make_checkpoint
from mlops_layer.audit.store import AuditStore
from mlops_layer.config import load_settings
from mlops_layer.report.html import plotly_js, render_model_page

MODEL = "churn"


def build_trail(root: Path, versions: int, batches: int) -> tuple[Path, int]:
    key = root / "keys" / "custodian"
    pub = signing.generate_key(key, "custodian", kind="ed25519")
    signers = root / "governance" / "allowed_signers"
    signers.parent.mkdir(parents=True)
    signers.write_text(signing.allowed_signers_line("custodian@example.com", pub) + "\n")
    (root / "mlops.yaml").write_text("audit_url: sqlite:///.mlops/audit.db\nactor: bench@example.com\n")
    cfg = load_settings(root)
    rule = {"name": "metric_threshold:accuracy", "passed": True, "observed": "0.91", "expected": "accuracy >= 0.8"}
    signature = signing.sign(b"approval", key, "mlops-approval")
    with AuditStore.open(cfg.audit_url) as store:
        for v in range(1, versions + 1):
            sv = str(v)
            store.append(
                actions.MODEL_REGISTERED,
                actor="carol@example.com",
                subject={"model": MODEL, "version": sv},
                git_commit=f"{v:040x}",
                dvc_hashes={"data/train.csv": f"{v:032x}", "data/prepared": f"{v:032x}.dir"},
                run_id=f"{v:032x}",
                details={"params": {"train.C": 0.5, "train.trees": 100 + v}, "artifacts": {"model.pkl": f"{v:064x}"}},
            )
            if v % 4 == 0:
                store.append(
                    actions.APPROVAL_GRANTED,
                    actor="alice@example.com",
                    subject={"model": MODEL, "version": sv, "alias": "champion"},
                    decision="approve",
                    details={"statement": {"comment": "fine", "action": "promote"}, "signature": signature},
                )
            target = "champion" if v % 4 == 0 else "staging"
            seq = store.append(
                actions.PROMOTION_DECIDED,
                actor="ops@example.com",
                subject={"model": MODEL, "version": sv, "alias": target},
                decision="allowed",
                details={"action": "promote", "policy_hash": "c" * 40, "card_hash": "d" * 40, "rules": [rule] * 4},
            ).seq
            store.append(
                actions.ALIAS_SET,
                actor="ops@example.com",
                subject={"model": MODEL, "version": sv, "alias": target},
                details={"via": "promote", "decision_seq": seq},
            )
        for b in range(batches):
            drifted = b % 50 > 45
            store.append(
                actions.MONITOR_BATCH,
                actor="monitor@example.com",
                subject={"model": MODEL, "version": str(versions), "alias": "champion"},
                decision="drift" if drifted else "ok",
                details={"drift_share": 0.5 if drifted else 0.05, "metrics": {"accuracy": 0.8 + (b % 7) / 100}},
            )
            if b % 50 == 47:
                store.append(
                    actions.ALERT_FIRED,
                    actor="monitor@example.com",
                    subject={"model": MODEL, "version": str(versions)},
                    decision="fired",
                    details={"rule": "drift_share", "severity": "warning", "message": "drift in 2 of 3 batches"},
                )
            if b % 50 == 0:
                store.append(
                    actions.DRIFT_CHECKED,
                    actor="ops@example.com",
                    subject={"model": MODEL, "version": str(versions)},
                    decision="passed",
                    details={"passed": True, "share": 0.1},
                )
        size, head = store.head()
        from datetime import datetime, timezone

        store.add_checkpoint(make_checkpoint(size, head, datetime.now(timezone.utc), key, signers))
    return root, size


def chromium_ms(page: Path, tmp: Path) -> float | None:
    exe = shutil.which("chromium")
    if exe is None:
        return None
    started = time.perf_counter()
    subprocess.run(
        [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp / page.stem}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--batches", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp_name:
        tmp = Path(tmp_name)
        started = time.perf_counter()
        root, size = build_trail(tmp / "proj", args.versions, args.batches)
        print(
            f"state: {args.versions} versions, {args.batches} batches = {size:,} entries, built in "
            f"{time.perf_counter() - started:.1f} s"
        )
        cfg = load_settings(root)
        with AuditStore.open(cfg.audit_url) as store:
            t0 = time.perf_counter()
            n = sum(1 for _ in store.entries(model=MODEL))
            read_s = time.perf_counter() - t0
        gather = []
        render = []
        for _ in range(3):
            t0 = time.perf_counter()
            page = api.model_page(MODEL, use_registry=False, settings=cfg)
            t1 = time.perf_counter()
            html = render_model_page(page)
            t2 = time.perf_counter()
            gather.append(t1 - t0)
            render.append(t2 - t1)
        bare = render_model_page(page, inline_js=False)
        out = tmp / "site"
        t0 = time.perf_counter()
        result = api.report(MODEL, out=out, log_to_mlflow=False, use_registry=False, settings=cfg)
        total_s = time.perf_counter() - t0
        size_b = result.size_bytes
        js = len(plotly_js().encode())
        print(f"reading the model's {n:,} entries from the trail: {read_s * 1000:.0f} ms (floor for gathering)")
        print(f"gather the page data (best of 3): {min(gather) * 1000:.0f} ms = {min(gather) / read_s:.1f}x the read")
        print(f"render the HTML (best of 3): {min(render) * 1000:.0f} ms")
        print(f"`report NAME` end to end (gather, render, write): {total_s * 1000:.0f} ms")
        print(
            f"page size: {size_b / 1e6:.2f} MB, of which plotly.js {js / 1e6:.2f} MB; without it "
            f"{len(bare.encode()) / 1e6:.2f} MB ({len(html.encode()) / len(bare.encode()):.1f}x)"
        )
        empty = tmp / "empty.html"
        empty.write_text("<html><body>empty</body></html>")
        base_ms = chromium_ms(empty, tmp)
        page_ms = chromium_ms(result.pages[0], tmp)
        if base_ms is None or page_ms is None:
            print("chromium not found: browser render time not measured")
        else:
            print(
                f"headless Chromium, load + run scripts + dump DOM: {page_ms:.0f} ms; empty page {base_ms:.0f} ms "
                f"(the page costs {page_ms - base_ms:.0f} ms more, {page_ms / base_ms:.1f}x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
