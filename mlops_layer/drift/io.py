"""Reading batches for drift checks: CSV or Parquet into pandas, with errors that name the file and say what to do."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_layer.errors import InputError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    with path.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet"
    raise InputError(
        f"{path} is not a CSV or Parquet file (suffix {path.suffix or 'none'!r})",
        hint="export the batch as .csv or .parquet",
    )


def read_table(path: Path | str, *, what: str = "batch", columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file; refuses a missing, unreadable or empty file with a clear :class:`InputError`."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{what} file {p} does not exist", hint="check the path")
    if p.is_dir():
        raise InputError(f"{what} path {p} is a folder, not a CSV or Parquet file")
    kind = _format(p)
    try:
        if kind == "parquet":
            frame = pd.read_parquet(p, columns=columns)
        else:
            sep = "\t" if p.name.lower().endswith(".tsv") else ","
            frame = pd.read_csv(p, sep=sep, low_memory=False, usecols=columns)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} file {p} is empty", hint="a batch needs a header row and at least one row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{what} file {p} is not readable as CSV: {str(exc).splitlines()[0][:200]}",
            hint="check the file is comma-separated text with one header row",
        ) from None
    except Exception as exc:  # pyarrow's errors (ArrowInvalid is a ValueError), usecols naming absent columns
        if kind == "parquet" and (isinstance(exc, (ValueError, OSError)) or type(exc).__module__.startswith("pyarrow")):
            raise InputError(f"{what} file {p} is not a readable Parquet file: {str(exc)[:200]}") from None
        if isinstance(exc, ValueError):
            raise InputError(f"{what} file {p}: {str(exc)[:200]}") from None
        raise
    if len(frame) == 0:
        raise InputError(f"{what} file {p} has no rows", hint="an empty batch cannot be checked for drift")
    if frame.columns.duplicated().any():
        dup = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InputError(f"{what} file {p} repeats column name(s) {', '.join(dup)}")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def file_digest(path: Path | str) -> str:
    """``sha256:<hex>`` of a file's bytes (what the audit trail records about a batch)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"
