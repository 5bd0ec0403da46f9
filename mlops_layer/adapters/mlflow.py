"""MLflow adapter: tracking runs and the model registry (aliases and tags, never stages).

The only module that imports mlflow; every MlflowException leaves here as one of our errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.errors import BackendError, InputError, MlopsError, NotFoundError
from mlops_layer.tags import DVC_MD5 as TAG_DVC_MD5
from mlops_layer.tags import DVC_PATH as TAG_DVC_PATH
from mlops_layer.tags import DVC_SIZE as TAG_DVC_SIZE

# MLflow writes "View run ... at: URL" to stdout when a run on an HTTP server ends: `--json` output must stay JSON
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
_UNSET: Any = object()  # not looked up yet

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Fail fast on an unreachable server instead of MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version as the layer sees it."""

    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    creation_time: datetime | None = None
    last_updated_time: datetime | None = None
    description: str | None = None
    model_id: str | None = None


@dataclass(frozen=True)
class RunInfo:
    """One MLflow run: what the registry's versions point at."""

    run_id: str
    experiment_id: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact_uri: str
    start_time: datetime | None
    user: str | None


def _ts(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """For an http(s) tracking server, answer quickly whether it is there (MLflow itself retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - the configured server
            resp.read(64)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise BackendError(
            f"MLflow tracking server {uri} does not answer ({getattr(exc, 'reason', exc)})",
            hint="start it (`mlflow server ...`) or set tracking_uri in mlops.yaml / MLFLOW_TRACKING_URI",
        ) from None


@contextlib.contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Translate MLflow's exceptions into the project's error tree."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlopsError:
        raise
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        msg = str(getattr(exc, "message", exc)).splitlines()[0][:300]
        if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise NotFoundError(f"{what}: {msg}", hint="check the name with `mlops status`") from None
        if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"):
            raise InputError(f"{what}: {msg}") from None
        raise BackendError(f"{what}: MLflow failed: {msg}") from exc
    except (OSError, ConnectionError) as exc:
        raise BackendError(f"{what}: MLflow backend unreachable: {exc}") from exc
    except Exception as exc:
        # sqlalchemy / requests errors surface here from the stores
        name = type(exc).__name__
        if name in ("OperationalError", "ConnectionError", "MaxRetryError", "Timeout", "ReadTimeout"):
            raise BackendError(f"{what}: MLflow backend failed: {name}: {str(exc)[:300]}") from exc
        raise


def use_uris(tracking_uri: str, registry_uri: str | None = None) -> None:
    """Point MLflow's fluent API at our stores without leaking them into this process's environment.

    ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI "so subprocesses inherit it"; a `dvc repro` we start
    later must read the project's own settings instead, so the variables are put back as they were.
    """
    import mlflow

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(registry_uri or tracking_uri)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class MlflowRegistry:
    """The model registry and read access to runs, behind one small interface.

    Also satisfies the audit trail's ``RegistryView`` protocol (``model_names``, ``get_aliases``, ``list_versions``).
    """

    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        check_reachable(self.tracking_uri)
        if self.registry_uri != self.tracking_uri:
            check_reachable(self.registry_uri)
        self._client: MlflowClient | None = None
        self._store: Any = _UNSET

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            with mlflow_errors(f"opening MLflow at {self.tracking_uri}"):
                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        return self._client

    def _sql_store(self) -> Any:
        """The registry's SQL store when the registry URI is a database (the governing server's case), else None.

        ``MlflowClient`` reads the whole registered model — every version with its tags — to list its aliases, and
        again before every alias set and version-tag write (to refuse prompts). On a model with many versions that
        dominated a governed alias move. The SQL store answers aliases from the alias table alone and writes tags and
        aliases directly, as MLflow's own REST handlers do. REST and file stores keep the client's path.
        """
        if self._store is _UNSET:
            self._store = None
            with contextlib.suppress(Exception):  # a private accessor: any change in MLflow falls back to the client
                store = self.client._get_registry_client().store  # type: ignore[no-untyped-call]
                if type(store).__module__.startswith("mlflow.store.model_registry.sqlalchemy"):
                    self._store = store
        return self._store

    def _sql_aliases(self, name: str) -> dict[str, str] | None:
        """alias -> version from the alias table (None: no SQL store, or the model is not there)."""
        store = self._sql_store()
        if store is None:
            return None
        from mlflow.exceptions import MlflowException

        try:
            from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelAlias as Row

            with store.ManagedSessionMaker() as session:
                rows = store._get_query(session, Row).filter(Row.name == name).all()
                if not rows:
                    store._get_registered_model(session, name)  # one row, no versions: raises when it is not there
                return {str(r.alias): str(r.version) for r in rows}
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                self._store = None  # not the answer we know how to read: the client's path from now on
            return None  # the client's path raises the right error
        except Exception:
            self._store = None  # MLflow's internals moved: the client's path from now on
            return None

    # -- reading the registry --------------------------------------------------------------------------------
    @staticmethod
    def _version(mv: Any) -> VersionInfo:
        return VersionInfo(
            name=mv.name,
            version=str(mv.version),
            run_id=mv.run_id or None,
            source=mv.source or "",
            tags=dict(mv.tags or {}),
            aliases=tuple(mv.aliases or ()),
            creation_time=_ts(mv.creation_timestamp),
            last_updated_time=_ts(mv.last_updated_timestamp),
            description=mv.description or None,
            model_id=getattr(mv, "model_id", None) or None,
        )

    def model_names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        with mlflow_errors("listing registered models"):
            while True:
                page = self.client.search_registered_models(max_results=1000, page_token=token)
                names.extend(m.name for m in page)
                token = page.token
                if not token:
                    break
        return sorted(names)

    def model_exists(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise BackendError(f"reading model '{name}': {exc}") from exc
        return True

    def _require_model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                known = ", ".join(self.model_names()[:10]) or "none registered yet"
                raise NotFoundError(f"model '{name}' is not registered (known: {known})") from None
            raise BackendError(f"reading model '{name}': {exc}") from exc

    def get_aliases(self, name: str) -> dict[str, str]:
        """alias -> version of one model ({} when the model has none)."""
        fast = self._sql_aliases(name)
        if fast is not None:
            return fast
        model = self._require_model(name)
        return {str(k): str(v) for k, v in dict(model.aliases or {}).items()}

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of a model in one query, oldest first."""
        self._require_model(name)
        out: list[VersionInfo] = []
        token: str | None = None
        escaped = name.replace("'", "\\'")
        with mlflow_errors(f"listing versions of '{name}'"):
            while True:
                page = self.client.search_model_versions(f"name='{escaped}'", max_results=10000, page_token=token)
                out.extend(self._version(mv) for mv in page)
                token = page.token
                if not token:
                    break
        return sorted(out, key=lambda v: int(v.version))

    def list_versions(self, name: str) -> list[str]:
        return [v.version for v in self.versions(name)]

    def get_version(self, name: str, version: str | int) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self.client.get_model_version(name, str(version)))
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                self._require_model(name)  # only on failure: reading the whole model costs a query per call
                have = ", ".join(self.list_versions(name)) or "none"
                raise NotFoundError(f"model '{name}' has no version {version} (versions: {have})") from None
            raise BackendError(f"reading {name} v{version}: {exc}") from exc

    def get_by_alias(self, name: str, alias: str) -> VersionInfo | None:
        version = self.get_aliases(name).get(alias)
        return None if version is None else self.get_version(name, version)

    def resolve(self, name: str, ref: str | int | None) -> VersionInfo:
        """A version by number or by alias; ``None`` means the newest version."""
        if ref is None:
            versions = self.versions(name)
            if not versions:
                raise NotFoundError(f"model '{name}' has no versions yet")
            return versions[-1]
        ref = str(ref)
        if ref.isdigit():
            return self.get_version(name, ref)
        info = self.get_by_alias(name, ref)
        if info is None:
            have = ", ".join(f"@{a}" for a in sorted(self.get_aliases(name))) or "none"
            raise NotFoundError(f"model '{name}' has no alias '@{ref}' (aliases: {have})")
        return info

    # -- changing the registry -------------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        with mlflow_errors(f"setting alias {name}@{alias} -> v{version}"):
            store = self._sql_store()
            if store is not None:
                store.set_registered_model_alias(name, alias, str(version))
            else:
                self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        with mlflow_errors(f"deleting alias {name}@{alias}"):
            self.client.delete_registered_model_alias(name, alias)

    def set_version_tags(self, name: str, version: str | int, tags: Mapping[str, Any]) -> None:
        with mlflow_errors(f"tagging {name} v{version}"):
            store = self._sql_store()
            if store is not None:
                from mlflow.entities.model_registry import ModelVersionTag

                for key, value in tags.items():
                    store.set_model_version_tag(name, str(version), ModelVersionTag(key, str(value)))  # type: ignore[no-untyped-call]
                return
            for key, value in tags.items():
                self.client.set_model_version_tag(name, str(version), key, str(value))

    def register(self, name: str, model_uri: str, run_id: str | None, tags: Mapping[str, str]) -> VersionInfo:
        """Create (if needed) the registered model and a new version from ``model_uri`` carrying ``tags``."""
        from mlflow.exceptions import MlflowException

        with mlflow_errors(f"registering '{name}' from {model_uri}"):
            try:
                self.client.create_registered_model(name)
            except MlflowException as exc:
                if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise
            # A LoggedModel URI (models:/m-...) names its model id; the registry links the version to it.
            rest = model_uri[len("models:/") :] if model_uri.startswith("models:/") else ""
            model_id = rest if rest.startswith("m-") and "/" not in rest else None
            mv = self.client.create_model_version(
                name,
                source=model_uri,
                run_id=run_id,
                tags={k: str(v) for k, v in tags.items()},
                model_id=model_id,
            )
        return self._version(mv)

    def versions_of_run(self, run_id: str) -> bool:
        """Whether any registered model version was created from ``run_id``."""
        with mlflow_errors(f"looking up versions of run {run_id}"):
            return bool(self.client.search_model_versions(f"run_id = '{run_id}'", max_results=1))

    def versions_of_logged_model(self, model_id: str) -> bool:
        """Whether any registered model version points at the logged model ``model_id`` (``models:/m-...``)."""
        with mlflow_errors(f"looking up versions of logged model {model_id}"):
            return bool(self.client.search_model_versions(f"source_path = 'models:/{model_id}'", max_results=1))

    def set_run_tag(self, run_id: str, key: str, value: str) -> None:
        with mlflow_errors(f"tagging run {run_id}"):
            self.client.set_tag(run_id, key, value)

    def logged_model_run(self, model_id: str) -> str | None:
        """The run that logged the model ``m-<id>`` (``models:/m-<id>``), or None."""
        with mlflow_errors(f"reading logged model {model_id}"):
            model = self.client.get_logged_model(model_id)
        return str(model.source_run_id) if model.source_run_id else None

    # -- runs ------------------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunInfo:
        with mlflow_errors(f"reading run {run_id}"):
            run = self.client.get_run(run_id)
        return RunInfo(
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            status=run.info.status,
            params=dict(run.data.params),
            metrics={k: float(v) for k, v in run.data.metrics.items()},
            tags=dict(run.data.tags),
            artifact_uri=run.info.artifact_uri,
            start_time=_ts(run.info.start_time),
            user=run.info.user_id or None,
        )

    def run_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Latest metrics of many runs in as few queries as the store allows (chunks of 100 ids)."""
        ids = [r for r in dict.fromkeys(run_ids) if r]
        if not ids:
            return {}
        out: dict[str, dict[str, float]] = {}
        with mlflow_errors("reading run metrics"):
            experiments = [e.experiment_id for e in self.client.search_experiments(max_results=50000)]
            for start in range(0, len(ids), 100):
                chunk = ids[start : start + 100]
                quoted = ", ".join(f"'{r}'" for r in chunk)
                token: str | None = None
                while True:
                    page = self.client.search_runs(
                        experiments,
                        filter_string=f"attributes.run_id IN ({quoted})",
                        max_results=1000,
                        page_token=token,
                    )
                    for run in page:
                        out[run.info.run_id] = {k: float(v) for k, v in run.data.metrics.items()}
                    token = page.token
                    if not token:
                        break
        return out

    def load_json_artifact(self, run_id: str, path: str) -> dict[str, Any] | None:
        """A JSON artifact of a run, or None when the run has no such artifact."""
        from mlflow.exceptions import MlflowException

        folder = path.rpartition("/")[0] or None
        with mlflow_errors(f"listing artifacts of run {run_id}"):
            present = {a.path for a in self.client.list_artifacts(run_id, folder)}
        if path not in present:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(run_id, path, tmp)
            except (MlflowException, OSError) as exc:
                raise BackendError(f"downloading {path} of run {run_id}: {exc}") from exc
            try:
                data = json.loads(Path(local).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BackendError(f"artifact {path} of run {run_id} is not readable JSON: {exc}") from exc
        return data if isinstance(data, dict) else {"value": data}

    def artifact_digests(self, model_uri: str) -> dict[str, str]:
        """``{relative path: "sha256:<hex>"}`` of every file of a logged model (what an in-toto subject names)."""
        with tempfile.TemporaryDirectory() as tmp:
            return digest_tree(_download(model_uri, self.tracking_uri, self.registry_uri, Path(tmp)))

    def run_url(self, run_id: str, experiment_id: str | None = None) -> str:
        """Where a person finds the run: a server URL for http stores, otherwise the run id for `mlflow ui`."""
        if self.tracking_uri.startswith(("http://", "https://")) and experiment_id:
            return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"runs:/{run_id}"


class MlflowTracking:
    """Writing side: experiments, governed runs, params/metrics/artifacts/datasets, logged models."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        check_reachable(tracking_uri)
        import mlflow

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        with mlflow_errors(f"configuring MLflow at {tracking_uri}"):
            use_uris(tracking_uri, registry_uri)

    def ensure_experiment(self, name: str, artifact_location: str | None = None) -> str:
        mlflow = self._mlflow
        with mlflow_errors(f"opening experiment '{name}'"):
            exp = mlflow.get_experiment_by_name(name)
            if exp is not None:
                return str(exp.experiment_id)
            location = None
            if artifact_location:
                location = artifact_location if "://" in artifact_location else Path(artifact_location).as_uri()
            return str(mlflow.create_experiment(name, artifact_location=location))

    @contextlib.contextmanager
    def run(
        self, experiment_id: str, run_name: str | None, tags: Mapping[str, str], run_id: str | None = None
    ) -> Iterator[str]:
        mlflow = self._mlflow
        from mlflow.tracking import fluent

        # Reopening a run (registration, monitoring) must not depend on the experiment a user's script last chose
        # with mlflow.set_experiment: MLflow refuses to resume a run of another experiment than the active one.
        chosen = fluent._active_experiment_id
        if run_id:
            fluent._active_experiment_id = None
        try:
            with mlflow_errors("starting an MLflow run"):
                active = mlflow.start_run(
                    run_id=run_id,
                    experiment_id=None if run_id else experiment_id,
                    run_name=run_name,
                    tags=dict(tags),
                )
        finally:
            if run_id:
                fluent._active_experiment_id = chosen
        try:
            yield active.info.run_id
        except BaseException:
            with contextlib.suppress(Exception):
                mlflow.end_run(status="FAILED")
            raise
        with mlflow_errors("ending the MLflow run"):
            mlflow.end_run(status="FINISHED")

    def log_params(self, params: Mapping[str, Any]) -> None:
        with mlflow_errors("logging params"):
            # MLflow caps a param value at 6000 characters.
            self._mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp_ms: int | None = None
    ) -> None:
        with mlflow_errors("logging metrics"):
            client = self._mlflow.MlflowClient()
            run = self._mlflow.active_run()
            if run is None:
                raise BackendError("logging metrics: no active MLflow run")
            if timestamp_ms is None and step is None:
                self._mlflow.log_metrics(dict(metrics))
            else:
                from mlflow.entities import Metric

                ts = timestamp_ms or int(datetime.now(timezone.utc).timestamp() * 1000)
                client.log_batch(
                    run.info.run_id, metrics=[Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
                )

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with mlflow_errors("setting run tags"):
            self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        with mlflow_errors(f"logging artifact {artifact_file}"):
            self._mlflow.log_dict(dict(data), artifact_file)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        with mlflow_errors(f"logging artifact {path}"):
            self._mlflow.log_artifact(str(path), artifact_path)

    def log_dvc_dataset(self, path: str, md5: str, size: int | None, context: str) -> None:
        """Log a DVC-tracked file or folder as an MLflow dataset input whose digest is the DVC md5."""
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

        with mlflow_errors(f"logging dataset {path}"):
            source = LocalArtifactDatasetSource(path)
            dataset = MetaDataset(source=source, name=path, digest=md5[:36])  # type: ignore[abstract]
            tags = {TAG_DVC_MD5: md5, TAG_DVC_PATH: path}
            if size is not None:
                tags[TAG_DVC_SIZE] = str(size)
            self._mlflow.log_input(dataset, context=context, tags=tags)

    def log_sklearn_model(
        self, model: Any, name: str, pip_requirements: Sequence[str], input_example: Any = None
    ) -> str:
        """Log a scikit-learn model; explicit pip requirements avoid ~8 s of inference. Returns the model URI."""
        return self.log_model(
            model, name, flavor="sklearn", pip_requirements=pip_requirements, input_example=input_example
        )

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        flavor: str | None = None,
        pip_requirements: Sequence[str] | None = None,
        input_example: Any = None,
    ) -> str:
        """Log a model with its MLflow flavor (detected from the object unless ``flavor`` is given); returns its URI.

        Requirements are always explicit (the flavor's own package pinned to the installed version, unless given):
        MLflow's inference imports the model in a subprocess and costs ~8 s per log.
        """
        kind = flavor or detect_flavor(model)
        reqs = list(pip_requirements) if pip_requirements is not None else default_requirements(kind)
        kwargs: dict[str, Any] = {"name": name, "pip_requirements": reqs, "input_example": input_example}
        if kind == "sklearn" or (kind == "lightgbm" and hasattr(model, "get_params")):
            # cloudpickle, not skops: importing skops costs ~2 s on every cold load (`mlops monitor`). Pickle's
            # risk is met by `load_model`, which refuses files whose sha256 differs from what was registered.
            kwargs["serialization_format"] = "cloudpickle"
        module = _flavor_module(kind)
        with mlflow_errors(f"logging the model ({kind} flavor)"):
            info = (
                module.log_model(python_model=model, **kwargs)
                if kind == "pyfunc"
                else module.log_model(model, **kwargs)
            )
        return str(info.model_uri)


