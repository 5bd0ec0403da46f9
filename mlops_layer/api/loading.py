"""Loading models through the facade: every path checks the sha256 digests recorded for the files before unpickling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import InputError

if TYPE_CHECKING:
    from mlops_layer.adapters.mlflow import LoadedModel


def load_model(ref: str, *, allow_unverified: bool = False, settings: Settings | None = None) -> Any:
    """Load a model: ``NAME/VERSION``, ``NAME@ALIAS`` or an MLflow model URI (``models:/...``, ``runs:/...``).

    Every path checks the files against sha256 digests before unpickling: a registered version against what its
    first registration fixed, a governed run's model (``runs:/RUN/model``, ``models:/m-ID``) against what
    ``log_model`` recorded (AuditIntegrityError when they differ). A URI with no recorded digests is refused
    (InputError) unless ``allow_unverified=True``.

    scikit-learn, XGBoost and LightGBM models come back as their native objects (``predict_proba``), any other
    flavor as MLflow's pyfunc model.
    """
    from mlops_layer.adapters.mlflow import load_model as _load
    from mlops_layer.api._trust import run_digests, unverified_load_refused
    from mlops_layer.api.governance import check_names
    from mlops_layer.lineage import parse_model_ref

    cfg = _wiring.resolve(settings)
    registry = _wiring.registry(cfg)
    if ref.startswith("models:/"):
        ref = ref[len("models:/") :]
        if "/" not in ref and "@" not in ref:  # models:/m-<id>: a logged model, not a registered version
            run_id = registry.logged_model_run(ref)
            digests = run_digests(registry.get_run(run_id).tags) if run_id else None
            if digests is None and not allow_unverified:
                raise unverified_load_refused(f"models:/{ref}")
            return _load(f"models:/{ref}", cfg.tracking_uri, cfg.registry_uri, expected_digests=digests)
    elif ref.startswith("runs:/"):
        run_id, _, path = ref[len("runs:/") :].partition("/")
        digests = run_digests(registry.get_run(run_id).tags) if path.strip("/") == "model" else None
        if digests is None and not allow_unverified:
            raise unverified_load_refused(ref)
        return _load(ref, cfg.tracking_uri, cfg.registry_uri, expected_digests=digests)
    elif ":/" in ref:
        if not allow_unverified:
            raise unverified_load_refused(ref)
        return _load(ref, cfg.tracking_uri, cfg.registry_uri)
    name, version = parse_model_ref(ref)
    if version is None:
        raise InputError(f"model reference {ref!r} names no version", hint="use NAME/VERSION or NAME@ALIAS")
    check_names(name)
    info = registry.resolve(name, version)
    return load_registered(cfg, info.name, info.version, allow_unverified=allow_unverified).model


def registered_digests(cfg: Settings, name: str, version: str) -> dict[str, str] | None:
    """The per-file sha256 the first registration of ``name`` v``version`` fixed (None: none recorded)."""
    from mlops_layer.api._trust import recorded_digests

    if (server := _wiring.governing_server(cfg)) is not None:  # team mode (`mlops monitor`): the server's record
        from mlops_layer.audit.registrations import registration_records

        found = [
            e
            for action in ("model.registered", "model.snapshot")  # a migration's snapshot may hold the digests
            for e in server.audit_entries(model=name, action=action, since=None, limit=None)
        ]
        record = registration_records(sorted(found, key=lambda e: e.seq)).get((name, str(version)))
        return dict(record.artifacts) if record is not None and record.artifacts else None
    with _wiring.audit_store(cfg) as trail:
        return recorded_digests(trail, name, str(version))


def load_registered(cfg: Settings, name: str, version: str, *, allow_unverified: bool = False) -> LoadedModel:
    """Load a registered version of any flavor after checking its files against the digests its first registration
    fixed: the native model when the layer knows its flavor, pyfunc otherwise, and its input columns."""
    from mlops_layer.adapters.mlflow import load_serving
    from mlops_layer.api._trust import unverified_load_refused

    expected = registered_digests(cfg, name, version)
    if expected is None and not allow_unverified:
        raise unverified_load_refused(f"models:/{name}/{version}")
    return load_serving(f"models:/{name}/{version}", cfg.tracking_uri, cfg.registry_uri, expected_digests=expected)
