"""Metrics by name: the built-in ones, any scikit-learn metric function, and custom ``module:function`` metrics.

One vocabulary for policy rules, the independent evaluation, alert rules and monitoring: a name resolves to a
:class:`MetricSpec` that knows its direction (is higher better?) and whether it reads class probabilities. The
built-in names are computed with plain numpy (milliseconds on 100,000 rows); other scikit-learn names import
``sklearn.metrics`` on first use. An unknown name is an error listing what is available.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_layer.errors import ConfigError

HIGHER = "higher"
LOWER = "lower"
DIRECTIONS = (HIGHER, LOWER)

# the fast built-ins (mlops_layer.monitoring.scoring computes them) and their directions
BUILTIN_CLASSIFICATION = {
    "accuracy": HIGHER,
    "precision": HIGHER,
    "recall": HIGHER,
    "f1": HIGHER,
    "roc_auc": HIGHER,
    "log_loss": LOWER,
}
BUILTIN_REGRESSION = {"rmse": LOWER, "mse": LOWER, "mae": LOWER, "r2": HIGHER}
BUILTIN = {**BUILTIN_CLASSIFICATION, **BUILTIN_REGRESSION}
BUILTIN_PROBA = frozenset({"roc_auc", "log_loss"})

# scikit-learn functions that take class scores instead of predicted labels
_SKLEARN_PROBA = frozenset(
    {
        "roc_auc_score",
        "average_precision_score",
        "log_loss",
        "brier_score_loss",
        "top_k_accuracy_score",
        "d2_log_loss_score",
        "d2_brier_score",
    }
)
# ... of which these take the whole probability matrix even for two classes
_SKLEARN_MATRIX = frozenset({"log_loss", "top_k_accuracy_score", "d2_log_loss_score"})
# scikit-learn "metrics" that do not take (y_true, y_pred)
_SKLEARN_EXCLUDED = frozenset(
    {
        "silhouette_score",
        "calinski_harabasz_score",
        "davies_bouldin_score",
        "consensus_score",
        "coverage_error",
        "label_ranking_average_precision_score",
        "label_ranking_loss",
        "ndcg_score",
        "dcg_score",
        "check_scoring",
        "make_scorer",
        "get_scorer",
    }
)


@dataclass(frozen=True)
class MetricSpec:
    """A metric the layer can compute: ``direction`` is ``higher``/``lower`` (None: the function did not say),
    ``proba`` whether it reads class probabilities rather than predicted labels."""

    name: str
    direction: str | None
    proba: bool = False
    matrix: bool = False  # probabilities as the whole (n, classes) matrix even for two classes
    source: str = "builtin"  # builtin | sklearn | custom
    function: Callable[..., Any] | None = None

    @property
    def builtin(self) -> bool:
        return self.source == "builtin"

    def compute(self, y_true: Any, y_pred: Any, proba: Any | None = None, classes: Any | None = None) -> float | None:
        """The metric on one labelled sample; None when it cannot be computed (no probabilities, one class)."""
        import numpy as np

        if self.builtin:
            from mlops_layer.monitoring.scoring import classification_metrics, regression_metrics

            if self.name in BUILTIN_REGRESSION:
                got = regression_metrics(y_true, y_pred, wanted=[self.name])
            else:
                got = classification_metrics(y_true, y_pred, proba, classes=classes, wanted=[self.name])
            return got.get(self.name)
        assert self.function is not None
        if self.proba:
            if proba is None:
                return None
            prob = np.asarray(proba, dtype=float)
            arg: Any = prob
            if prob.ndim == 2 and prob.shape[1] == 2 and not self.matrix:
                arg = prob[:, 1]
            extra: dict[str, Any] = {}
            if self.source == "sklearn" and self.name.startswith("roc_auc") and prob.ndim == 2 and prob.shape[1] > 2:
                extra["multi_class"] = "ovr"
            if self.source == "sklearn" and classes is not None and self.matrix:
                extra["labels"] = list(classes)
            try:
                return float(self.function(y_true, arg, **extra))
            except ValueError:
                return None  # e.g. a single class in y_true
        try:
            return float(self.function(y_true, y_pred))
        except ValueError:
            return None


@functools.cache
def _sklearn_functions() -> dict[str, Callable[..., Any]]:
    import sklearn.metrics as skm

    out: dict[str, Callable[..., Any]] = {}
    for attr in dir(skm):
        if attr.startswith("_") or attr in _SKLEARN_EXCLUDED:
            continue
        if attr.endswith(("_score", "_error", "_loss")) or attr in ("matthews_corrcoef", "log_loss"):
            fn = getattr(skm, attr)
            if callable(fn):
                out[attr] = fn
    return out


def sklearn_metric_names() -> list[str]:
    """Every scikit-learn metric function a name can refer to (with or without its ``_score`` suffix)."""
    return sorted(_sklearn_functions())


def available() -> list[str]:
    """What a metric may be called: the built-ins, then scikit-learn's names; plus any ``module:function``."""
    return [*BUILTIN, *(n for n in sklearn_metric_names() if n not in BUILTIN)]