# Flavors whose native model the layer loads for class probabilities (``predict_proba``) and feature names.
NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm")
# Top-level package of a model object -> MLflow flavor module name (``mlflow.<flavor>``).
_PACKAGE_FLAVORS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "torch": "pytorch",
    "keras": "keras",
    "tensorflow": "tensorflow",
    "statsmodels": "statsmodels",
    "prophet": "prophet",
    "spacy": "spacy",
    "transformers": "transformers",
    "sentence_transformers": "sentence_transformers",
    "onnx": "onnx",
    "h2o": "h2o",
}
# Flavor -> the distributions its requirements pin (first one installed wins).
_FLAVOR_PACKAGES = {
    "sklearn": (("scikit-learn",),),
    "xgboost": (("xgboost", "xgboost-cpu"), ("scikit-learn",)),
    "lightgbm": (("lightgbm",), ("scikit-learn",)),
    "pyfunc": (("cloudpickle",),),
    "catboost": (("catboost",),),
    "pytorch": (("torch",), ("cloudpickle",)),
    "keras": (("keras",),),
    "tensorflow": (("tensorflow",),),
    "statsmodels": (("statsmodels",),),
}


def detect_flavor(model: Any) -> str:
    """The MLflow flavor of a model object: its package (sklearn, xgboost, lightgbm, ...) or ``pyfunc`` for a
    ``mlflow.pyfunc.PythonModel``; an InputError naming the type otherwise."""
    from mlflow.pyfunc.model import PythonModel

    if isinstance(model, PythonModel):
        return "pyfunc"
    package = type(model).__module__.split(".", 1)[0]
    flavor = _PACKAGE_FLAVORS.get(package)
    if flavor is None:
        raise InputError(
            f"cannot tell the MLflow flavor of a {type(model).__module__}.{type(model).__name__}",
            hint="pass flavor='<mlflow flavor>' to log_model, or wrap the model in an mlflow.pyfunc.PythonModel",
        )
    return flavor


