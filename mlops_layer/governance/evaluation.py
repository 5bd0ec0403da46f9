"""Independent evaluation: the layer scores the candidate and the current holder itself, on the same holdout.

An ``evaluation`` rule never reads what a training run logged about itself. For each version the flow loads the
registered model (sha256-checked), predicts the holdout named by its DVC path, and computes the rule's metrics.
Results are audited (``evaluation.recorded``: model digest, data md5, metric set, values) and logged to an MLflow
run of their own that the version links by tag. A later evaluation with the same model digest, data md5, target
and metric set reuses the audited values instead of predicting again. Works on ports, so tests can hand fakes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlops_layer.errors import MlopsError


@dataclass(frozen=True)
class Holdout:
    """The holdout as read from the workspace: its DVC path, the md5 DVC records for it, its rows."""

    path: str
    md5: str
    frame: Any


@dataclass(frozen=True)
class VersionScores:
    """What the layer measured for one version on the holdout."""

    version: str
    metrics: dict[str, float]
    model_digest: str
    run_id: str | None = None
    audit_seq: int | None = None
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "metrics": dict(self.metrics),
            "model_digest": self.model_digest,
            "run_id": self.run_id,
            "audit_seq": self.audit_seq,
            "reused": self.reused,
        }


@dataclass(frozen=True)
class EvaluationOutcome:
    """The evaluation of one rule: the holdout, the candidate's and the holder's scores, or why there are none."""

    data: str | None = None
    data_md5: str | None = None
    target: str | None = None
    rows: int = 0
    candidate: VersionScores | None = None
    holder: VersionScores | None = None
    error: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


class ScoringModel(Protocol):
    """A loaded model that scores a frame (the holdout without its target; the model picks its own columns):
    predicted labels/values, class probabilities and classes (or None)."""

    def score(self, frame: Any) -> tuple[Any, Any | None, Any | None]: ...


class EvaluationPorts(Protocol):
    """What the flow needs from the outside world (the api wires MLflow, DVC and the audit trail)."""

    def holdout(self, path: str) -> Holdout: ...
    def model_digest(self, model: str, version: str) -> str: ...
    def load(self, model: str, version: str) -> ScoringModel: ...
    def previous(self, model: str, version: str) -> Sequence[Mapping[str, Any]]: ...
    def record(self, model: str, version: str, details: Mapping[str, Any]) -> int: ...
    def log_run(self, model: str, version: str, details: Mapping[str, Any]) -> str | None: ...


def digest_of(artifacts: Mapping[str, str]) -> str:
    """One sha256 over a model's per-file digests (as recorded at registration)."""
    body = json.dumps(dict(sorted(artifacts.items())), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def evaluate_versions(
    ports: EvaluationPorts,
    *,
    model: str,
    candidate: str,
    holder: str | None,
    data: str | None,
    target: str | None,
    metrics: Sequence[str],
    compute: Callable[[Sequence[str], Any, Any, Any | None, Any | None], dict[str, float]],
) -> EvaluationOutcome:
    """Score ``candidate`` (and ``holder`` when it is another version) on the holdout ``data``.

    ``compute(names, y_true, y_pred, proba, classes)`` computes the named metrics. Failures to evaluate are returned
    in ``error`` (the rule fails with it), never raised.
    """
    if not data:
        return EvaluationOutcome(
            error="no holdout named: give the rule 'data: <DVC path>' or the card 'evaluation: {data: ...}'"
        )
    if not target:
        return EvaluationOutcome(
            data=data,
            error="no target column: give the rule 'target: <column>' or the card 'columns: {target: ...}'",
        )
    try:
        holdout = ports.holdout(data)
    except MlopsError as exc:
        return EvaluationOutcome(data=data, target=target, error=f"holdout {data}: {exc.message}")
    frame = holdout.frame
    if target not in [str(c) for c in frame.columns]:
        return EvaluationOutcome(
            data=data,
            data_md5=holdout.md5,
            target=target,
            error=f"the holdout {data} has no target column {target!r}",
        )
    names = sorted(dict.fromkeys(metrics))
    warnings: list[str] = []

    def one(version: str) -> VersionScores:
        digest = ports.model_digest(model, version)
        for entry in reversed(list(ports.previous(model, version))):
            if (
                entry.get("model_digest") == digest
                and entry.get("data_md5") == holdout.md5
                and entry.get("target") == target
                and sorted(entry.get("metric_names") or ()) == names
            ):
                return VersionScores(
                    version,
                    {k: float(v) for k, v in dict(entry.get("metrics") or {}).items()},
                    digest,
                    run_id=entry.get("run_id"),
                    audit_seq=entry.get("seq"),
                    reused=True,
                )
        scorer = ports.load(model, version)
        labelled = frame[frame[target].notna()]
        y_pred, proba, classes = scorer.score(labelled.drop(columns=[target]))
        values = compute(names, labelled[target].to_numpy(), y_pred, proba, classes)
        missing = [n for n in names if n not in values]
        if missing:
            warnings.append(f"v{version}: could not compute {', '.join(missing)} on the holdout")
        details = {
            "model_digest": digest,
            "data": data,
            "data_md5": holdout.md5,
            "target": target,
            "rows": len(labelled),
            "metric_names": names,
            "metrics": values,
        }
        run_id: str | None = None
        try:
            run_id = ports.log_run(model, version, details)
        except MlopsError as exc:
            warnings.append(f"v{version}: the evaluation run could not be logged to MLflow: {exc.message}")
        seq = ports.record(model, version, {**details, "run_id": run_id})
        return VersionScores(version, values, digest, run_id=run_id, audit_seq=seq)

    try:
        cand = one(candidate)
        held = one(holder) if holder is not None and holder != candidate else None
    except MlopsError as exc:
        return EvaluationOutcome(data=data, data_md5=holdout.md5, target=target, error=exc.message)
    return EvaluationOutcome(
        data=data,
        data_md5=holdout.md5,
        target=target,
        rows=len(frame),
        candidate=cand,
        holder=held,
        warnings=tuple(warnings),
    )
