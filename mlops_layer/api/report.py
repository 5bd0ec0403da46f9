"""Report pages: gather a model's page (trail + registry + card) and write the static HTML, logged to MLflow too."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, MlopsError, NotFoundError

REPORT_ARTIFACT_DIR = "mlops/report"


@dataclass(frozen=True)
class ReportResult:
    """The pages written (``index`` is the inventory when one was written) and where they were logged."""

    out_dir: Path
    pages: tuple[Path, ...]
    index: Path | None
    models: tuple[str, ...]
    size_bytes: int
    mlflow_run_id: str | None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "pages": [str(p) for p in self.pages],
            "index": str(self.index) if self.index else None,
            "models": list(self.models),
            "size_bytes": self.size_bytes,
            "mlflow_run_id": self.mlflow_run_id,
            "warnings": list(self.warnings),
        }


def _audit_head(cfg: Settings, store: Any) -> Any:
    from mlops_layer.audit.checkpoints import merge, read_checkpoint_file
    from mlops_layer.report.page import audit_head

    file_cps = read_checkpoint_file(cfg.checkpoint_file)
    return audit_head(store, merge(store.checkpoints(), file_cps.checkpoints), cfg.allowed_signers)


def _registry_facts(cfg: Settings, name: str, notes: list[str]) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Version facts and aliases from MLflow; a registry that cannot answer leaves a note, not a failure."""
    import json

    from mlops_layer.lineage import TAG_LINEAGE
    from mlops_layer.report.page import RegistryFacts

    try:
        registry = _wiring.registry(cfg)
        versions = registry.versions(name)
        aliases = registry.get_aliases(name)
    except NotFoundError:
        notes.append(f"{name} is not in the MLflow registry (deleted, or registered elsewhere): the trail alone speaks")
        return {}, None
    except MlopsError as exc:
        notes.append(f"the MLflow registry could not be read ({exc.message}): the page shows the trail alone")
        return {}, None
    facts: dict[str, Any] = {}
    for info in versions:
        parent = None
        raw = info.tags.get(TAG_LINEAGE)
        if raw:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                p = json.loads(raw).get("parent")
                if isinstance(p, dict) and p.get("model") and p.get("version"):
                    parent = f"{p['model']}/{p['version']}"
        facts[str(info.version)] = RegistryFacts(
            version=str(info.version),
            aliases=tuple(sorted(a for a, v in aliases.items() if v == str(info.version))),
            parent=parent,
            created=info.creation_time,
        )
    return facts, aliases


def _model_page(cfg: Settings, store: Any, name: str, audit: Any, *, use_registry: bool, now: datetime) -> Any:
    from mlops_layer.governance.cards import load_card, validate_model_name
    from mlops_layer.report.page import build_model_page

    validate_model_name(name)
    entries = list(store.entries(model=name))
    notes: list[str] = []
    facts, aliases = _registry_facts(cfg, name, notes) if use_registry else ({}, None)
    if not entries and not facts:
        raise NotFoundError(
            f"neither the audit trail nor the registry knows model {name!r}",
            hint="check the name (`mlops status` lists the models)",
        )
    card = None
    card_error = None
    try:
        card = load_card(cfg.cards_dir, name)
    except MlopsError as exc:
        card_error = exc.message
    return build_model_page(
        name,
        entries,
        generated_at=now,
        audit=audit,
        card=card,
        card_error=card_error,
        registry=facts,
        registry_aliases=aliases,
        notes=notes,
    )


def model_page(name: str, *, use_registry: bool = True, settings: Settings | None = None) -> Any:
    """The data of ``name``'s page (a ``report.page.ModelPage``), from the trail, the card and the registry."""
    cfg = _wiring.resolve(settings)
    with _wiring.audit_store(cfg) as store:
        return _model_page(
            cfg, store, name, _audit_head(cfg, store), use_registry=use_registry, now=datetime.now(timezone.utc)
        )


def _model_names(cfg: Settings, store: Any, use_registry: bool, notes: list[str]) -> list[str]:
    from mlops_layer.audit import actions

    names = {e.model for e in store.entries(action=actions.MODEL_REGISTERED) if e.model}
    if use_registry:
        try:
            names.update(_wiring.registry(cfg).model_names())
        except MlopsError as exc:
            notes.append(f"the MLflow registry could not be read ({exc.message}): models from the trail only")
    return sorted(names)