def default_requirements(flavor: str) -> list[str]:
    """Pinned requirements of a flavor from the installed distributions, plus pandas (every pyfunc input)."""
    from importlib.metadata import PackageNotFoundError, version

    out: list[str] = []
    for alternatives in _FLAVOR_PACKAGES.get(flavor, ((flavor,),)):
        for dist in alternatives:
            try:
                out.append(f"{dist}=={version(dist)}")
                break
            except PackageNotFoundError:
                continue
    return [*out, "pandas<3"]


def _flavor_module(flavor: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"mlflow.{flavor}")
    except ImportError as exc:
        raise InputError(f"MLflow has no flavor {flavor!r} here ({exc})", hint="install the flavor's package") from None


# Files MLflow writes into a model folder when it is downloaded, different for each registered version.
DOWNLOAD_METADATA = frozenset({"registered_model_meta"})


def digest_tree(folder: Path) -> dict[str, str]:
    """``{relative path: "sha256:<hex>"}`` of every file under ``folder`` (MLflow's download metadata left out)."""
    import hashlib

    def sha256(path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as fh:  # streamed: a model file may be larger than the memory
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    return {
        path.relative_to(folder).as_posix(): "sha256:" + sha256(path)
        for path in sorted(p for p in folder.rglob("*") if p.is_file())
        if path.relative_to(folder).as_posix() not in DOWNLOAD_METADATA
    }


def _download(model_uri: str, tracking_uri: str, registry_uri: str | None, dest: Path) -> Path:
    import mlflow

    check_reachable(tracking_uri)
    with mlflow_errors(f"downloading {model_uri}"):
        use_uris(tracking_uri, registry_uri)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dest)))


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model: the native object when its flavor is one the layer knows (scikit-learn API: ``predict``,
    ``predict_proba``), otherwise MLflow's pyfunc model; and the input columns it expects when it says."""

    model: Any
    flavor: str  # the flavor the object was loaded with ("pyfunc" when no native one applies)
    flavors: tuple[str, ...]  # every flavor the model's MLmodel file lists
    feature_names: tuple[str, ...] | None = None

    @property
    def native(self) -> bool:
        return self.flavor != "pyfunc"


