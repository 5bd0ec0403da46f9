"""What the governing server checks in its own stores instead of taking a client's word for it.

- At registration, the sha256 of every file of the version's source, read where the backend store says the files
  are (``mlflow-artifacts:/`` resolved to the server's own ``--artifacts-destination``): recorded as the version's frozen digests in the ``model.registered`` entry,
  beside the registrant's claimed digests (kept as a claim) and how the two differ.
- At promotion, the version's files read again from that store and compared with the frozen digests.
- For ``lineage_clean``'s data-in-remote check, the recorded DVC md5s looked up in the DVC remote named by the
  server config's ``dvc_remote`` (not checked when none is configured or it cannot be reached).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mlops_layer import tags
from mlops_layer.errors import BackendError, MlopsError
from mlops_layer.server.config import ServerConfig


def served_artifacts(registry: Any) -> Any:
    """The artifact store this server process serves (``adapters.served_artifacts.ServedArtifacts``)."""
    from mlops_layer.adapters.served_artifacts import ServedArtifacts, served_destination

    return ServedArtifacts(registry.client, served_destination())


def registration_files(registry: Any, model_version: Mapping[str, Any]) -> dict[str, Any]:
    """The details a registration through the server records about the version's files.

    ``artifacts`` are the server's facts (what every later check compares with); ``artifacts_claimed`` is what the
    client sent as ``mlops.claims.model_files``; ``artifacts_claim_problem`` says how the two differ and
    ``artifacts_not_computed`` why the server has no facts (both refuse a promotion, ``governance.digests``).
    """
    from mlops_layer.governance.digests import claim_problem, not_computed, parsed_claim

    source = str(model_version.get("source") or "")
    claim = next(
        (
            str(t.get("value"))
            for t in model_version.get("tags") or ()
            if isinstance(t, dict) and t.get("key") == tags.CLAIMED_FILES
        ),
        None,
    )
    details: dict[str, Any] = {"artifacts_by": "server"}
    fact: dict[str, str] | None = None
    if not source:
        details["artifacts_not_computed"] = not_computed("the version names no source")
    else:
        try:
            fact = served_artifacts(registry).digests(source)
        except MlopsError as exc:
            details["artifacts_not_computed"] = not_computed(exc.message)
        except Exception as exc:  # noqa: BLE001 - any store failure: the registration is recorded, fail closed
            details["artifacts_not_computed"] = not_computed(f"{type(exc).__name__}: {str(exc)[:300]}")
    details["artifacts"] = fact or {}
    if claim is not None:
        details["artifacts_claimed"] = parsed_claim(claim)
        problem = claim_problem(claim, fact)
        if problem:
            details["artifacts_claim_problem"] = problem
    return details


def file_check(registry: Any) -> Callable[[str, Mapping[str, str]], list[str]]:
    """For the promotion flow: the files of a source whose sha256 in the served store differs from ``expected``
    (changed, added and removed files alike)."""

    def check(source: str, expected: Mapping[str, str]) -> list[str]:
        try:
            actual = served_artifacts(registry).files(source)
        except MlopsError:
            raise
        except Exception as exc:  # noqa: BLE001 - an artifact store's own error: no decision without the files
            raise BackendError(f"reading the files of {source}: {type(exc).__name__}: {str(exc)[:300]}") from exc
        return sorted(p for p in set(expected) | set(actual) if expected.get(p) != actual.get(p))

    return check


def lineage_probe(config: ServerConfig) -> Any:
    """The ``lineage_clean`` probe of the server: recorded lineage, plus the DVC remote when one is configured."""
    from mlops_layer.governance.workspace import recorded_probe

    if not config.dvc_remote:
        why = "not checked: the governing server has no DVC remote configured (dvc_remote in its config)"
        return recorded_probe(None, why)
    from mlops_layer.adapters.dvc import DvcRemote

    return recorded_probe(DvcRemote(config.dvc_remote), "")


def bound_identity(store: Any, info: Any) -> Any:
    """What an approval of ``info`` binds on the server: the version and the sha256 of the files the server recorded
    at its registration (``governance.candidates.bound_identity``), the same identity a promotion checks."""
    from mlops_layer.audit import actions
    from mlops_layer.audit.registrations import registration_records
    from mlops_layer.governance.candidates import bound_identity as bind

    entries = store.entries(model=info.name, action=[actions.MODEL_REGISTERED, actions.MODEL_SNAPSHOT])
    return bind(info, registration_records(entries).get((info.name, str(info.version))))
