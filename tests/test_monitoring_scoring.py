"""Batch scoring metrics agree with scikit-learn's; the prediction distribution summary."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlops_layer.monitoring.scoring import (
    classification_metrics,
    metric_names,
    prediction_summary,
    promoted_metrics,
    regression_metrics,
)


def test_binary_classification_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    score = np.clip(y * 0.3 + rng.random(5000) * 0.7, 0, 1)
    score[:50] = 0.5  # ties
    pred = (score >= 0.5).astype(int)
    proba = np.column_stack([1 - score, score])
    got = classification_metrics(y, pred, proba, classes=[0, 1])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))


def test_multiclass_macro_and_single_class_auc() -> None:
    y = np.array(["a", "b", "c", "a", "b", "c", "a"])
    p = np.array(["a", "b", "b", "a", "c", "c", "b"])
    got = classification_metrics(y, p, None, wanted=["accuracy", "f1", "precision", "recall"])
    assert got["f1"] == pytest.approx(skm.f1_score(y, p, average="macro"))
    assert got["precision"] == pytest.approx(skm.precision_score(y, p, average="macro"))
    one_class = classification_metrics(np.ones(10), np.ones(10), np.ones((10, 2)), classes=[0, 1])
    assert "roc_auc" not in one_class and one_class["accuracy"] == 1.0
    assert classification_metrics([], [], None) == {}


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=1000)
    p = y + rng.normal(scale=0.3, size=1000)
    got = regression_metrics(y, p)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert got["r2"] == pytest.approx(skm.r2_score(y, p))


def test_prediction_summary_and_metric_selection() -> None:
    pred = np.array([0, 1, 1, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])
    summary = prediction_summary(pred, proba, classes=np.array([0, 1]))
    assert summary["prediction.share.1"] == 0.75 and summary["prediction.share.0"] == 0.25
    assert summary["prediction.score.mean"] == pytest.approx(0.6)
    assert prediction_summary(np.array([1.5, 2.5]), None)["prediction.mean"] == 2.0
    assert metric_names(["accuracy", "train_accuracy", "roc_auc"]) == ["accuracy", "roc_auc"]
    assert promoted_metrics({"accuracy": 0.9, "train_accuracy": 1.0}) == {"accuracy": 0.9}
