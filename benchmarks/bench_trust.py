"""What the trust roots cost per command: an append that signs an automatic checkpoint on close, against the same
append without a key; and `verify` of a trail with one checkpoint per command against one checkpoint in all.

Run: python benchmarks/bench_trust.py [--commands 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mlops_layer import signing
from mlops_layer.audit.store import AuditStore
from mlops_layer.audit.verify import verify_trail


def commands(url: str, n: int, key: Path | None) -> float:
    started = time.perf_counter()
    for i in range(n):
        store = AuditStore.open(url)
        store.checkpoint_key = key
        store.append("bench.command", actor="bench", subject={"model": "m"}, details={"i": i})
        store.close()
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=200)
    n = parser.parse_args().commands
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key = folder / "audit-key"
        pub = signing.generate_key(key, "bench", kind="ed25519")
        signers = folder / "allowed_signers"
        signers.write_text(signing.allowed_signers_line("bench", pub, ["mlops-audit-checkpoint"]) + "\n")
        plain = commands(f"sqlite:///{folder}/plain.db", n, None)
        keyed = commands(f"sqlite:///{folder}/keyed.db", n, key)
        print(
            f"one command's append + close: {plain * 1000:.2f} ms without a key, {keyed * 1000:.2f} ms with an "
            f"automatic checkpoint ({keyed / plain:.2f}x)"
        )
        with AuditStore.open(f"sqlite:///{folder}/keyed.db") as store:
            started = time.perf_counter()
            many = verify_trail(store, allowed_signers=signers)
            t_many = time.perf_counter() - started
        with AuditStore.open(f"sqlite:///{folder}/plain.db") as store:
            store.checkpoint_now(key, signers)
            started = time.perf_counter()
            one = verify_trail(store, allowed_signers=signers)
            t_one = time.perf_counter() - started
        assert many.ok and one.ok, (many.problems, one.problems)
        print(
            f"verify {n} entries with {len(many.checkpoints)} checkpoints: {t_many * 1000:.1f} ms; with 1 "
            f"checkpoint: {t_one * 1000:.1f} ms ({t_many / t_one:.2f}x)"
        )


if __name__ == "__main__":
    main()
