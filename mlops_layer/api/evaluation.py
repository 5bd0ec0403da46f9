"""Independent evaluation wired to the real tools: the holdout from the DVC workspace, registered models of any
flavor loaded with their sha256 checked, the audit trail holding (and giving back) results, and an MLflow run of
its own per evaluation, linked from the version by tag."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, MlopsError, NotFoundError

if TYPE_CHECKING:
    from mlops_layer.adapters.mlflow import MlflowRegistry
    from mlops_layer.governance.cards import ModelCard
    from mlops_layer.governance.evaluation import EvaluationOutcome, Holdout
    from mlops_layer.governance.policy import Evaluation
    from mlops_layer.monitoring.serving import ServingModel


class _Ports:
    """The evaluation flow's ports (``governance.evaluation.EvaluationPorts``) over DVC, MLflow and the trail."""

    def __init__(self, cfg: Settings, registry: MlflowRegistry, card: ModelCard | None) -> None:
        self.cfg = cfg
        self.registry = registry
        self.card = card
        self._artifacts: dict[tuple[str, str], dict[str, str]] = {}

    def holdout(self, path: str) -> Holdout:
        from mlops_layer.adapters import dvc
        from mlops_layer.drift.io import read_table
        from mlops_layer.governance.evaluation import Holdout

        ref = dvc.tracked(self.cfg.root, path)
        if ref is None:
            raise NotFoundError(
                "not tracked by DVC (no .dvc file, not in dvc.lock)",
                hint=f"`dvc add {path}` and commit the .dvc file, so its md5 names the exact data",
            )
        local = self.cfg.root / path
        if not local.is_file():
            raise NotFoundError(f"{local} is not in the workspace", hint=f"run `dvc pull {path}`")
        actual = dvc.file_md5(local)
        if actual != ref.md5:
            raise InputError(
                f"the workspace copy (md5 {actual}) is not the data DVC records (md5 {ref.md5})",
                hint=f"run `dvc checkout {path}`, or `dvc add`/`dvc repro` and commit to record the new data",
            )
        return Holdout(path, ref.md5, read_table(local, what="holdout"))

    def artifacts(self, model: str, version: str) -> dict[str, str]:
        from mlops_layer.api.loading import registered_digests

        key = (model, version)
        if key not in self._artifacts:
            recorded = registered_digests(self.cfg, model, version)
            if recorded is None:  # registered outside the layer: what the store holds now
                recorded = self.registry.artifact_digests(f"models:/{model}/{version}")
            self._artifacts[key] = recorded
        return self._artifacts[key]

    def model_digest(self, model: str, version: str) -> str:
        from mlops_layer.governance.evaluation import digest_of

        return digest_of(self.artifacts(model, version))

    def load(self, model: str, version: str) -> ServingModel:
        from mlops_layer.adapters.mlflow import load_serving
        from mlops_layer.monitoring.serving import ServingModel

        loaded = load_serving(
            f"models:/{model}/{version}",
            self.cfg.tracking_uri,
            self.cfg.registry_uri,
            expected_digests=self.artifacts(model, version),
        )
        roles = self.card.columns if self.card is not None else None
        return ServingModel(
            loaded.model,
            feature_names=loaded.feature_names,
            task=roles.task if roles else None,
            non_features=roles.non_features if roles else (),
        )

    def previous(self, model: str, version: str) -> Sequence[Mapping[str, Any]]:
        from mlops_layer.audit import actions

        with _wiring.audit_store(self.cfg) as trail:
            return [
                {**dict(e.details or {}), "seq": e.seq}
                for e in trail.entries(model=model, action=actions.EVALUATION_RECORDED)
                if str(e.subject.get("version")) == str(version)
            ]

    def record(self, model: str, version: str, details: Mapping[str, Any]) -> int:
        from mlops_layer import tags
        from mlops_layer.audit import actions

        with _wiring.acting_trail(self.cfg) as trail:
            seq = trail.append(
                actions.EVALUATION_RECORDED,
                subject={"model": model, "version": version},
                run_id=details.get("run_id"),
                details=dict(details),
            )
        _wiring.mirror_tags(self.registry, model, version, {tags.EVALUATION_AUDIT_SEQ: seq}, quiet=True)
        return int(seq)

    def log_run(self, model: str, version: str, details: Mapping[str, Any]) -> str | None:
        """An MLflow run of its own under ``<experiment>-evaluation`` (never the version's training run)."""
        from mlops_layer import tags

        tracking = _wiring.tracking(self.cfg)
        experiment = tracking.ensure_experiment(f"{self.cfg.experiment}-evaluation", self.cfg.artifact_location)
        run_tags = {
            tags.EVALUATION_MODEL: model,
            tags.EVALUATION_VERSION: version,
            tags.EVALUATION_DATA: str(details["data"]),
            tags.EVALUATION_DATA_MD5: str(details["data_md5"]),
            tags.EVALUATION_MODEL_DIGEST: str(details["model_digest"]),
        }
        with tracking.run(experiment, f"evaluate {model} v{version}", run_tags) as run_id:
            tracking.log_metrics({k: float(v) for k, v in dict(details["metrics"]).items()})
            tracking.log_dict(dict(details), "mlops/evaluation.json")
        _wiring.mirror_tags(self.registry, model, version, {tags.EVALUATION_RUN: run_id}, quiet=True)
        return str(run_id)


