"""A loaded model of any MLflow flavor as something that scores a frame: labels, class probabilities, classes.

Native scikit-learn-API models (scikit-learn, XGBoost, LightGBM) give ``predict_proba`` and ``classes_``; a pyfunc
model gives what its ``predict`` returns — one column per class (probabilities, columns named by class), or one
value per row (labels, or a regressor's values). The model card's ``columns.task`` settles a 1-D output that could
be either. Core code: no mlflow import; the api hands it an ``adapters.mlflow.LoadedModel``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_layer.errors import InputError
from mlops_layer.monitoring.monitor import Predictions


class ServingModel:
    """The monitoring flow's model port (and the independent evaluation's scorer) over any loaded model."""

    def __init__(
        self,
        model: Any,
        *,
        feature_names: tuple[str, ...] | None = None,
        task: str | None = None,
        non_features: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.task = task
        self.non_features = non_features
        if feature_names is None:
            names = getattr(model, "feature_names_in_", None)
            feature_names = tuple(str(n) for n in names) if names is not None else None
        self.feature_names: tuple[str, ...] | None = feature_names

    def select(self, frame: Any) -> Any:
        """The model's input columns of ``frame`` (every column but the card's non-features when it does not say)."""
        if self.feature_names is not None:
            missing = [c for c in self.feature_names if c not in frame.columns]
            if missing:
                raise InputError(
                    f"{len(missing)} feature column(s) missing: {', '.join(missing[:10])}"
                    + (", ..." if len(missing) > 10 else ""),
                    hint="the data's schema changed; fix the producer or retrain on the new schema",
                )
            return frame[list(self.feature_names)]
        drop = [c for c in frame.columns if str(c) in self.non_features]
        return frame.drop(columns=drop) if drop else frame

    def predict(self, features: Any) -> Predictions:
        try:
            return self._predict(features)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(
                f"the model could not score the batch: {str(exc).splitlines()[0][:300] if str(exc) else exc!r}",
                hint="a column holds values of another type than in training; check the batch's schema",
            ) from None

    def score(self, frame: Any) -> tuple[Any, Any | None, Any | None]:
        """(labels or values, probabilities or None, classes or None) of ``frame``'s feature columns: the
        independent evaluation's scorer port."""
        p = self.predict(self.select(frame))
        return p.labels, p.proba, p.classes

    def _predict(self, features: Any) -> Predictions:
        model = self.model
        if self.task != "regression" and hasattr(model, "predict_proba") and hasattr(model, "classes_"):
            proba = np.asarray(model.predict_proba(features))
            classes = np.asarray(model.classes_)
            return Predictions(classes[proba.argmax(axis=1)], proba, classes, "classifier")
        out = model.predict(features)
        columns = getattr(out, "columns", None)
        if columns is not None:
            if len(columns) == 1:
                out = out.iloc[:, 0]
            else:  # a pyfunc returning one column per class
                proba = np.asarray(out, dtype=float)
                classes = np.asarray([_label(c) for c in columns])
                return Predictions(classes[proba.argmax(axis=1)], proba, classes, "classifier")
        values = np.asarray(out)
        if values.ndim == 2 and values.shape[1] > 1:
            classes = np.arange(values.shape[1])
            proba = values.astype(float)
            return Predictions(classes[proba.argmax(axis=1)], proba, classes, "classifier")
        values = values.reshape(-1)
        if self.task == "regression" or (self.task is None and values.dtype.kind == "f"):
            return Predictions(values.astype(float), None, None, "regressor")
        return Predictions(values, None, None, "classifier")


def _label(column: Any) -> Any:
    """A class label from a column name: ``"1"`` -> 1, so labels compare equal to integer truth."""
    if isinstance(column, str):
        text = column.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return column
