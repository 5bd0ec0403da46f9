"""Foundation: settings resolution, lineage value object, git and DVC adapters against real git/DVC."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import git

from mlops_layer.adapters import dvc
from mlops_layer.adapters.git import GitRepo, blob_hash
from mlops_layer.config import load_settings
from mlops_layer.errors import ConfigError, InputError
from mlops_layer.lineage import DataVersion, Lineage, ParentRef, parse_model_ref


def test_settings_precedence_flag_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mlops.yaml").write_text("experiment: from-file\ntracking_uri: sqlite:///x.db\n")
    assert load_settings(tmp_path).experiment == "from-file"
    assert load_settings(tmp_path).tracking_uri == f"sqlite:///{tmp_path.resolve()}/x.db"
    monkeypatch.setenv("MLOPS_EXPERIMENT", "from-env")
    assert load_settings(tmp_path).experiment == "from-env"
    assert load_settings(tmp_path, experiment="from-flag").experiment == "from-flag"
    assert load_settings(tmp_path, experiment="from-flag").sources["experiment"] == "flag"


def test_settings_defaults_need_no_server(tmp_path: Path) -> None:
    cfg = load_settings(tmp_path)
    assert cfg.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert cfg.audit_url == f"sqlite:///{tmp_path.resolve()}/.mlops/audit.db"
    assert cfg.allowed_signers == tmp_path.resolve() / "governance" / "allowed_signers"


def test_signers_file_cannot_be_redirected_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ALLOWED_SIGNERS", str(tmp_path / "evil"))
    assert load_settings(tmp_path).allowed_signers == tmp_path.resolve() / "governance" / "allowed_signers"


@pytest.mark.parametrize(
    ("text", "needle"),
    [("tracking_uri: [unclosed\n", "line"), ("bogus: 1\n", "unknown setting"), ("- a\n- b\n", "mapping")],
)
def test_bad_config_file_is_named(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "mlops.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path)
    assert "mlops.yaml" in str(err.value) and needle in str(err.value)


def test_lineage_round_trips_through_tags_json() -> None:
    lin = Lineage(
        git_commit="a" * 40,
        git_dirty=False,
        git_branch="main",
        stage="train",
        data=(DataVersion("data/prepared/train.csv", "f" * 32, 123),),
        params={"train.seed": 42},
        parent=ParentRef("m", "3", "run"),
    )
    tags = lin.to_tags()
    assert tags["mlops.git.commit"] == "a" * 40
    assert tags["mlops.git.dirty"] == "false"
    assert tags["mlops.data.dep.data/prepared/train.csv"] == f"md5={'f' * 32} size=123"
    assert tags["mlops.parent"] == "m/3"
    import json

    assert Lineage.from_dict(json.loads(tags["mlops.lineage"])) == lin


def test_parse_model_ref() -> None:
    assert parse_model_ref("m@champion") == ("m", "champion")
    assert parse_model_ref("m/3") == ("m", "3")
    assert parse_model_ref("m") == ("m", None)


def test_git_outside_a_repository_is_a_clear_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not inside a git repository"):
        GitRepo(tmp_path)


def test_git_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(InputError, match="no commits"):
        GitRepo(tmp_path).head_commit()


def test_git_info_dirty_and_generated_files(git_repo: Path) -> None:
    repo = GitRepo(git_repo)
    info = repo.info()
    assert info.commit == git(git_repo, "rev-parse", "HEAD")
    assert not info.dirty and info.diff_sha256 is None and info.branch == "main"
    (git_repo / "dvc.lock").write_text("x")
    git(git_repo, "add", "dvc.lock")
    git(git_repo, "commit", "-qm", "lock")
    (git_repo / "dvc.lock").write_text("changed by dvc repro")
    assert not repo.info().dirty  # the lock is rewritten by the very run being recorded
    (git_repo / "README.md").write_text("edited\n")
    info = repo.info()
    assert info.dirty and info.changed_files == ("README.md",) and len(info.diff_sha256 or "") == 64
    (git_repo / "untracked.txt").write_text("new")
    assert repo.info().changed_files == ("README.md",)


def test_blob_hash_matches_git_hash_object(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_bytes(b"rules: []\n\xc3\xa9\n")
    expected = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True).stdout
    assert blob_hash(f.read_bytes()) == expected.strip()


def test_dvc_lock_missing_and_stage_missing(git_repo: Path) -> None:
    with pytest.raises(InputError, match="no dvc.lock") as err:
        dvc.read_lock(git_repo)
    assert err.value.hint and "dvc repro" in err.value.hint
    (git_repo / "dvc.lock").write_text("schema: '2.0'\nstages:\n  prepare:\n    cmd: x\n")
    with pytest.raises(InputError, match="stage 'train' is not in .*stages: prepare"):
        dvc.read_stage(git_repo, "train")


def test_corrupt_params_names_line(git_repo: Path) -> None:
    (git_repo / "params.yaml").write_text("train:\n  seed: 1\n  bad: [1, 2\n")
    with pytest.raises(ConfigError, match=r"params.yaml line \d+"):
        dvc.read_params(git_repo)


def test_real_dvc_repro_lock_is_read_exactly(git_repo: Path) -> None:
    dvc.init(git_repo)
    (git_repo / "in.txt").write_text("hello\n")
    (git_repo / "params.yaml").write_text("step:\n  factor: 3\n")
    (git_repo / "dvc.yaml").write_text(
        "stages:\n  step:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    params: [step.factor]\n"
        "    outs: [out.txt]\n"
    )
    dvc.repro(git_repo)
    stage = dvc.read_stage(git_repo, "step")
    import hashlib

    md5 = hashlib.md5(b"hello\n").hexdigest()
    assert [(d.path, d.md5, d.size) for d in stage.deps] == [("in.txt", md5, 6)]
    assert [(d.path, d.md5) for d in stage.outs] == [("out.txt", md5)]
    assert stage.params == {"step.factor": 3}
    assert dvc.pipeline_status(git_repo) == {}
    (git_repo / "in.txt").write_text("changed\n")
    assert dvc.pipeline_status(git_repo) != {}


def test_pipeline_file_outputs_params_and_corruption(git_repo: Path) -> None:
    (git_repo / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: x\n    params: [train.seed, {other.yaml: [a.b]}]\n"
        "    outs: [model.pkl, {run.json: {cache: false}}]\n    metrics: [{metrics.json: {cache: false}}]\n"
    )
    assert dvc.pipeline_outputs(git_repo) == ("model.pkl", "run.json", "metrics.json")
    assert dvc.declared_params(git_repo, "train") == ["train.seed", "a.b"]
    assert dvc.declared_params(git_repo, "absent") == []
    (git_repo / "dvc.yaml").write_text("stages:\n  train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"dvc.yaml line \d+"):
        dvc.pipeline_outputs(git_repo)
