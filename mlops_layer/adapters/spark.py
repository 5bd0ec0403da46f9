"""Spark: the drift gate's mergeable aggregates computed on a Spark DataFrame, one partial aggregate per partition.

Each partition folds its rows into a :class:`~mlops_layer.drift.aggregate.BatchAggregate` inside ``mapInPandas``
(Arrow record batches, never the whole partition at once) and sends back a few KB; the driver merges them and
decides. The data never moves to one place. The only module importing pyspark, an optional extra:
``pip install 'mlops_layer[spark]'`` (the executors need mlops_layer installed too).

The master comes from, in order: the ``master`` argument (``mlops drift --spark-master``), an active SparkSession,
the ``SPARK_MASTER`` environment variable, ``spark.master`` in ``spark-defaults.conf`` (``$SPARK_CONF_DIR`` or
``$SPARK_HOME/conf``), ``--master`` in ``PYSPARK_SUBMIT_ARGS``, else ``local[2]``.
"""

from __future__ import annotations

import os
import pickle
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.drift.aggregate import EXACT_LIMIT, GRID_CELLS, BatchAggregate
from mlops_layer.errors import BackendError, ConfigError, InputError, MlopsError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from mlops_layer.drift.config import DriftConfig
    from mlops_layer.drift.profile import ReferenceProfile
    from mlops_layer.drift.result import DriftResult

DEFAULT_MASTER = "local[2]"
APP_NAME = "mlops-drift"


def _defaults_master() -> str | None:
    conf_dir = os.environ.get("SPARK_CONF_DIR") or (
        str(Path(os.environ["SPARK_HOME"]) / "conf") if os.environ.get("SPARK_HOME") else None
    )
    if conf_dir:
        defaults = Path(conf_dir) / "spark-defaults.conf"
        if defaults.is_file():
            for line in defaults.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.strip().split(None, 1)
                if len(parts) == 2 and parts[0] == "spark.master":
                    return parts[1].strip()
    args = shlex.split(os.environ.get("PYSPARK_SUBMIT_ARGS", ""))
    if "--master" in args and args.index("--master") + 1 < len(args):
        return args[args.index("--master") + 1]
    return None


def resolve_master(master: str | None = None) -> str:
    """The Spark master to use when no session is active (see the module docstring for the order)."""
    return master or os.environ.get("SPARK_MASTER") or _defaults_master() or DEFAULT_MASTER


def _import_pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise ConfigError(
            "the Spark engine needs pyspark, which is not installed",
            hint="pip install 'mlops_layer[spark]' (and Java 17+)",
        ) from None
    return pyspark.sql


def session(master: str | None = None) -> Any:
    """The active SparkSession (when no master is asked for), or a new one on the resolved master."""
    sql = _import_pyspark()
    active = sql.SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    url = resolve_master(master)
    if url.startswith("local"):
        # local workers run this interpreter, where mlops_layer is importable
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        spark = (
            sql.SparkSession.builder.appName(APP_NAME)
            .master(url)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        return spark
    except Exception as exc:  # py4j / JVM start-up failures (no Java, bad master URL)
        raise BackendError(f"could not start Spark on master {url!r}: {str(exc).splitlines()[0][:300]}") from None


def read(spark: Any, source: str | Path) -> Any:
    """A Spark DataFrame of a batch: a Parquet (or CSV) file or folder when ``source`` exists, else a table name."""
    p = Path(source)
    try:
        if p.exists():
            name = p.name.lower()
            if p.is_file() and name.endswith((".csv", ".csv.gz", ".tsv")):
                return spark.read.csv(str(p), header=True, inferSchema=True, sep="\t" if name.endswith(".tsv") else ",")
            return spark.read.parquet(str(p))
        return spark.table(str(source))
    except Exception as exc:
        message = str(exc).splitlines()[0][:300]
        if type(exc).__name__ == "AnalysisException":
            if p.exists():
                raise InputError(f"Spark cannot read batch {p}: {message}") from None
            raise NotFoundError(
                f"batch {source!r} is neither a path nor a table Spark knows: {message}",
                hint="give a Parquet file or folder, or a table name in the session's catalog",
            ) from None
        raise BackendError(f"Spark failed reading {source}: {message}") from None


def _partition_folder(payload: bytes) -> Any:
    """The function run on every partition: fold its Arrow batches into the aggregate, emit it pickled."""

    def fold(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        agg: BatchAggregate = pickle.loads(payload)
        for frame in frames:
            agg.update(frame)
        yield pd.DataFrame({"aggregate": [pickle.dumps(agg, protocol=pickle.HIGHEST_PROTOCOL)]})

    return fold


def aggregate(
    frame: Any,
    profile: ReferenceProfile,
    config: DriftConfig | None = None,
    *,
    exact_limit: int = EXACT_LIMIT,
    grid_cells: int = GRID_CELLS,
) -> BatchAggregate:
    """The merged aggregate of a Spark DataFrame: one partial aggregate per partition via ``mapInPandas``."""
    from pyspark.sql import functions as F

    columns = [str(c) for c in frame.columns]
    template = BatchAggregate.start(profile, config, columns, exact_limit=exact_limit, grid_cells=grid_cells)
    scored = list(template.plan.scored)
    try:
        if not scored:
            template.n_rows = int(frame.count())
            return template
        selected = frame.select(*[F.col(f"`{c}`") for c in scored])
        payload = pickle.dumps(template, protocol=pickle.HIGHEST_PROTOCOL)
        rows = selected.mapInPandas(_partition_folder(payload), schema="aggregate binary").collect()
    except MlopsError:
        raise
    except Exception as exc:  # Py4JJavaError, PythonException from a worker, AnalysisException
        raise BackendError(f"Spark failed computing the drift aggregates: {str(exc).splitlines()[0][:300]}") from None
    for row in rows:
        template.merge(pickle.loads(row["aggregate"]))
    return template


def check(
    profile: ReferenceProfile,
    source: str | Path | Any,
    config: DriftConfig | None = None,
    *,
    master: str | None = None,
    spark: Any = None,
    exact_limit: int = EXACT_LIMIT,
    grid_cells: int = GRID_CELLS,
) -> DriftResult:
    """Check a batch on Spark: ``source`` is a Spark DataFrame, a Parquet/CSV path or a table name."""
    frame = source if hasattr(source, "mapInPandas") else read(spark or session(master), source)
    agg = aggregate(frame, profile, config, exact_limit=exact_limit, grid_cells=grid_cells)
    return agg.result(engine="spark")
