"""The governing MLflow server: an ``mlflow.app`` (``mlflow server --app-name mlops``) composing MLflow's basic-auth.

The second entrance beside ``cli/``: it authenticates through MLflow, runs the promotion policy on every alias move
as the authenticated user, refuses changes that would rewrite governed evidence, owns the audit trail, and serves
the governance endpoints the CLI calls in team mode. Like ``adapters/``, it may import mlflow (it plugs into it).
"""
