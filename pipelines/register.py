"""Stage `register`: governed registration — a model version carrying the lineage dvc.lock and git recorded."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mlops_layer import api


def main() -> None:
    name = yaml.safe_load(Path("params.yaml").read_text())["train"]["model_name"]
    run = json.loads(Path("artifacts/train_run.json").read_text())
    reg = api.register(name, run["run_id"], stage="train", model_uri=run["model_uri"])
    Path("artifacts/registration.json").write_text(
        json.dumps(
            {"model": reg.model, "version": reg.version, "run_id": reg.run_id, "audit_seq": reg.audit_seq},
            indent=2,
        )
        + "\n"
    )
    print(f"register: {reg.model} v{reg.version} (run {reg.run_id}, audit #{reg.audit_seq})")


if __name__ == "__main__":
    main()
