"""scikit-learn adapter: a loaded estimator as the monitoring flow's ``ModelPort`` (labels and class probabilities)."""

from __future__ import annotations

from typing import Any

from mlops_layer.errors import InputError


class ServingModel:
    """The serving version's model as monitoring scores with it (a scikit-learn-like estimator)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        names = getattr(model, "feature_names_in_", None)
        self.feature_names: tuple[str, ...] | None = tuple(str(n) for n in names) if names is not None else None

    def predict(self, features: Any) -> Any:
        import numpy as np

        from mlops_layer.monitoring.monitor import Predictions

        try:
            if hasattr(self.model, "predict_proba"):
                proba = np.asarray(self.model.predict_proba(features))
                classes = np.asarray(self.model.classes_)
                return Predictions(classes[proba.argmax(axis=1)], proba, classes, "classifier")
            return Predictions(np.asarray(self.model.predict(features)), None, None, "regressor")
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"the model could not score the batch: {exc}",
                hint="a column holds values of another type than in training; check the batch's schema",
            ) from None