def _compute(names: Sequence[str], y: Any, p: Any, proba: Any, classes: Any) -> dict[str, float]:
    from mlops_layer import metrics

    return metrics.compute_all(metrics.resolve_many(names), y, p, proba, classes)


def evaluator(
    cfg: Settings, registry: MlflowRegistry
) -> Callable[[str, str, str | None, Sequence[Evaluation], ModelCard | None], dict[str, EvaluationOutcome]]:
    """The promotion flow's evaluator: every ``evaluation`` rule of the target scored by the layer itself."""

    def run(
        model: str, candidate: str, holder: str | None, rules: Sequence[Evaluation], card: ModelCard | None
    ) -> dict[str, EvaluationOutcome]:
        from mlops_layer.governance.evaluation import evaluate_versions
        from mlops_layer.governance.policy import rule_name

        ports = _Ports(cfg, registry, card)
        return {
            rule_name(rule): evaluate_versions(
                ports,
                model=model,
                candidate=candidate,
                holder=holder,
                data=rule.data or (card.evaluation_data if card is not None else None),
                target=rule.target or (card.columns.target if card is not None else None),
                metrics=[m.metric for m in rule.metrics],
                compute=_compute,
            )
            for rule in rules
        }

    return run


def evaluate(
    name: str,
    version: str,
    *,
    metrics: Sequence[str],
    data: str | None = None,
    target: str | None = None,
    against: str | None = None,
    settings: Settings | None = None,
) -> EvaluationOutcome:
    """Score ``name`` v``version`` (and ``against``, another version) on a DVC-tracked holdout as an ``evaluation``
    rule does: audited (``evaluation.recorded``), logged to a run of its own, reused while the model's files, the
    data's md5 and the metric set are unchanged. ``data``/``target`` default to the card's ``evaluation.data`` and
    ``columns.target``. A failure to evaluate is in the outcome's ``error``."""
    from mlops_layer.governance.cards import load_card
    from mlops_layer.governance.evaluation import evaluate_versions

    cfg = _wiring.resolve(settings)
    if not metrics:
        raise InputError("name at least one metric", hint="e.g. metrics=['roc_auc', 'f1']")
    registry = _wiring.registry(cfg)
    info = registry.resolve(name, version)
    try:
        card: ModelCard | None = load_card(cfg.cards_dir, name)
    except MlopsError:
        card = None
    return evaluate_versions(
        _Ports(cfg, registry, card),
        model=info.name,
        candidate=info.version,
        holder=str(against) if against is not None else None,
        data=data or (card.evaluation_data if card else None),
        target=target or (card.columns.target if card else None),
        metrics=list(metrics),
        compute=_compute,
    )
