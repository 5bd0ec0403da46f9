"""Withdrawing a signed approval end to end: MLflow sqlite store, SQLite trail, real SSH keys, the CLI."""

from __future__ import annotations

from pathlib import Path

from test_governance_integration import keys, mlflow_uri, new_model, project, trail  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from mlops_layer import api
from mlops_layer.audit import actions
from mlops_layer.cli.main import app
from mlops_layer.config import Settings


def test_a_withdrawn_approval_no_longer_counts_until_approved_again(
    project: Settings,  # noqa: F811
    keys: dict[str, Path],  # noqa: F811
) -> None:
    name = new_model(project, [0.9])
    api.approve(name, "1", "champion", key_path=keys["alice"], settings=project)
    assert api.check(name, "1", "champion", settings=project).allowed
    assert api.status(name, settings=project).models[0].pending_approvals == (
        "v1 -> @champion approved by alice@example.com",
    )

    runner = CliRunner()
    out = runner.invoke(
        app, ["withdraw", name, "1", "--to", "champion", "--key", str(keys["alice"]), "--comment", "new evidence"]
    )
    assert out.exit_code == 0, out.output
    assert "alice@example.com withdrew their decision" in out.stdout
    decision = api.check(name, "1", "champion", settings=project)
    approvals = next(r for r in decision.rules if r.rule_type == "approvals")
    assert not decision.allowed and "withdrawn by a signed withdrawal" in approvals.message
    assert api.status(name, settings=project).models[0].pending_approvals == ()
    assert not api.promote(name, "1", "champion", settings=project).moved

    nothing = runner.invoke(app, ["withdraw", name, "1", "--to", "champion", "--key", str(keys["dan"])])
    assert nothing.exit_code == 2 and "has no promote decision" in nothing.output

    api.approve(name, "1", "champion", key_path=keys["alice"], comment="re-reviewed", settings=project)
    assert api.promote(name, "1", "champion", settings=project).moved
    acts = [e.action for e in trail(project, name)]
    assert acts.count(actions.APPROVAL_WITHDRAWN) == 1 and acts.count(actions.APPROVAL_GRANTED) == 2
