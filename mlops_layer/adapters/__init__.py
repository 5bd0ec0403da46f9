"""Adapters: the only modules that import mlflow, dvc, git and evidently, and translate their errors into ours."""