def inventory_page(*, use_registry: bool = True, settings: Settings | None = None) -> tuple[Any, list[Any]]:
    """The inventory (a ``report.page.InventoryPage``) and the model pages it links to."""
    from mlops_layer.report.page import InventoryPage, inventory_row, page_file_name

    cfg = _wiring.resolve(settings)
    now = datetime.now(timezone.utc)
    notes: list[str] = []
    with _wiring.audit_store(cfg) as store:
        audit = _audit_head(cfg, store)
        pages = [
            _model_page(cfg, store, name, audit, use_registry=use_registry, now=now)
            for name in _model_names(cfg, store, use_registry, notes)
        ]
    rows = tuple(inventory_row(p, page_file=page_file_name(p.name)) for p in pages)
    return InventoryPage(generated_at=now, models=rows, audit=audit, notes=tuple(notes)), pages


def _write_atomic(path: Path, text: str) -> int:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader never sees half a page."""
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # a report is for reading: not the 0600 of a temporary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(data)


def _log_pages(cfg: Settings, name: str | None, paths: list[Path], problems: list[str]) -> str | None:
    """Log the pages as artifacts of a run under ``<experiment>-reports``; a failure only warns."""
    try:
        tracking = _wiring.tracking(cfg)
        experiment = tracking.ensure_experiment(f"{cfg.experiment}-reports", cfg.artifact_location)
        tags = {"mlops.report.model": name or "*inventory*"}
        with tracking.run(experiment, f"report {name or 'inventory'}", tags) as run_id:
            for path in paths:
                tracking.log_artifact(path, REPORT_ARTIFACT_DIR)
        return run_id
    except MlopsError as exc:
        message = f"the report was written but could not be logged to MLflow: {exc.message}"
        problems.append(message)
        warnings.warn(message, stacklevel=3)
        return None


def rendered_pages(
    name: str | None = None, *, use_registry: bool = True, settings: Settings | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """(the models, ``[(file name, HTML)]``): ``NAME.html``, or every model's page and ``index.html`` (no name).

    What ``report`` writes; the governing server answers team-mode clients with it (``GET /mlops/api/v1/report``).
    """
    from mlops_layer.report.html import render_inventory, render_model_page
    from mlops_layer.report.page import page_file_name

    cfg = _wiring.resolve(settings)
    if name is not None:
        pages = [model_page(name, use_registry=use_registry, settings=cfg)]
    else:
        inventory, pages = inventory_page(use_registry=use_registry, settings=cfg)
    rendered = [(page_file_name(p.name), render_model_page(p)) for p in pages]
    if name is None:
        rendered.append(("index.html", render_inventory(inventory)))
    return [p.name for p in pages], rendered


def _page_name(file_name: str) -> str:
    """A page's file name as a server sent it: a plain ``*.html`` name, never a path."""
    if file_name != Path(file_name).name or not file_name.endswith(".html") or file_name.startswith("."):
        raise InputError(f"the governing server sent a report page named {file_name!r}: not a plain .html file name")
    return file_name


def report(
    name: str | None = None,
    *,
    out: Path | str | None = None,
    log_to_mlflow: bool = True,
    use_registry: bool = True,
    settings: Settings | None = None,
) -> ReportResult:
    """Write ``NAME.html`` (one model) or ``index.html`` plus every model's page (no name) into ``out``.

    Default ``out``: ``reports/`` at the project root. The pages are static and self-contained (plotly.js inlined,
    no network). With ``log_to_mlflow`` they are logged as artifacts of a run in ``<experiment>-reports``.
    """
    cfg = _wiring.resolve(settings)
    out_dir = Path(out) if out is not None else cfg.root / "reports"
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a folder", hint="give a folder for the HTML pages")
    written: list[Path] = []
    size = 0
    if (server := _wiring.governing_server(cfg)) is not None:  # team mode: the pages are rendered from its trail
        models, files = server.report_pages(name, use_registry=use_registry)
    else:
        models, files = rendered_pages(name, use_registry=use_registry, settings=cfg)
    index = out_dir / "index.html" if name is None else None
    for file_name, text in files:
        path = out_dir / _page_name(file_name)
        size += _write_atomic(path, text)
        written.append(path)
    problems: list[str] = []
    run_id = _log_pages(cfg, name, written, problems) if log_to_mlflow else None
    return ReportResult(
        out_dir=out_dir,
        pages=tuple(written),
        index=index,
        models=tuple(models),
        size_bytes=size,
        mlflow_run_id=run_id,
        warnings=tuple(problems),
    )
