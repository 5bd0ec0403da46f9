"""mlops_layer: a thin governance layer over MLflow and DVC.

Importing the package is cheap on purpose: nothing here imports mlflow, dvc, pandas or evidently.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
