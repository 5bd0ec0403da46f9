"""The monitoring -> retraining loop, end to end, in a throwaway workspace (``loop-workspace/``, git-ignored).

champion in service -> healthy batches, then drifted ones -> the drift alert fires once and a signed webhook arrives at
a local receiver -> `mlops retrain --if-needed` brings the new labelled data in as a DVC data version and registers a
challenger -> the policy promotes it to staging automatically and holds champion for a signed approval (approvers
notified) -> approved and promoted -> the trail verifies and `mlops history` tells the story.

Run by ``make loop``; the automated test ``tests/test_loop_e2e.py`` runs it and checks what it left behind.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo  # noqa: E402
from demo import BIN, MODEL, REPO, banner, git, run  # noqa: E402

from mlops_layer.monitoring.notifiers import verify_signature  # noqa: E402

ALERTS = """
alerts:
  - name: data-drift
    type: drift_share
    max: 0.3
    window: {breaches: 2, of: 3}
    cooldown: {hours: 6}
    clear_after: 3
    severity: critical
"""


class Receiver:
    """A stakeholder's webhook endpoint on 127.0.0.1: checks each HMAC signature and keeps what arrived."""

    def __init__(self, log: Path, secret: str) -> None:
        self.log, self.secret = log, secret
        log.parent.mkdir(parents=True, exist_ok=True)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify_signature(receiver.secret, dict(self.headers.items()), body)
                record = {"verified": ok, "event": self.headers.get("X-Mlops-Event"), "body": json.loads(body or b"{}")}
                with receiver.log.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/mlops"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def configure(ws: Path, receiver: Receiver) -> None:
    """The on-call stakeholder listens on the receiver; the policy gets its alert rule. Committed, like any review."""
    card = ws / "governance" / "models" / f"{MODEL}.yaml"
    card.write_text(
        card.read_text() + f"  - name: Drift on-call (webhook)\n    role: operations\n    webhook: {receiver.url}\n"
    )
    policy = ws / "governance" / "policy.yaml"
    if "\nalerts:" not in policy.read_text():
        policy.write_text(policy.read_text() + ALERTS)
    git(ws, "commit", "-q", "-am", "monitoring: drift alert rule and the on-call webhook")


def make_batches(ws: Path) -> None:
    cols = ",".join(f"{kind}_{feature}" for kind in ("mean", "worst") for feature in demo.FEATURES)
    ingest = [sys.executable, "pipelines/ingest.py"]
    for i in (1, 2):
        run(
            [*ingest, "--out", f"batches/healthy-{i}.csv", "--shift", "0.02", "--rows", "300", "--seed", str(i)],
            ws,
            quiet=True,
        )
    for i in (1, 2, 3):
        shifted = ["--shift", "1.5", "--rows", "300", "--seed", str(10 + i), "--columns", cols]
        run([*ingest, "--out", f"batches/drifted-{i}.csv", *shifted], ws, quiet=True)
    # The new scenario's labelled data, as the labelling team delivers it: enough that the retrained model's
    # reference profile is the recalibrated scanner's.
    new = ["--out", "batches/new-labels.csv", "--shift", "1.5", "--rows", "12000", "--seed", "99", "--columns", cols]
    run([*ingest, *new], ws, quiet=True)


def main(dest: Path | None = None) -> Path:
    started = time.monotonic()
    ws = demo.prepare_workspace(dest or REPO / "loop-workspace")
    secret = secrets.token_hex(16)
    demo.EXTRA_ENV["MLOPS_WEBHOOK_SECRET"] = secret
    receiver = Receiver(ws / ".receiver" / "received.jsonl", secret)
    demo.make_demo_keys(ws)
    configure(ws, receiver)
    make_batches(ws)
    mlops, dvc = str(BIN / "mlops"), str(BIN / "dvc")
    champion = f"{MODEL}@champion"

    banner("1. Champion in service: trained, drift-checked, promoted with a signed approval")
    run([dvc, "repro"], ws, quiet=True)
    run([dvc, "push", "-q"], ws)
    demo.commit_all(ws, "pipeline run: model v1")
    run([mlops, "promote", MODEL, "1", "--to", "staging"], ws, quiet=True)
    # drift evidence must be on production data: a batch `mlops monitor` recorded for the model
    run(
        [mlops, "monitor", f"{MODEL}@staging", "--batch", "batches/healthy-1.csv", "--labels", "target"], ws, quiet=True
    )
    run(
        [mlops, "drift", f"{MODEL}/1", "--current", "batches/healthy-1.csv", "--exclude", "target", "--json"],
        ws,
        quiet=True,
    )
    run([mlops, "approve", MODEL, "1", "--to", "champion", "--key", ".demo-keys/alice"], ws, quiet=True)
    run([mlops, "promote", MODEL, "1", "--to", "champion"], ws)

    banner("2. Production batches: two healthy, then the scanner recalibration drifts every size feature")
    for batch in ("healthy-1", "healthy-2", "drifted-1", "drifted-2", "drifted-3"):
        run([mlops, "monitor", champion, "--batch", f"batches/{batch}.csv", "--labels", "target"], ws)
    run([mlops, "alerts", "status", MODEL], ws)
    alerts = [r for r in receiver.received() if "alert" in str(r["event"])]
    print(f"\nreceiver: {len(alerts)} alert notification(s), signatures verified: {all(r['verified'] for r in alerts)}")

    banner("3. Retrain (an alert is open): new labelled data -> new DVC data version -> challenger -> policy")
    run([mlops, "retrain", MODEL, "--if-needed", "--data", "batches/new-labels.csv"], ws)
    demo.commit_all(ws, "retrain: the pipeline's lock for the challenger")
    run([mlops, "drift", f"{MODEL}/2", "--current", "batches/drifted-3.csv", "--exclude", "target"], ws)
    run(
        [
            mlops,
            "approve",
            MODEL,
            "2",
            "--to",
            "champion",
            "--key",
            ".demo-keys/alice",
            "--comment",
            "retrained on recalibrated scanner data",
        ],
        ws,
    )
    run([mlops, "promote", MODEL, "2", "--to", "champion"], ws)
    run([mlops, "lineage", MODEL, "2"], ws)

    banner("4. The story, from the trail")
    run([mlops, "history", MODEL], ws)
    run([mlops, "audit", "log", "--model", MODEL], ws)
    run([mlops, "audit", "verify"], ws)
    run(["git", "status", "--short"], ws)
    got = receiver.received()
    print(f"\nreceiver got {len(got)} signed notification(s): " + ", ".join(str(r["event"]) for r in got))
    print(f"\033[1;32mLoop finished in {time.monotonic() - started:.0f} s.\033[0m Workspace: {ws}")
    receiver.server.shutdown()
    return ws


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