def _direction_of(attr: str) -> str:
    return LOWER if attr.endswith(("_error", "_loss")) else HIGHER


def resolve(name: str, *, root: Path | None = None) -> MetricSpec:
    """The metric called ``name``; a :class:`ConfigError` listing the available names when there is none.

    ``module:function`` imports a custom function ``f(y_true, y_pred) -> float``; set ``f.greater_is_better``
    (or ``f.direction = "higher"|"lower"``) so rules know its direction, and ``f.needs_proba = True`` for a
    function of class probabilities. ``root`` (the project root) is importable while resolving.
    """
    name = name.strip()
    if name in BUILTIN:
        return MetricSpec(name, BUILTIN[name], proba=name in BUILTIN_PROBA)
    if ":" in name:
        return _custom(name, root)
    functions = _sklearn_functions()
    for candidate in (name, f"{name}_score", f"{name}_error", f"{name}_loss"):
        fn = functions.get(candidate)
        if fn is not None:
            return MetricSpec(
                name,
                _direction_of(candidate),
                proba=candidate in _SKLEARN_PROBA,
                matrix=candidate in _SKLEARN_MATRIX,
                source="sklearn",
                function=fn,
            )
    raise ConfigError(
        f"unknown metric {name!r}",
        hint=(
            f"use one of: {', '.join(BUILTIN)}; or a scikit-learn metric: "
            f"{', '.join(n for n in sklearn_metric_names() if n not in BUILTIN)}; or a custom 'module:function'"
        ),
    )


def _custom(name: str, root: Path | None) -> MetricSpec:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"custom metric {name!r} is not 'module:function'", hint="e.g. my_metrics:cost_weighted")
    added = root is not None and str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"custom metric {name!r}: cannot import module {module_name!r} ({exc})",
            hint="the module must be importable from the project root or the installed packages",
        ) from None
    finally:
        if added:
            sys.path.remove(str(root))
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"custom metric {name!r}: module {module_name!r} has no function {attr!r}")
    direction: str | None = getattr(fn, "direction", None)
    if direction is None and getattr(fn, "greater_is_better", None) is not None:
        direction = HIGHER if fn.greater_is_better else LOWER
    if direction is not None and direction not in DIRECTIONS:
        raise ConfigError(f"custom metric {name!r}: direction {direction!r} is not 'higher' or 'lower'")
    proba = bool(getattr(fn, "needs_proba", False))
    return MetricSpec(name, direction, proba=proba, matrix=proba, source="custom", function=fn)


def direction_of(name: str, *, root: Path | None = None) -> str | None:
    """The direction of a named metric, or None for a name the layer does not know (a self-logged metric)."""
    try:
        return resolve(name, root=root).direction
    except ConfigError:
        return None


def compute_all(
    specs: Iterable[MetricSpec], y_true: Any, y_pred: Any, proba: Any | None = None, classes: Any | None = None
) -> dict[str, float]:
    """Every metric that can be computed on this sample (the built-ins in one pass)."""
    from mlops_layer.monitoring.scoring import classification_metrics, regression_metrics

    specs = list(specs)
    out: dict[str, float] = {}
    builtin = [s.name for s in specs if s.builtin]
    if builtin:
        cls_names = [n for n in builtin if n in BUILTIN_CLASSIFICATION]
        reg_names = [n for n in builtin if n in BUILTIN_REGRESSION]
        if cls_names:
            out.update(classification_metrics(y_true, y_pred, proba, classes=classes, wanted=cls_names))
        if reg_names:
            out.update(regression_metrics(y_true, y_pred, wanted=reg_names))
    for spec in specs:
        if not spec.builtin:
            value = spec.compute(y_true, y_pred, proba, classes)
            if value is not None and value == value:
                out[spec.name] = value
    return out


def resolve_many(names: Sequence[str], *, root: Path | None = None) -> list[MetricSpec]:
    return [resolve(n, root=root) for n in dict.fromkeys(names)]
