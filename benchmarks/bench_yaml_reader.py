"""The one YAML reader: its cost on the repository's real files, and an alias bomb refused versus expanded.

Baselines, measured in the same run:
- plain ``yaml.safe_load`` of the same bytes (what a reader without line numbers costs);
- the former located reader's behaviour on alias bombs: composing the node graph and walking it, as it did to
  attach locations, which visits every expanded node. It is measured on small bombs (4..7 levels of 9) and grows
  9x per level; the attack bomb has 45 levels.

Run: ``.venv/bin/python benchmarks/bench_yaml_reader.py``
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_of(n: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bomb(levels: int, fan_out: int = 9) -> bytes:
    lines = [
        "roles: {}",
        "drift:",
        "  importance:",
        '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan_out) + "]")
    return ("\n".join(lines) + "\n").encode()


def expand_like_before(data: bytes) -> int:
    """Compose with PyYAML and visit every node through aliases, as the former located reader's conversion did."""
    import yaml

    root = yaml.compose(data.decode())

    def walk(node: Any) -> int:
        if isinstance(node, yaml.MappingNode):
            return 1 + sum(walk(k) + walk(v) for k, v in node.value)
        if isinstance(node, yaml.SequenceNode):
            return 1 + sum(walk(v) for v in node.value)
        return 1

    return walk(root)


def main() -> None:
    import yaml

    from mlops_layer.errors import ConfigError
    from mlops_layer.yamlfile import parse_located

    files = [ROOT / "governance" / "policy.yaml", *sorted((ROOT / "governance" / "models").glob("*.yaml"))]
    print("## YAML reader\n")
    print("| measurement | figure | against |\n| --- | --- | --- |")
    for path in files:
        data = path.read_bytes()
        ours = best_of(200, lambda data=data, path=path: parse_located(data, str(path)))
        plain = best_of(200, lambda data=data: yaml.safe_load(data))
        print(
            f"| read {path.relative_to(ROOT)} ({len(data):,} B), best of 200 | {ours * 1e3:.2f} ms with lines | "
            f"yaml.safe_load {plain * 1e3:.2f} ms ({ours / plain:.2f}x) |"
        )
    attack = bomb(45)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        parse_located(attack, "policy.yaml")
        raise SystemExit("the bomb was not refused")
    except ConfigError as exc:
        refused = time.perf_counter() - start
        message = exc.message
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"| {len(attack):,} B alias bomb, 45 levels of 9, refused | {refused * 1e3:.2f} ms, peak {peak / 1024:.0f} KiB "
        f"(`{message[:48]}…`) | expanding it: below |"
    )
    previous = None
    for levels in (4, 5, 6, 7):
        data = bomb(levels)
        start = time.perf_counter()
        nodes = expand_like_before(data)
        spent = time.perf_counter() - start
        growth = f", {spent / previous:.1f}x the level before" if previous else ""
        print(
            f"| expanding a {levels}-level bomb ({len(data)} B) as before | {nodes:,} nodes in {spent:.3f} s{growth} | "
            f"refused by the reader in the same way as the 45-level one |"
        )
        previous = spent


if __name__ == "__main__":
    main()