def load_model(
    model_uri: str,
    tracking_uri: str,
    registry_uri: str | None = None,
    *,
    expected_digests: Mapping[str, str] | None = None,
) -> Any:
    """Load a model by URI (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/...``): the native object for
    scikit-learn, XGBoost and LightGBM models, MLflow's pyfunc model for any other flavor.

    With ``expected_digests`` (recorded at registration), every file is checked first: a model whose files changed
    in the artifact store since it was registered is never unpickled.
    """
    return load_serving(model_uri, tracking_uri, registry_uri, expected_digests=expected_digests).model


def load_serving(
    model_uri: str,
    tracking_uri: str,
    registry_uri: str | None = None,
    *,
    expected_digests: Mapping[str, str] | None = None,
) -> LoadedModel:
    """Like :func:`load_model`, with the flavor and the expected input columns (see :class:`LoadedModel`)."""
    import atexit
    import shutil

    from mlops_layer.errors import AuditIntegrityError

    tmp = tempfile.mkdtemp(prefix="mlops-model-")
    keep = False
    try:
        local = _download(model_uri, tracking_uri, registry_uri, Path(tmp))
        if expected_digests:
            actual = digest_tree(local)
            wanted = {p: d for p, d in expected_digests.items() if p not in DOWNLOAD_METADATA}
            changed = sorted(p for p in set(wanted) | set(actual) if wanted.get(p) != actual.get(p))
            if changed:
                raise AuditIntegrityError(
                    f"the files of {model_uri} differ from what was registered: {', '.join(changed)}",
                    hint="the artifact store was changed after registration; restore it or register a new version",
                )
        with mlflow_errors(f"loading model {model_uri}"):
            loaded = _load_local(local)
        # a pyfunc model may read its artifacts lazily from the folder: keep it until the process ends
        keep = not loaded.native
        if keep:
            atexit.register(shutil.rmtree, tmp, True)
        return loaded
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _load_local(local: Path) -> LoadedModel:
    import importlib

    from mlflow.models import Model

    meta = Model.load(str(local))
    flavors = tuple(f for f in meta.flavors if f != "python_function")
    schema = meta.signature.inputs if meta.signature is not None else None
    signature_names = tuple(schema.input_names()) if schema is not None and schema.has_input_names() else None
    for flavor in NATIVE_FLAVORS:
        if flavor not in flavors:
            continue
        native = importlib.import_module(f"mlflow.{flavor}").load_model(str(local))
        if not hasattr(native, "get_params"):  # e.g. a raw xgboost Booster: predict needs a DMatrix, use pyfunc
            break
        names = getattr(native, "feature_names_in_", None)
        if names is None and flavor == "lightgbm" and getattr(native, "feature_name_", None) is not None:
            names = native.feature_name_
        feature_names = tuple(str(n) for n in names) if names is not None else signature_names
        return LoadedModel(native, flavor, flavors, feature_names)
    import mlflow.pyfunc

    return LoadedModel(mlflow.pyfunc.load_model(str(local)), "pyfunc", flavors, signature_names)


