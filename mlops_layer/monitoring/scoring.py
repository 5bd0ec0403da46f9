"""Scoring a production batch: evaluation metrics on its labels and a summary of the prediction distribution.

The metric names are those the example pipeline (and most teams) log at evaluation time, so a batch is judged on
the same metrics its version was promoted on. Plain numpy, one pass per metric: 100,000 rows take milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mse", "mae", "r2")
KNOWN_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
_PROBA_METRICS = ("roc_auc", "log_loss")


def metric_names(names: Iterable[str]) -> list[str]:
    """The names among ``names`` monitoring can compute on a batch: the built-ins, any scikit-learn metric and
    ``module:function`` metrics (others, e.g. a self-logged ``train_accuracy``, are skipped)."""
    from mlops_layer.errors import ConfigError
    from mlops_layer.metrics import direction_of, resolve

    out = set()
    for name in names:
        if name in KNOWN_METRICS:
            out.add(name)
            continue
        if ":" in name:
            try:
                resolve(name)
            except ConfigError:
                continue
            out.add(name)
        elif direction_of(name) is not None:
            out.add(name)
    return sorted(out)


def _binary_counts(y: NDArray[Any], p: NDArray[Any], positive: Any) -> tuple[float, float, float]:
    tp = float(np.count_nonzero((p == positive) & (y == positive)))
    fp = float(np.count_nonzero((p == positive) & (y != positive)))
    fn = float(np.count_nonzero((p != positive) & (y == positive)))
    return tp, fp, fn


def _prf(y: NDArray[Any], p: NDArray[Any], positive: Any) -> tuple[float, float, float]:
    tp, fp, fn = _binary_counts(y, p, positive)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def roc_auc(y_true: NDArray[Any], score: NDArray[Any], positive: Any) -> float | None:
    """Area under the ROC curve from ranks (Mann–Whitney U), ties averaged; None with a single class."""
    from scipy.stats import rankdata

    pos = y_true == positive
    n_pos = int(np.count_nonzero(pos))
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: Any | None,
    *,
    classes: Any | None = None,
    wanted: Iterable[str] = CLASSIFICATION_METRICS,
) -> dict[str, float]:
    """Accuracy, precision/recall/f1 (binary: of the positive class, the last of ``classes``; else macro),
    roc_auc and log_loss (binary, from ``proba`` columns ordered like ``classes``)."""
    y = np.asarray(y_true)
    p = np.asarray(y_pred)
    want = set(wanted)
    out: dict[str, float] = {}
    if len(y) == 0:
        return out
    labels = np.asarray(classes) if classes is not None else np.unique(np.concatenate([np.unique(y), np.unique(p)]))
    if "accuracy" in want:
        out["accuracy"] = float(np.mean(y == p))
    if want & {"precision", "recall", "f1"}:
        if len(labels) == 2:
            precision, recall, f1 = _prf(y, p, labels[-1])
        else:
            per_class = [_prf(y, p, c) for c in labels]
            precision, recall, f1 = (float(np.mean([x[i] for x in per_class])) for i in range(3))
        out.update({k: v for k, v in (("precision", precision), ("recall", recall), ("f1", f1)) if k in want})
    if proba is not None and len(labels) == 2 and want & set(_PROBA_METRICS):
        prob = np.asarray(proba, dtype=float)
        score = prob[:, -1] if prob.ndim == 2 else prob
        if "roc_auc" in want:
            auc = roc_auc(y, score, labels[-1])
            if auc is not None:
                out["roc_auc"] = auc
        if "log_loss" in want:
            eps = 1e-15
            clipped = np.clip(score, eps, 1 - eps)
            positive = y == labels[-1]
            out["log_loss"] = float(-np.mean(np.where(positive, np.log(clipped), np.log(1 - clipped))))
    return out


def regression_metrics(y_true: Any, y_pred: Any, *, wanted: Iterable[str] = REGRESSION_METRICS) -> dict[str, float]:
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    want = set(wanted)
    if len(y) == 0:
        return {}
    err = p - y
    mse = float(np.mean(err**2))
    out = {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(err)))}
    var = float(np.var(y))
    if var > 0:
        out["r2"] = 1.0 - mse / var
    return {k: v for k, v in out.items() if k in want}


def prediction_summary(y_pred: Any, proba: Any | None, *, classes: Any | None = None) -> dict[str, float]:
    """The prediction distribution of a batch as a few numbers MLflow can chart over time.

    Classifiers: the share predicted as each class (``prediction.share.<class>``) and, with probabilities, the
    mean/std/quantiles of the positive score. Regressors: mean, std and quantiles of the predictions.
    """
    p = np.asarray(y_pred)
    out: dict[str, float] = {"prediction.count": float(len(p))}
    if len(p) == 0:
        return out
    if proba is not None or classes is not None or p.dtype.kind in "bOUS":
        labels = np.asarray(classes) if classes is not None else np.unique(p)
        if len(labels) <= 20:
            for label in labels:
                out[f"prediction.share.{_label(label)}"] = float(np.mean(p == label))
        if proba is not None:
            prob = np.asarray(proba, dtype=float)
            score = prob[:, -1] if prob.ndim == 2 else prob
            out.update(_quantiles("prediction.score", score))
        return out
    out.update(_quantiles("prediction", p.astype(float)))
    return out


def _quantiles(prefix: str, values: NDArray[Any]) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return {}
    q10, q50, q90 = np.quantile(finite, [0.1, 0.5, 0.9])
    return {
        f"{prefix}.mean": float(finite.mean()),
        f"{prefix}.std": float(finite.std()),
        f"{prefix}.p10": float(q10),
        f"{prefix}.p50": float(q50),
        f"{prefix}.p90": float(q90),
    }


def _label(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    text = str(value.item() if hasattr(value, "item") else value)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:50]


def is_classifier(model: Any) -> bool:
    return hasattr(model, "classes_") or hasattr(model, "predict_proba")


def evaluate_batch(
    model_kind: str,
    y_true: Any,
    y_pred: Any,
    proba: Any | None,
    *,
    classes: Any | None,
    wanted: Iterable[str],
) -> dict[str, float]:
    """The ``wanted`` metrics this module can compute (see :func:`metric_names`) on a labelled batch.

    Classification metrics are skipped for a regressor and regression ones for a classifier."""
    from mlops_layer.metrics import BUILTIN_CLASSIFICATION, BUILTIN_REGRESSION, compute_all, resolve

    names = metric_names(wanted)
    skip = BUILTIN_CLASSIFICATION if model_kind != "classifier" else BUILTIN_REGRESSION
    specs = [resolve(n) for n in names if n not in skip]
    return compute_all(specs, y_true, y_pred, proba, classes)


def promoted_metrics(run_metrics: Mapping[str, float]) -> dict[str, float]:
    """The evaluation metrics a version was promoted on: those of its run this module knows how to recompute."""
    known = set(metric_names(run_metrics))
    return {k: float(v) for k, v in run_metrics.items() if k in known}
