"""Drift through the facade: the project's drift settings, reference profiles, and the drift check of a batch."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer import tags
from mlops_layer.api import _wiring
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, MlopsError, NotFoundError

if TYPE_CHECKING:
    from mlops_layer.adapters.mlflow import MlflowRegistry, VersionInfo
    from mlops_layer.drift.config import DriftConfig
    from mlops_layer.drift.profile import ReferenceProfile
    from mlops_layer.drift.result import DriftResult
    from mlops_layer.governance.cards import ModelCard

DRIFT_RESULT_ARTIFACT = "mlops/drift_result.json"


def drift_config(model: str | None = None, *, settings: Settings | None = None) -> DriftConfig:
    """The drift settings of the project: the ``drift:`` section of governance/policy.yaml (defaults when absent).

    ``models: {NAME: {...}}`` inside it overrides settings per model. Returns a
    :class:`mlops_layer.drift.config.DriftConfig`.
    """
    from mlops_layer.drift.config import load_drift_config

    cfg = _wiring.resolve(settings)
    return load_drift_config(cfg.policy_file, model)


def profile_for_training(
    df: Any,
    *,
    columns: list[str] | None = None,
    exclude: list[str] | None = None,
    data_hash: str | None = None,
    predictions: Any = None,
    prediction_column: str = "prediction",
) -> dict[str, Any]:
    """The reference profile of training features as a JSON-able dict (log it as ``mlops/reference_profile.json``).

    ``predictions`` (the model's predictions on ``df``) are profiled as ``prediction_column`` so later checks can
    compare the prediction distribution too.
    """
    from mlops_layer.drift.profile import build_profile

    frame = df
    if predictions is not None:
        frame = df.assign(
            **{prediction_column: list(predictions) if not hasattr(predictions, "shape") else predictions}
        )
    if columns and predictions is not None and prediction_column not in columns:
        columns = [*columns, prediction_column]
    profile = build_profile(frame, columns=columns, exclude=exclude, data_hash=data_hash, source="training")
    # the profile says which of its columns is the prediction, so nothing else is needed to read it back
    return profile.with_roles({prediction_column: "prediction"} if predictions is not None else {}).to_dict()


def model_card_or_none(cfg: Settings, name: str, warnings: list[str]) -> ModelCard | None:
    """The model card of ``name`` for its column roles (None without one; an unreadable card only warns here)."""
    from mlops_layer.governance.cards import load_card

    try:
        return load_card(cfg.cards_dir, name)
    except NotFoundError:
        return None
    except MlopsError as exc:
        warnings.append(f"the model card could not be read, its column roles were not used: {exc.message}")
        return None


def model_reference(registry: MlflowRegistry, name: str, ref: str | None) -> tuple[VersionInfo, ReferenceProfile]:
    """(version info, reference profile) of a registered version; a clear NotFoundError when it has none."""
    from mlops_layer.drift.profile import ReferenceProfile
    from mlops_layer.lineage import PROFILE_ARTIFACT

    info = registry.resolve(name, ref)
    hint = (
        f"re-run the train stage (`dvc repro`), which logs {PROFILE_ARTIFACT}, and register the new version; "
        f"or compare against the training data file: `mlops drift {name}/{info.version} --current FILE "
        "--reference TRAINING_DATA.csv`"
    )
    data = registry.load_json_artifact(info.run_id, PROFILE_ARTIFACT) if info.run_id else None
    if data is None:
        raise NotFoundError(
            f"{name} v{info.version} has no drift reference profile "
            f"({'its run ' + info.run_id if info.run_id else 'it has no run'} has no artifact {PROFILE_ARTIFACT}; "
            "it was probably logged before drift profiles existed)",
            hint=hint,
        )
    return info, ReferenceProfile.from_dict(data)


def reference_profile(name_ref: str, *, settings: Settings | None = None) -> ReferenceProfile:
    """The reference profile logged with a model version (``NAME@ALIAS``, ``NAME/VERSION``; bare ``NAME`` = newest)."""
    from mlops_layer.lineage import parse_model_ref

    name, ref = parse_model_ref(name_ref)
    _, profile = model_reference(_wiring.registry(_wiring.resolve(settings)), name, ref)
    return profile


def _metric_key(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)[:250]


def _log_drift_run(cfg: Settings, result: DriftResult, name: str, version: str, report: Path | None) -> str:
    """Mirror a model check to MLflow: a run under ``<experiment>-drift`` with per-column metrics and the report."""
    tracking = _wiring.tracking(cfg)
    experiment = tracking.ensure_experiment(f"{cfg.experiment}-drift", cfg.artifact_location)
    run_tags = {
        tags.DRIFT_MODEL: name,
        tags.DRIFT_VERSION: version,
        tags.DRIFT_STATUS: result.status,
        tags.DRIFT_REFERENCE: result.reference or "",
        tags.DRIFT_CURRENT: result.current or "",
    }
    metrics: dict[str, float] = {
        "drift_share": float(result.share),
        "drift_detected": 1.0 if result.drift else 0.0,
        "schema_problems": float(len(result.schema_problems)),
        "n_current": float(result.n_current),
    }
    for col in (*result.columns, *([result.prediction] if result.prediction else [])):
        if col.score is not None:
            metrics[_metric_key(f"{col.name}.{col.method}")] = float(col.score)
            metrics[_metric_key(f"{col.name}.drifted")] = 1.0 if col.drifted else 0.0
    with tracking.run(experiment, f"drift {name} v{version}", run_tags) as run_id:
        tracking.log_metrics(metrics)
        tracking.log_dict(result.to_dict(), DRIFT_RESULT_ARTIFACT)
        if report is not None and report.is_file():
            tracking.log_artifact(report, "mlops")
    return run_id


def drift_check(
    name_ref: str | None,
    current: Path | str | Any,
    *,
    reference: Path | str | Any | None = None,
    columns: list[str] | None = None,
    exclude: list[str] | None = None,
    report: Path | str | None = None,
    prediction_column: str | None = None,
    settings: Settings | None = None,
    config: Any = None,
    log: bool = True,
    progress: Any = None,
    engine: str = "auto",
    spark_master: str | None = None,
) -> DriftResult:
    """Check a batch for drift; returns a :class:`mlops_layer.drift.result.DriftResult` (``passed`` says go/no-go).

    - Model mode: ``name_ref`` = ``NAME@ALIAS`` / ``NAME/VERSION`` (bare ``NAME`` = newest version) and no
      ``reference``: the version's profile (run artifact ``mlops/reference_profile.json``) is the reference.
    - Ad hoc mode: ``reference`` (a CSV/Parquet path, a DataFrame or a ReferenceProfile) is profiled on the fly;
      needs no MLflow when ``name_ref`` is None. With a ``name_ref`` too, the result is recorded for that version.
    ``current`` is a CSV/Parquet path or a DataFrame. ``config`` is a DriftConfig or a plain mapping (default: the
    ``drift:`` section of policy.yaml). With ``log`` (and a model), the result is mirrored to MLflow (a run under
    ``<experiment>-drift``, tags ``mlops.drift.status``/``mlops.drift.checked_at`` on the version) and appended to
    the audit trail as ``drift.checked``; an audit failure stops the check, an MLflow failure only warns.
    ``report`` writes Evidently's HTML report configured with the same methods and thresholds.
    ``progress(message, done, total)`` is called as the work goes on (``total`` None: a phase without a count).

    ``engine``: ``memory`` reads the batch into pandas; ``stream`` reads a Parquet file or folder one Arrow record
    batch at a time into mergeable aggregates (bounded memory); ``spark`` computes the aggregates per partition on
    Spark (``current`` a path, a table name or a Spark DataFrame; master ``spark_master`` or Spark's own settings,
    else ``local[2]``); ``auto`` (default) streams folders and Parquet files over 512 MiB and Spark DataFrames go to
    Spark. Aggregated scores beyond 65,536 rows carry an error bound (see :mod:`mlops_layer.drift.aggregate`).
    """
    from mlops_layer.drift.config import DriftConfig
    from mlops_layer.drift.io import wants_streaming
    from mlops_layer.lineage import parse_model_ref

    if name_ref is None and reference is None:
        raise InputError(
            "name a model version or give a reference file",
            hint="mlops drift NAME@ALIAS --current FILE, or mlops drift --reference TRAIN.csv --current FILE",
        )
    cfg = _wiring.resolve(settings)
    name, ref = parse_model_ref(name_ref) if name_ref else (None, None)
    if config is None:
        drift_cfg = drift_config(name, settings=cfg)
    elif isinstance(config, DriftConfig):
        drift_cfg = config
    else:
        drift_cfg = DriftConfig.from_dict(config, model=name)
    drift_cfg = drift_cfg.with_columns(tuple(columns) if columns else None, tuple(exclude or ()))
    if prediction_column:
        drift_cfg = dataclasses.replace(drift_cfg, prediction_column=prediction_column)
    say = progress or (lambda _m, _d, _t: None)

    if engine not in ("auto", "memory", "stream", "spark"):
        raise InputError(f"unknown drift engine {engine!r}", hint="use auto, memory, stream or spark")
    is_spark_frame = hasattr(current, "mapInPandas")
    if is_spark_frame and engine in ("auto", "spark"):
        engine = "spark"
    elif engine in ("auto", "stream") and isinstance(current, (str, Path)):
        engine = "stream" if wants_streaming(current, engine) else "memory"
    elif engine == "stream":
        raise InputError("--engine stream reads a Parquet file or folder", hint="give --current a path")
    elif engine == "auto":
        engine = "memory"
    if report is not None and engine != "memory":
        raise InputError(
            f"an Evidently report needs the batch in memory, and engine {engine!r} never holds it",
            hint="leave out --report, or write the report from a sample with --engine memory",
        )
    if log and name is not None:
        _wiring.may_post_evidence(cfg)  # team mode: no check, no MLflow run for evidence the server would refuse
    try:
        return _checked(
            cfg, name, ref, current, reference, drift_cfg, columns, exclude, report, log, say, engine, spark_master
        )
    except InputError as exc:  # the input could not be read: an error on record, never a drift verdict
        if log and name is not None:
            seq = _record_unreadable(cfg, name, ref, current, exc)
            if seq is not None:
                exc.hint = f"{exc.hint + '; ' if exc.hint else ''}recorded as a drift check error (audit entry {seq})"
        raise


class _Unreadable(InputError):
    """The batch or reference of a drift check could not be read (missing, corrupt, empty)."""


def _reading(read: Any, *args: Any, **kwargs: Any) -> Any:
    """``read(*args, **kwargs)``, its bad-input errors marked as an unreadable drift input."""
    try:
        return read(*args, **kwargs)
    except InputError as exc:
        raise _Unreadable(exc.message, hint=exc.hint) from None


def _record_unreadable(cfg: Settings, name: str, ref: str | None, current: Any, exc: InputError) -> int | None:
    """Record a model check whose input could not be read as ``drift.checked`` with decision ``error`` (no drift
    verdict: it satisfies and blocks nothing). None when the error was not about the input, or the version is
    unknown."""
    from datetime import datetime, timezone

    from mlops_layer.audit import actions

    if not isinstance(exc, _Unreadable):
        return None
    try:
        info = _wiring.registry(cfg).resolve(name, ref)
    except MlopsError:
        return None
    with _wiring.evidence_trail(cfg) as trail:
        seq: int = trail.append(
            actions.DRIFT_CHECKED,
            subject={"model": name, "version": info.version},
            decision="error",
            reasons=[exc.message],
            details={
                "error": exc.message,
                "current": str(current) if isinstance(current, (str, Path)) else "in-memory frame",
                "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
    return seq


def _checked(
    cfg: Settings,
    name: str | None,
    ref: str | None,
    current: Any,
    reference: Any,
    drift_cfg: DriftConfig,
    columns: list[str] | None,
    exclude: list[str] | None,
    report: Path | str | None,
    log: bool,
    say: Any,
    engine: str,
    spark_master: str | None,
) -> DriftResult:
    """The drift check proper (see :func:`drift_check`); reading errors of its input raise ``_Unreadable``."""
    is_spark_frame = hasattr(current, "mapInPandas")
    from datetime import datetime, timezone

    from mlops_layer.drift import gate
    from mlops_layer.drift.aggregate import check_parquet
    from mlops_layer.drift.io import file_digest, parquet_source, read_table
    from mlops_layer.drift.profile import ReferenceProfile, build_profile

    frame: Any = None
    spark_frame: Any = None
    parquet: Any = None
    if engine == "spark":
        from mlops_layer.adapters import spark as spark_adapter

        say("starting Spark", None, None)
        spark_frame = current if is_spark_frame else spark_adapter.read(spark_adapter.session(spark_master), current)
        batch_columns = [str(c) for c in spark_frame.columns]
        current_desc = "Spark DataFrame" if is_spark_frame else f"{current} (Spark)"
    elif engine == "stream":
        parquet = _reading(parquet_source, current)
        batch_columns = list(parquet.columns)
        current_desc = parquet.describe()
    else:
        say("reading the batch", None, None)
        if isinstance(current, (str, Path)):
            frame = _reading(read_table, current, what="batch")
            current_desc = f"{Path(current).name} {file_digest(current)}"
        else:
            frame = current
            current_desc = "in-memory frame"
        if len(frame) == 0:
            raise _Unreadable("the batch has no rows", hint="an empty batch cannot be checked for drift")
        batch_columns = [str(c) for c in frame.columns]

    registry: Any = None
    info: Any = None
    ref_frame: Any = None
    if reference is not None:
        if isinstance(reference, ReferenceProfile):
            profile = reference
        else:
            say("profiling the reference", None, None)
            if isinstance(reference, (str, Path)):
                ref_frame = _reading(read_table, reference, what="reference")
                digest = file_digest(reference)
                source = f"{Path(reference).name} {digest}"
            else:
                ref_frame, digest, source = reference, None, "in-memory frame"
            wanted = None
            if drift_cfg.include:
                wanted = [c for c in ref_frame.columns if c in drift_cfg.include or c == drift_cfg.prediction_column]
            profile = build_profile(
                ref_frame, columns=wanted, exclude=drift_cfg.exclude, data_hash=digest, source=source
            )
        reference_desc = profile.source or "given profile"
    if name is not None:
        registry = _wiring.registry(cfg)
        if reference is None:
            say("loading the reference profile", None, None)
            info, profile = model_reference(registry, name, ref)
            reference_desc = f"{name} v{info.version} profile" + (
                f" ({profile.data_hash})" if profile.data_hash else ""
            )
        else:
            info = registry.resolve(name, ref)

    notes: list[str] = []
    if name is not None and not columns and not exclude:  # the card's column roles, unless overridden for this run
        card = model_card_or_none(cfg, name, notes)
        if card is not None:
            roles = card.columns
            drop = tuple(c for c in roles.non_features if c != roles.prediction)
            drift_cfg = drift_cfg.with_columns(roles.include or None, drop)
    if drift_cfg.prediction_column is None and profile.prediction_column:
        drift_cfg = dataclasses.replace(drift_cfg, prediction_column=profile.prediction_column)
    pred_col = drift_cfg.prediction_column
    if pred_col and pred_col not in batch_columns:
        # A plain batch carries features only; `mlops monitor` scores it with the model and compares predictions.
        drift_cfg = dataclasses.replace(drift_cfg, prediction_column=None).with_columns(None, (pred_col,))
        notes.append(f"prediction drift not checked: the batch has no {pred_col!r} column (`mlops monitor` scores it)")
    if engine == "spark":
        say("computing the aggregates on Spark", None, None)
        result = spark_adapter.aggregate(spark_frame, profile, drift_cfg).result(engine="spark")
    elif engine == "stream":
        result = check_parquet(
            profile, parquet, drift_cfg, progress=lambda d, t: say("streaming the batch (rows)", d, t)
        )
    else:
        result = gate.check(profile, frame, drift_cfg, progress=lambda d, t, c: say(f"checking {c}", d, t))
    checked_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = dataclasses.replace(
        result,
        warnings=(*result.warnings, *notes),
        model=name,
        version=info.version if info is not None else None,
        reference=reference_desc,
        current=current_desc,
        checked_at=checked_at,
    )
    warnings: list[str] = []
    report_path = Path(report) if report is not None else None
    if report_path is not None:
        from mlops_layer.adapters.evidently_report import write_report

        say("building the Evidently report", None, None)
        written = write_report(
            report_path,
            profile,
            frame,
            result,
            reference=ref_frame,
            drift_share=drift_cfg.drift_share,
            step=lambda m: say(m, None, None),
        )
        # small batches: the gate also needs a significant test, the report shows effect sizes only
        for col in result.columns if not result.significance_tested else ():
            if col.name in written.drifted and written.drifted[col.name] != col.drifted:
                warnings.append(
                    f"{col.name}: the report's sample says {'drift' if written.drifted[col.name] else 'no drift'} "
                    f"({written.methods[col.name]} {written.scores[col.name]:.4g}); the gate, on every row, "
                    f"{'drift' if col.drifted else 'no drift'} ({col.method} {col.score:.4g})"
                )
        result = dataclasses.replace(result, report=str(written.path), report_scores=dict(written.scores))

    if log and name is not None and info is not None:
        from mlops_layer.api._trust import dvc_evidence
        from mlops_layer.audit import actions

        say("recording the result", None, None)
        run_id: str | None = None
        try:
            run_id = _log_drift_run(cfg, result, name, info.version, report_path)
        except MlopsError as exc:
            warnings.append(f"could not log the drift check to MLflow: {exc}")
        drifted = [c.name for c in result.columns if c.drifted]
        evidence, dvc_notes = dvc_evidence(cfg, current)  # the DVC path and md5 (at the governance ref) a rule may name
        warnings.extend(dvc_notes)
        with _wiring.evidence_trail(cfg) as trail:
            seq = trail.append(
                actions.DRIFT_CHECKED,
                subject={"model": name, "version": info.version},
                run_id=run_id,
                decision="passed" if result.passed else "failed",
                reasons=list(result.schema_problems) + ([result.summary()] if result.drift else []),
                details={
                    "passed": result.passed,
                    "status": result.status,
                    "summary": result.summary(),
                    "drift": result.drift,
                    "share": round(result.share, 6),
                    "drift_share": result.drift_share,
                    "drifted_columns": drifted,
                    "schema_problems": list(result.schema_problems)[:50],
                    "prediction_drifted": result.prediction.drifted if result.prediction is not None else None,
                    "n_current": result.n_current,
                    "n_reference": result.n_reference,
                    "reference": result.reference,
                    "current": result.current,
                    "checked_at": checked_at,
                    "model_run_id": info.run_id,
                    "config": drift_cfg.to_dict(),
                    "engine": result.engine,
                    "near_threshold": list(result.near_threshold),
                    **evidence,
                },
            )
        result = dataclasses.replace(result, mlflow_run_id=run_id, audit_seq=seq)
        version_tags = {
            tags.DRIFT_STATUS: result.status,
            tags.DRIFT_CHECKED_AT: checked_at,
            tags.DRIFT_SHARE: f"{result.share:.4f}",
            tags.DRIFT_AUDIT_SEQ: seq,
        }
        if run_id:
            version_tags[tags.DRIFT_RUN] = run_id
        served = hasattr(trail, "server")  # team mode: the server set the version's drift tags itself
        failed = served or _wiring.mirror_tags(
            registry, name, info.version, version_tags, what="the drift status", quiet=True
        )
        if isinstance(failed, str):
            warnings.append(failed)
    if warnings:  # added to the gate's own warnings and notes, never in their place
        result = dataclasses.replace(result, warnings=(*result.warnings, *warnings))
    return result