def logged_model_run(model_uri: str, tracking_uri: str, registry_uri: str | None = None) -> str | None:
    """The run that logged the model at ``model_uri`` (``runs:/ID/...``, ``models:/m-...``, ``models:/NAME/VERSION``),
    or None when MLflow knows none."""
    from mlflow import MlflowClient

    if model_uri.startswith("runs:/"):
        return model_uri[len("runs:/") :].split("/", 1)[0] or None
    if not model_uri.startswith("models:/"):
        return None
    rest = model_uri[len("models:/") :]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
    with mlflow_errors(f"reading {model_uri}"):
        if rest.startswith("m-") and "/" not in rest:
            return client.get_logged_model(rest).source_run_id or None
        if "@" in rest:
            name, alias = rest.split("@", 1)
            return client.get_model_version_by_alias(name, alias).run_id or None
        name, _, version = rest.partition("/")
        return client.get_model_version(name, version).run_id or None if version else None


class MonitoringTracker:
    """Each monitored batch as a point in time: one MLflow run per serving version in experiment ``monitoring/<model>``,
    metrics logged with step = batch number and the batch's timestamp, so the MLflow UI charts them
    (``monitoring.monitor.TrackingPort``)."""

    def __init__(self, tracking_uri: str, registry_uri: str | None, artifact_location: str | None, model: str) -> None:
        self.model = model
        self.experiment = f"monitoring/{model}"
        self.artifact_location = artifact_location
        self.tracking = MlflowTracking(tracking_uri, registry_uri)
        self.registry = MlflowRegistry(tracking_uri, registry_uri)

    def log_batch(
        self,
        *,
        version: str,
        run_id: str | None,
        seq: int,
        timestamp: datetime,
        metrics: Mapping[str, float],
        summary: Mapping[str, Any],
        promoted: Mapping[str, Any] | None,
    ) -> tuple[str, str]:
        from mlops_layer import tags as _tags

        experiment_id = self.tracking.ensure_experiment(self.experiment, self.artifact_location)
        run_tags = {_tags.MONITORING_MODEL: self.model, _tags.MONITORING_VERSION: version}
        if run_id is not None:
            try:
                return self._log(experiment_id, run_id, version, run_tags, seq, timestamp, metrics, summary, promoted)
            except BackendError:
                run_id = None  # the remembered run is gone (store reset): start a new one
        return self._log(experiment_id, None, version, run_tags, seq, timestamp, metrics, summary, promoted)

    def _log(
        self,
        experiment_id: str,
        run_id: str | None,
        version: str,
        run_tags: dict[str, str],
        seq: int,
        timestamp: datetime,
        metrics: Mapping[str, float],
        summary: Mapping[str, Any],
        promoted: Mapping[str, Any] | None,
    ) -> tuple[str, str]:
        with self.tracking.run(experiment_id, f"{self.model} v{version}", run_tags, run_id=run_id) as rid:
            if run_id is None and promoted:
                self.tracking.log_params({f"promoted.{k}": v for k, v in promoted.items()})
            self.tracking.log_metrics(metrics, step=seq, timestamp_ms=int(timestamp.timestamp() * 1000))
            self.tracking.log_dict(summary, f"batches/{seq:06d}.json")
        return rid, self.registry.run_url(rid, experiment_id)

    def attach(self, run_id: str, path: Path, seq: int) -> None:
        with self.tracking.run("", None, {}, run_id=run_id):
            self.tracking.log_artifact(path, f"reports/batch-{seq:06d}")
