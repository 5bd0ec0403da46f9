"""Reading batches for drift checks: CSV or Parquet into pandas, or big Parquet files and folders streamed as Arrow
record batches; errors name the file and say what to do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
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
        raise InputError(
            f"{what} path {p} is a folder, not a CSV or Parquet file",
            hint="a folder of Parquet files is read with --engine stream or --engine spark",
        )
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


# -- large batches: Parquet read as Arrow record batches, one at a time ----------------------------------------------
STREAM_MIN_BYTES = 512 * 2**20  # engine "auto" streams Parquet batches bigger than this on disk (and every folder)
BATCH_ROWS = 1 << 18


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet batch on disk: one file or a folder of them (read recursively; ``_*`` and ``.*`` files skipped)."""

    path: Path
    files: tuple[Path, ...]
    columns: tuple[str, ...]
    n_rows: int
    n_bytes: int

    def describe(self) -> str:
        if len(self.files) == 1 and self.files[0] == self.path:
            return f"{self.path.name} {file_digest(self.path)}"
        return f"{self.path.name}/ ({len(self.files)} Parquet files, {self.n_bytes:,} bytes)"


def _parquet_files(p: Path, what: str) -> list[Path]:
    if p.is_file():
        return [p]
    files = sorted(
        f
        for f in p.rglob("*")
        if f.is_file()
        and not any(part.startswith(("_", ".")) for part in f.relative_to(p).parts)
        and (f.name.lower().endswith(PARQUET_SUFFIXES) or _is_parquet(f))
    )
    if not files:
        raise InputError(f"{what} folder {p} holds no Parquet file", hint="point --current at .parquet files")
    return files


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def parquet_source(path: Path | str, *, what: str = "batch") -> ParquetSource:
    """Open a Parquet file or folder for streaming: its files, column names and row count, from metadata only.

    Every file must have the same column names (the error names the first that does not).
    """
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{what} path {p} does not exist", hint="check the path")
    files = _parquet_files(p, what)
    columns: tuple[str, ...] | None = None
    n_rows = n_bytes = 0
    for f in files:
        try:
            meta = pq.read_metadata(f)
            names = tuple(str(n) for n in pq.read_schema(f).names)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a file that is not Parquet
            raise InputError(f"{what} file {f} is not a readable Parquet file: {str(exc)[:200]}") from None
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"{what} file {f} repeats column name(s) {', '.join(dup)}")
        if columns is None:
            columns = names
        elif set(names) != set(columns):
            raise InputError(
                f"{what} file {f} has columns {', '.join(names)[:200]}; {files[0].name} has {', '.join(columns)[:200]}",
                hint="every file of a batch needs the same columns",
            )
        n_rows += int(meta.num_rows)
        n_bytes += f.stat().st_size
    assert columns is not None
    if n_rows == 0:
        raise InputError(f"{what} {p} has no rows", hint="an empty batch cannot be checked for drift")
    return ParquetSource(p, tuple(files), columns, n_rows, n_bytes)


def iter_parquet_frames(
    source: ParquetSource, columns: list[str], *, batch_rows: int = BATCH_ROWS
) -> Iterator[pd.DataFrame]:
    """The batch's ``columns`` as pandas frames of at most ``batch_rows`` rows, one Arrow record batch at a time.

    Memory is bounded by one record batch plus the row group being decoded, whatever the number of rows.
    """
    import pyarrow.parquet as pq

    for f in source.files:
        try:
            reader = pq.ParquetFile(f)
            for record_batch in reader.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
                yield record_batch.to_pandas(split_blocks=True, self_destruct=True)
        except (OSError, ValueError) as exc:
            raise InputError(f"batch file {f} could not be read: {str(exc)[:200]}") from None


def wants_streaming(current: Path | str, engine: str) -> bool:
    """Whether engine ``auto`` streams this batch: a folder, or a Parquet file over :data:`STREAM_MIN_BYTES`."""
    p = Path(current)
    if engine != "auto" or not p.exists():
        return engine == "stream"
    if p.is_dir():
        return True
    return p.stat().st_size > STREAM_MIN_BYTES and _format(p) == "parquet"
