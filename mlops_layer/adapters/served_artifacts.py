"""The artifact store a governing MLflow server serves, read from inside the server process.

``mlflow server --artifacts-destination DEST`` hands DEST to its workers in ``_MLFLOW_SERVER_ARTIFACT_DESTINATION``;
runs and logged models then live at ``mlflow-artifacts:/<path>`` URIs. Inside the server those URIs are resolved to
``DEST/<path>`` and read directly (a local folder, or DEST's own artifact repository for s3://, gs://, ...), never by
HTTP to the server itself. A version's files are hashed the way a client's download hashes them
(``adapters.mlflow.digest_tree``), so server facts and client claims compare path by path.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from mlops_layer.adapters.mlflow import DOWNLOAD_METADATA, digest_tree, mlflow_errors
from mlops_layer.errors import BackendError, InputError

# set by `mlflow server` for its workers (mlflow.server.constants.ARTIFACTS_DESTINATION_ENV_VAR)
ARTIFACTS_DESTINATION_ENV = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"
_MAX_HOPS = 5  # models:/NAME/VERSION sources pointing at other versions


def served_destination() -> str | None:
    """The ``--artifacts-destination`` of the server this process runs in (None outside ``mlflow server``)."""
    return os.environ.get(ARTIFACTS_DESTINATION_ENV) or None


def _local_path(uri: str) -> Path | None:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None


class ServedArtifacts:
    """The files of registered versions as the server's own artifact store holds them.

    ``client`` is an ``MlflowClient`` on the server's backend store (runs, logged models, versions);
    ``destination`` is the served artifact root (``served_destination()``).
    """

    def __init__(self, client: Any, destination: str | None) -> None:
        self.client = client
        self.destination = destination

    # -- resolving ---------------------------------------------------------------------------------------------
    def concrete(self, uri: str) -> str:
        """``mlflow-artifacts:/p`` (or the proxied http route) -> the destination's own location of ``p``."""
        parsed = urllib.parse.urlparse(uri)
        route = "/mlflow-artifacts/artifacts/"
        if parsed.scheme == "mlflow-artifacts" or (parsed.scheme in ("http", "https") and route in parsed.path):
            if not self.destination:
                raise BackendError(
                    f"{uri} is a served artifact, but this process knows no --artifacts-destination "
                    f"({ARTIFACTS_DESTINATION_ENV} is not set)",
                    hint="run the governing server as `mlflow server --app-name mlops --artifacts-destination ...`",
                )
            rel = parsed.path.lstrip("/") if parsed.scheme == "mlflow-artifacts" else parsed.path.split(route, 1)[1]
            rel = urllib.parse.unquote(rel)
            if any(part == ".." for part in rel.split("/")):
                raise InputError(f"{uri}: a served artifact path may not climb out of the store ('..')")
            return posixpath.join(self.destination.rstrip("/"), rel) if rel else self.destination
        return uri

    def locations(self, source: str, _hops: int = 0) -> list[str]:
        """The concrete locations holding ``source``'s files, in the order a client download layers them."""
        if _hops > _MAX_HOPS:
            raise InputError(f"{source}: too many models:/ references in a row")
        parsed = urllib.parse.urlparse(source)
        if parsed.scheme == "models":
            rest = source[len("models:/") :].strip("/")
            with mlflow_errors(f"resolving {source}"):
                if rest.startswith("m-") and "/" not in rest:
                    return [self.concrete(self.client.get_logged_model(rest).artifact_location)]
                if "@" in rest:
                    name, alias = rest.split("@", 1)
                    mv = self.client.get_model_version_by_alias(name, alias)
                    name, version = mv.name, mv.version
                else:
                    name, _, version = rest.partition("/")
                uri = self.client.get_model_version_download_uri(name, version)
            return self.locations(uri, _hops + 1)
        if parsed.scheme == "runs":
            return self._run_locations(source)
        return [self.concrete(source)]

    def _run_locations(self, source: str) -> list[str]:
        """``runs:/ID/PATH``: the run's own artifacts under PATH, overlaid (as MLflow 3 downloads it) by the files of
        the logged model the run logged under the name PATH's first part."""
        rest = source[len("runs:/") :].strip("/")
        run_id, _, path = rest.partition("/")
        with mlflow_errors(f"resolving {source}"):
            run = self.client.get_run(run_id)
            found = [self.concrete(posixpath.join(run.info.artifact_uri, path) if path else run.info.artifact_uri)]
            if path:
                name, _, inner = path.partition("/")
                token: str | None = None
                while True:
                    page = self.client.search_logged_models(
                        experiment_ids=[run.info.experiment_id], filter_string=f"name = '{name}'", page_token=token
                    )
                    match = next((m for m in page if m.source_run_id == run_id), None)
                    if match is not None:
                        base = match.artifact_location
                        found.append(self.concrete(posixpath.join(base, inner) if inner else base))
                        break
                    token = page.token
                    if not token:
                        break
        return found

    # -- hashing -----------------------------------------------------------------------------------------------
    def files(self, source: str) -> dict[str, str]:
        """``{relative path: "sha256:<hex>"}`` of every file of ``source`` ({} when it holds none); an unreadable
        store raises BackendError, a location outside the served store InputError."""
        merged: dict[str, str] = {}
        for location in self.locations(source):
            self._require_served(source, location)
            merged.update(self._digest_location(location))
        return merged

    def _require_served(self, source: str, location: str) -> None:
        """The server hashes only what it serves: a version's source is the client's to name, and a path or URL
        elsewhere (``/``, another bucket, an internal host) would have the server walk and fetch it on their behalf."""
        dest = self.destination
        if not dest:
            raise InputError(
                f"{source}: this server serves no artifacts (no --artifacts-destination), so it reads no model files",
                hint="run the governing server as `mlflow server --app-name mlops --artifacts-destination ...`",
            )
        here, root = _local_path(location), _local_path(dest)
        if here is not None and root is not None:
            inside = os.path.realpath(here) == os.path.realpath(root) or os.path.realpath(here).startswith(
                os.path.realpath(root).rstrip(os.sep) + os.sep
            )
        else:
            inside = location.rstrip("/") == dest.rstrip("/") or location.startswith(dest.rstrip("/") + "/")
        if not inside or any(part == ".." for part in location.split("/")):
            raise InputError(
                f"{source} lies outside the artifact store this server serves ({dest}): the server hashes only files "
                "it serves",
                hint="log the model through the tracking server (its default artifact root), then register it",
            )

    def digests(self, source: str) -> dict[str, str]:
        """Like :meth:`files`, but a source without files raises too: there is nothing to bind."""
        merged = self.files(source)
        if not merged:
            where = self.destination or "the artifact store"
            raise InputError(f"{source} holds no files in the served artifact store ({where})")
        return merged

    def _digest_location(self, location: str) -> dict[str, str]:
        local = _local_path(location)
        if local is not None:
            try:
                if local.is_file():
                    return {local.name: "sha256:" + hashlib.sha256(local.read_bytes()).hexdigest()}
                return digest_tree(local) if local.is_dir() else {}
            except OSError as exc:
                raise BackendError(f"cannot read {local}: {exc}") from None
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with tempfile.TemporaryDirectory(prefix="mlops-served-") as tmp, mlflow_errors(f"reading {location}"):
            repo: Any = get_artifact_repository(location)
            if not repo.list_artifacts():
                return {}
            out = Path(repo.download_artifacts("", tmp))
            return {k: v for k, v in digest_tree(out).items() if k not in DOWNLOAD_METADATA}
