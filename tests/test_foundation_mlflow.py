"""The MLflow adapter against a real sqlite store, and the CLI's errors for bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_layer.adapters.mlflow import MlflowRegistry, MlflowTracking
from mlops_layer.cli.main import app
from mlops_layer.errors import BackendError, NotFoundError


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


def _runs_with_versions(uri: str, tmp_path: Path, n: int) -> list[str]:
    tracking = MlflowTracking(uri)
    exp = tracking.ensure_experiment("e", str(tmp_path / "art"))
    registry = MlflowRegistry(uri)
    run_ids = []
    for i in range(n):
        with tracking.run(exp, f"r{i}", {"k": "v"}) as run_id:
            tracking.log_metrics({"accuracy": 0.5 + i / 100})
            tracking.log_dict({"i": i}, "mlops/x.json")
        registry.register("m", f"runs:/{run_id}/model", run_id, {"mlops.git.commit": "c" * 40})
        run_ids.append(run_id)
    return run_ids


def test_registry_round_trip(store: str, tmp_path: Path) -> None:
    run_ids = _runs_with_versions(store, tmp_path, 3)
    registry = MlflowRegistry(store)
    assert registry.model_names() == ["m"]
    assert registry.list_versions("m") == ["1", "2", "3"]
    assert registry.get_aliases("m") == {}
    registry.set_alias("m", "champion", "2")
    assert registry.get_aliases("m") == {"champion": "2"}
    assert registry.resolve("m", "champion").run_id == run_ids[1]
    assert registry.resolve("m", None).version == "3"
    registry.set_version_tags("m", "2", {"mlops.decision.champion": "allowed"})
    assert registry.get_version("m", "2").tags["mlops.decision.champion"] == "allowed"
    metrics = registry.run_metrics(run_ids)
    assert [metrics[r]["accuracy"] for r in run_ids] == pytest.approx([0.5, 0.51, 0.52])
    assert registry.load_json_artifact(run_ids[2], "mlops/x.json") == {"i": 2}
    assert registry.load_json_artifact(run_ids[2], "mlops/absent.json") is None
    registry.delete_alias("m", "champion")
    assert registry.get_aliases("m") == {}


def test_sql_registry_answers_aliases_from_the_alias_table(store: str, tmp_path: Path) -> None:
    """On a SQL store the adapter reads aliases and writes tags/aliases through the store itself (no whole-model
    reads); what it answers must equal what MlflowClient answers."""
    _runs_with_versions(store, tmp_path, 3)
    registry = MlflowRegistry(store)
    assert registry._sql_store() is not None
    reads: list[str] = []
    real = registry.client.get_registered_model
    registry.client.get_registered_model = lambda name: reads.append(name) or real(name)  # type: ignore[method-assign]
    registry.set_alias("m", "champion", "2")
    registry.set_alias("m", "staging", "3")
    registry.set_version_tags("m", "3", {"mlops.decision.staging": "allowed", "mlops.x": 1})
    assert registry.get_aliases("m") == {"champion": "2", "staging": "3"}
    assert reads == []  # neither the writes nor the alias read loaded the registered model
    registry.client.get_registered_model = real  # type: ignore[method-assign]
    from mlflow import MlflowClient

    client = MlflowClient(store, store)
    assert dict(client.get_registered_model("m").aliases) == {"champion": 2, "staging": 3}
    assert client.get_model_version("m", "3").tags["mlops.x"] == "1"
    client.create_registered_model("empty")
    assert registry.get_aliases("empty") == {}
    with pytest.raises(NotFoundError, match="model 'nope' is not registered"):
        registry.get_aliases("nope")
    assert registry._sql_store() is not None  # a missing model does not switch the fast path off


def test_unknown_model_and_version_are_not_found(store: str, tmp_path: Path) -> None:
    _runs_with_versions(store, tmp_path, 1)
    registry = MlflowRegistry(store)
    with pytest.raises(NotFoundError, match="model 'nope' is not registered .*known: m"):
        registry.get_aliases("nope")
    with pytest.raises(NotFoundError, match="has no version 9 .*versions: 1"):
        registry.get_version("m", "9")
    with pytest.raises(NotFoundError, match="no alias '@prod'"):
        registry.resolve("m", "prod")


def test_unreachable_tracking_server_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(BackendError, match="does not answer"):
        MlflowRegistry("http://127.0.0.1:9")
    assert time.monotonic() - started < 10


runner = CliRunner()


def test_cli_unknown_model_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["lineage", "nosuch", "1"])
    assert result.exit_code == 2, result.output
    assert "model 'nosuch' is not registered" in result.output
    assert "Traceback" not in result.output


def test_cli_unreachable_tracking_uri_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 3, result.output
    assert "does not answer" in result.output and "Traceback" not in result.output


def test_cli_init_refuses_outside_git(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "not inside a git repository" in result.output and "git init" in result.output


def test_cli_init_scaffolds_and_keeps_existing(git_repo: Path) -> None:
    (git_repo / "mlops.yaml").write_text("experiment: mine\n")
    result = runner.invoke(app, ["init", str(git_repo), "--json"])
    assert result.exit_code == 0, result.output
    assert (git_repo / ".dvc").is_dir()
    assert (git_repo / "governance" / "allowed_signers").is_file()
    assert (git_repo / "mlops.yaml").read_text() == "experiment: mine\n"
    assert ".mlops/" in (git_repo / ".gitignore").read_text()
    again = runner.invoke(app, ["init", str(git_repo)])
    assert again.exit_code == 0 and "kept" in again.output


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\nfrom mlops_layer.cli.main import app\n"
        "try:\n    app(['--help'], prog_name='mlops')\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('mlflow', 'pandas', 'dvc', 'evidently', 'sklearn', 'git') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY=\n" in out, out


def _all_commands(group, prefix=""):  # type: ignore[no-untyped-def]
    import typer.main

    cmd = typer.main.get_command(group) if not hasattr(group, "params") else group
    yield prefix, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _all_commands(sub, f"{prefix} {name}")


def test_every_command_has_help_an_example_and_every_option_help() -> None:
    seen = 0
    for name, cmd in _all_commands(app):
        if not name:
            continue
        seen += 1
        if not getattr(cmd, "commands", None):
            assert cmd.help and "Example:" in cmd.help, f"`mlops{name}` has no example in its help"
        for param in cmd.params:
            if param.param_type_name == "option":
                assert getattr(param, "help", None), f"`mlops{name}` option {param.opts} has no help"
    assert seen >= 3
