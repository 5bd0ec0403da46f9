"""The one YAML reader: line numbers in every error, anchors/aliases/merge keys refused, the policy parsed once.

Attack tests: a 3 KB "billion laughs" alias bomb and a recursive alias in policy.yaml, mlops.yaml and a model card
are refused by the real `mlops` command with exit 2, naming file:line, quickly and in little memory.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import commit_governance
from typer.testing import CliRunner

from mlops_layer.cli.main import app
from mlops_layer.drift.config import drift_config_from_document
from mlops_layer.errors import ConfigError, ConfigWarning
from mlops_layer.governance.policy import load_policy, parse_policy, policy_from_document
from mlops_layer.governance.templates import POLICY_TEMPLATE
from mlops_layer.monitoring.alerts import alert_rules_from_document
from mlops_layer.policyfile import load_policy_document, parse_policy_document
from mlops_layer.yamlfile import MAX_DEPTH, Located, parse_located

REPO = Path(__file__).resolve().parents[1]
MLOPS = Path(sys.executable).parent / "mlops"
runner = CliRunner()

POLICY_HEAD = """\
version: 1
roles:
  alice@example.com: [model-risk]
targets:
  staging:
    rules: []
"""


def alias_bomb(levels: int = 45, fan_out: int = 9) -> str:
    """A "billion laughs": each level lists the previous one ``fan_out`` times (fan_out**levels leaves)."""
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan_out) + "]")
    return "\n".join(lines) + "\n"


BOMB_POLICY = POLICY_HEAD + "drift:\n  importance:\n" + alias_bomb()
RECURSIVE_POLICY = POLICY_HEAD + "alerts: &loop\n  - *loop\n"


def expanded_leaves(data: Any, memo: dict[int, int] | None = None) -> int:
    """How many leaves the document has once its aliases are expanded (counted on shared objects, not built)."""
    memo = {} if memo is None else memo
    if id(data) in memo:
        return memo[id(data)]
    children = list(data.values()) if isinstance(data, dict) else data if isinstance(data, list) else None
    count = 1 if children is None else sum(expanded_leaves(c, memo) for c in children)
    memo[id(data)] = count
    return count


def test_the_bomb_is_a_real_bomb_of_about_3_kb() -> None:
    import yaml

    assert 2500 <= len(BOMB_POLICY.encode()) <= 3500
    # PyYAML alone builds it with shared references; anything that walks it (our located reader did) expands it
    assert expanded_leaves(yaml.safe_load(BOMB_POLICY)) > 10**18


def test_reader_refuses_the_bomb_quickly_in_little_memory() -> None:
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        parse_located(BOMB_POLICY.encode(), "governance/policy.yaml")
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 5 * 2**20
    assert info.value.message.startswith("governance/policy.yaml:9: anchors (&l0) are not allowed")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &x 1\nb: 2\n", "f.yaml:1: anchors (&x) are not allowed"),
        ("a: 1\nb:\n  - &anchor {c: 1}\n", "f.yaml:3: anchors (&anchor) are not allowed"),
        ("a: 1\nb: *x\n", "f.yaml:2: aliases (*x) are not allowed"),
        ("a: &a [*a]\n", "f.yaml:1: anchors (&a) are not allowed"),
        ("base: {x: 1}\nchild:\n  <<: {y: 2}\n  z: 3\n", "f.yaml:3: merge keys (<<) are not allowed"),
        ("a: 1\na: 2\n", "f.yaml:2: field 'a' is defined twice (first on line 1)"),
        ("a: [1, 2\n", "f.yaml:2: not valid YAML"),
        ("? [a, b]\n: 1\n", "f.yaml:1: a key must be a plain value"),
        ("a: !!python/object/apply:os.system [ls]\n", "f.yaml:1: tags (!!python/object/apply:os.system)"),
        ("a: !!python/name:os.system ''\n", "f.yaml:1: not valid YAML"),
        ("a: !!set {x: null}\n", "f.yaml:1: tags (!!set) are not allowed"),
    ],
)
def test_reader_refusals_name_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_located(text.encode(), "f.yaml")
    assert info.value.message.startswith(expected), info.value.message
    assert info.value.exit_code == 2


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert parse_located(b'"<<": 1\n', "f.yaml").plain() == {"<<": 1}


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    deep = "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    with pytest.raises(ConfigError, match=r"^f\.yaml:1: nested more than 64 levels deep"):
        parse_located(deep.encode(), "f.yaml")
    ok = "a: " + "[" * 10 + "1" + "]" * 10 + "\n"
    assert parse_located(ok.encode(), "f.yaml").plain() == {"a": [[[[[[[[[[1]]]]]]]]]]}


def test_located_wrap_and_line_of() -> None:
    doc = parse_located(b"drift:\n  thresholds:\n    psi: 0.2\n  columns:\n    - a\n", "p.yaml")
    assert doc.line_of("drift.thresholds.psi") == 3
    assert doc.line_of("drift.thresholds.nope") == 2  # the nearest written ancestor
    assert doc.line_of("drift.columns[0]") == 5
    plain = Located.wrap({"a": [1, {"b": 2}]}, "x.yaml", "top")
    assert plain.value["a"].value[1].value["b"].field == "top.a[1].b" and plain.where == "x.yaml"
    with pytest.raises(ConfigError, match=r"^x\.yaml: field 'top\.a\[0\]': expected a string"):
        plain.value["a"].value[0].string()


# --------------------------------------------------------------------------------------- the policy, parsed once


def test_one_parse_feeds_policy_alerts_and_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlops_layer.yamlfile as yamlfile

    calls: list[str] = []
    real = yamlfile.parse_located

    def counting(data: bytes, file: str) -> Located:
        calls.append(file)
        return real(data, file)

    monkeypatch.setattr(yamlfile, "parse_located", counting)
    doc = load_policy_document(REPO / "governance" / "policy.yaml")
    policy = policy_from_document(doc)
    rules = alert_rules_from_document(doc)
    drift = drift_config_from_document(doc, model="breast-cancer-classifier")
    assert len(calls) == 1 and doc.warnings == ()
    assert set(policy.targets) == {"staging", "champion"} and policy.policy_hash == doc.policy_hash
    assert [r.name for r in rules] == ["data-drift", "accuracy-floor"] and drift.prediction_column == "prediction"


def test_todays_policies_parse_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        assert load_policy(REPO / "governance" / "policy.yaml").targets
        assert parse_policy(POLICY_TEMPLATE.encode(), "governance/policy.yaml").targets


def test_sections_nothing_reads_warn_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_HEAD + "monitoring:\n  every: 1h\nretraining: {cadence: monthly}\n")
    with pytest.warns(ConfigWarning) as record:
        doc = load_policy_document(path)
    messages = [str(w.message) for w in record]
    assert messages == list(doc.warnings) and len(messages) == 2
    assert messages[0].startswith(f"{path}:7: section 'monitoring' is not read by anything")
    assert messages[1].startswith(f"{path}:9: section 'retraining'") and "card" in messages[1]
    assert policy_from_document(doc).targets  # it still works
    path.write_text(POLICY_HEAD + "monitorng: {}\n")  # a misspelt section is still refused
    with pytest.raises(ConfigError, match=r"policy\.yaml:7: field 'monitorng': unknown field"):
        load_policy(path)


def test_drift_section_errors_name_file_and_line() -> None:
    doc = parse_policy_document(
        b"version: 1\ndrift:\n  models:\n    m:\n      columns:\n        a: {wait: 1}\n", "p.yaml"
    )
    with pytest.raises(ConfigError, match=r"^p\.yaml:6: drift\.models\.m\.columns\.a: unknown key\(s\) wait"):
        drift_config_from_document(doc, model="m")
    empty = parse_policy_document(b"version: 1\n", "p.yaml")
    assert drift_config_from_document(empty).drift_share == 0.5 and alert_rules_from_document(empty) == []


# ------------------------------------------------------------------------------------------------ through the CLI


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "governance" / "models").mkdir(parents=True)
    (root / "mlops.yaml").write_text("experiment: yaml-attacks\n")
    (root / "governance" / "policy.yaml").write_text(POLICY_HEAD)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLOPS_ACTOR", "tester@example.com")
    return root


def invoke(args: list[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    result = runner.invoke(app, args)
    return result.exit_code, result.output, time.perf_counter() - start


@pytest.mark.parametrize(("text", "line"), [(BOMB_POLICY, 9), (RECURSIVE_POLICY, 7)])
def test_mlops_check_refuses_alias_attacks_in_the_policy(project: Path, text: str, line: int) -> None:
    (project / "governance" / "policy.yaml").write_text("targets: [\n")
    commit_governance(project, "a broken policy")
    assert invoke(["check", "m", "1", "--to", "staging"])[0] == 2  # warm-up: imports done before the clock starts
    (project / "governance" / "policy.yaml").write_text(text)
    commit_governance(project, "the attack, committed (the gate reads the commit)")
    code, output, elapsed = invoke(["check", "m", "1", "--to", "staging"])
    assert code == 2, output
    assert f"policy.yaml:{line}: anchors" in output and "Traceback" not in output
    assert elapsed < 1.0, elapsed


def test_alias_bomb_in_mlops_yaml_and_in_a_model_card(project: Path) -> None:
    (project / "mlops.yaml").write_text("experiment: x\nnotifications:\n" + alias_bomb())
    code, output, _ = invoke(["alerts", "status", "m"])
    assert code == 2 and "mlops.yaml:3: anchors (&l0) are not allowed" in output
    (project / "mlops.yaml").write_text("experiment: &e x\n")
    code, output, _ = invoke(["alerts", "status", "m"])
    assert code == 2 and "mlops.yaml:1: anchors (&e)" in output
    (project / "mlops.yaml").write_text("experiment: x\n")
    card = (REPO / "governance" / "models" / "breast-cancer-classifier.yaml").read_text()
    (project / "governance" / "models" / "m.yaml").write_text(card + "extra: &boom [1]\nmore: *boom\n")
    code, output, _ = invoke(["card", "validate", "m"])
    assert code == 2 and "m.yaml:" in output and "anchors (&boom) are not allowed" in output


def test_cli_shows_the_unread_section_warning(project: Path) -> None:
    (project / "governance" / "policy.yaml").write_text(POLICY_HEAD + "monitoring:\n  every: 1h\n")
    code, output, _ = invoke(["alerts", "status", "m"])
    assert code == 0, output
    assert output.count("warning:") == 1 and "policy.yaml:7: section 'monitoring' is not read" in output


def test_real_mlops_process_refuses_the_bomb_within_a_memory_limit(project: Path) -> None:
    """The installed `mlops` script, capped at 1 GiB of address space: expanding the bomb would need far more."""
    (project / "governance" / "policy.yaml").write_text(BOMB_POLICY)
    commit_governance(project, "the attack, committed (the gate reads the commit)")
    limit = 1 << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    start = time.perf_counter()
    proc = subprocess.run(
        [str(MLOPS), "check", "m", "1", "--to", "staging"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=cap,
        check=False,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr
    assert "policy.yaml:9: anchors (&l0) are not allowed" in proc.stderr and "MemoryError" not in proc.stderr
    assert elapsed < 30


def test_no_second_yaml_reader_grows_beside_the_one_reader() -> None:
    """Only the reader parses YAML; the DVC adapter reads DVC's own files (dvc.yaml, dvc.lock, params.yaml)."""
    allowed = {"mlops_layer/yamlfile.py", "mlops_layer/adapters/dvc.py"}
    users = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "mlops_layer").rglob("*.py")
        if "import yaml" in path.read_text(encoding="utf-8") or "from yaml" in path.read_text(encoding="utf-8")
    )
    assert set(users) <= allowed, users
    assert "mlops_layer/yamlfile.py" in users
