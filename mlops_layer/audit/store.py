"""The audit store: appends entries to the hash chain in SQLite or PostgreSQL, one writer at a time.

SQLite (default): WAL, ``synchronous=FULL`` and every append under ``BEGIN IMMEDIATE``, so writers queue on the
database lock and a returned entry is on disk. PostgreSQL: every append takes ``pg_advisory_xact_lock`` at READ
COMMITTED, so the next writer sees the previous one's row. Either way a primary key on ``seq`` and a UNIQUE
``prev_hash`` make a fork impossible even if locking were wrong, and triggers refuse UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from mlops_layer.audit.checkpoints import Checkpoint
from mlops_layer.audit.entry import (
    GENESIS,
    GENESIS_DIGEST,
    AuditEntry,
    build_body,
    entry_digest,
    format_timestamp,
    parse_timestamp,
)
from mlops_layer.errors import BackendError, ConcurrencyError, ConfigError, InputError, NotFoundError

ENTRIES = "mlops_audit_entries"
CHECKPOINTS = "mlops_audit_checkpoints"
# pg_advisory_xact_lock keys (any fixed 64-bit integers; these spell "mlopsAUD" / "mlopsDDL")
_PG_APPEND_LOCK = 0x6D6C6F7073415544
_PG_SCHEMA_LOCK = 0x6D6C6F7073444450
_BATCH = 5000
_APPEND_RETRIES = 5

# (seq, prev_hash, entry_hash, body): hashes as 32 raw bytes, as stored (hex only at the edges, for people)
Row = tuple[int, bytes, bytes, bytes]

_SQLITE_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {ENTRIES} (
        seq INTEGER NOT NULL PRIMARY KEY,
        prev_hash BLOB NOT NULL UNIQUE,
        entry_hash BLOB NOT NULL,
        body BLOB NOT NULL,
        ts VARCHAR(32) NOT NULL,
        action VARCHAR(128) NOT NULL,
        model VARCHAR(255)
    )""",
    f"CREATE INDEX IF NOT EXISTS ix_{ENTRIES}_action ON {ENTRIES} (action)",
    f"CREATE INDEX IF NOT EXISTS ix_{ENTRIES}_model ON {ENTRIES} (model)",
    f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        size INTEGER NOT NULL,
        head CHAR(64) NOT NULL,
        time VARCHAR(32) NOT NULL,
        signature TEXT NOT NULL,
        signer VARCHAR(255),
        key_fingerprint VARCHAR(128),
        UNIQUE (size, head, time, signature)
    )""",
    *(
        f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}
            BEGIN SELECT RAISE(ABORT, 'mlops audit tables are append-only: {op} refused'); END"""
        for table in (ENTRIES, CHECKPOINTS)
        for op in ("UPDATE", "DELETE")
    ),
)

_PG_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {ENTRIES} (
        seq BIGINT NOT NULL PRIMARY KEY,
        prev_hash BYTEA NOT NULL UNIQUE,
        entry_hash BYTEA NOT NULL,
        body BYTEA NOT NULL,
        ts VARCHAR(32) NOT NULL,
        action VARCHAR(128) NOT NULL,
        model VARCHAR(255)
    )""",
    f"CREATE INDEX IF NOT EXISTS ix_{ENTRIES}_action ON {ENTRIES} (action)",
    f"CREATE INDEX IF NOT EXISTS ix_{ENTRIES}_model ON {ENTRIES} (model)",
    f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        id BIGSERIAL PRIMARY KEY,
        size BIGINT NOT NULL,
        head CHAR(64) NOT NULL,
        time VARCHAR(32) NOT NULL,
        signature TEXT NOT NULL,
        signer VARCHAR(255),
        key_fingerprint VARCHAR(128),
        UNIQUE (size, head, time, signature)
    )""",
    """CREATE OR REPLACE FUNCTION mlops_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'mlops audit tables are append-only: %% on %% refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$""",
    *(
        stmt
        for table in (ENTRIES, CHECKPOINTS)
        for stmt in (
            f"""CREATE OR REPLACE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION mlops_audit_append_only()""",
            f"""CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION mlops_audit_append_only()""",
        )
    ),
)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class AuditStore:
    """The hash-chained trail in one database. Open with :meth:`open`; use as a context manager or call close()."""

    def __init__(self, engine: Any, url: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self.url = url
        self.dialect: str = engine.dialect.name
        self._clock = clock or _utcnow
        self._param = "?" if self.dialect == "sqlite" else "%s"
        # Automatic checkpoints: with a key, closing a store that appended signs the new head (one signature).
        self.checkpoint_key: Path | None = None
        self.checkpoint_signers: Path | None = None
        self.appended = 0
        # Whether the trail ended at a checkpoint of our own key when this store first appended: entries someone
        # appended without the key must not be swept under the next automatic checkpoint.
        self.tail_was_anchored: bool | None = None

    # -------------------------------------------------------------------------------------------- lifecycle

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], datetime] | None = None) -> AuditStore:
        """Open (and create when needed) the trail at ``url``: ``sqlite:///path.db`` or ``postgresql+psycopg://...``."""
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, SQLAlchemyError

        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(
                f"audit_url {url!r} is not a database URL",
                hint="use sqlite:///.mlops/audit.db or postgresql+psycopg://user@host/db",
            ) from None
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            database = parsed.database or ""
            memory = database in ("", ":memory:")
            if not memory:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"connect_args": {"timeout": 60.0, "check_same_thread": False}}
            if memory:
                from sqlalchemy.pool import StaticPool

                kwargs["poolclass"] = StaticPool
            engine = create_engine(parsed, **kwargs)

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own handling is wrong)
                cur = dbapi_conn.cursor()
                if not memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA mmap_size=268435456")  # verification reads the whole file: skip read() copies
                cur.execute("PRAGMA synchronous=FULL")
                cur.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Any) -> None:
                write = conn.get_execution_options().get("mlops_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        elif backend == "postgresql":
            if parsed.get_driver_name() != "psycopg":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = create_engine(parsed, isolation_level="READ COMMITTED", pool_pre_ping=True)
        else:
            raise ConfigError(
                f"audit_url {url!r}: unsupported database {backend!r}",
                hint="use sqlite:///path.db or postgresql+psycopg://...",
            )
        store = cls(engine, url, clock=clock)
        try:
            store._create_schema()
        except SQLAlchemyError as exc:
            engine.dispose()
            raise BackendError(
                f"cannot open the audit trail at {parsed.render_as_string(hide_password=True)}: {_short(exc)}",
                hint="check audit_url (mlops.yaml or MLOPS_AUDIT_URL) and that the database is reachable",
            ) from exc
        return store

    def _create_schema(self) -> None:
        if self.dialect == "sqlite":
            with self._write() as conn:
                for stmt in _SQLITE_DDL:
                    conn.exec_driver_sql(stmt)
            return
        with self._engine.begin() as conn:
            present = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE tgname IN "
                f"('{ENTRIES}_no_change', '{ENTRIES}_no_truncate', '{CHECKPOINTS}_no_change', "
                f"'{CHECKPOINTS}_no_truncate')"
            ).scalar_one()
            if present == 4:
                return
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_SCHEMA_LOCK})")
            for stmt in _PG_DDL:
                conn.exec_driver_sql(stmt)

    def close(self) -> None:
        try:
            if self.checkpoint_key is not None and self.appended and self.tail_was_anchored:
                self.checkpoint_now(self.checkpoint_key, self.checkpoint_signers)
        finally:
            self._engine.dispose()

    def tail_anchored_by(self, key: Path) -> bool:
        """Whether the current head is covered by a checkpoint that ``key`` signed (an empty trail is)."""
        from mlops_layer import signing
        from mlops_layer.audit.checkpoints import NAMESPACE

        size, head = self.head()
        if size == 0:
            return True
        public = signing.public_key(key)
        return any(
            signing.signed_with(cp.payload(), cp.signature, NAMESPACE, public)
            for cp in self.checkpoints()
            if cp.size == size and cp.head == head
        )

    def checkpoint_now(self, key: Path, allowed_signers: Path | None) -> Checkpoint:
        """Sign the current (size, head) with ``key`` and store the checkpoint: the tail is anchored again."""
        from mlops_layer.audit.checkpoints import make_checkpoint

        size, head = self.head()
        checkpoint = make_checkpoint(size, head, _utcnow(), key, allowed_signers)
        self.add_checkpoint(checkpoint)
        self.appended = 0
        return checkpoint

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditStore({self._engine.url.render_as_string(hide_password=True)!r})"

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction holding the trail's single-writer lock."""
        with self._engine.connect() as raw:
            conn = raw.execution_options(mlops_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_APPEND_LOCK})")
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise BackendError(f"reading the audit trail failed: {_short(exc)}") from exc

    # -------------------------------------------------------------------------------------------- writing

    def append(
        self,
        action: str,
        *,
        actor: str,
        subject: Mapping[str, Any] | None = None,
        git_commit: str | None = None,
        dvc_hashes: Mapping[str, str] | None = None,
        run_id: str | None = None,
        decision: str | None = None,
        reasons: Sequence[str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry and return it once it is durably committed.

        The timestamp is the clock's UTC time, but never earlier than the previous entry's: when the clock went
        backwards the previous timestamp is reused and the real clock reading is kept in the body as ``clock``.
        """
        from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

        fields: dict[str, Any] = dict(
            subject=subject,
            git_commit=git_commit,
            dvc_hashes=dvc_hashes,
            run_id=run_id,
            decision=decision,
            reasons=reasons,
            details=details,
        )
        # Validate and normalise before taking the lock: bad input must never hold up other writers.
        build_body(action, actor=actor, timestamp=_utcnow(), **fields)
        if self.checkpoint_key is not None and self.tail_was_anchored is None:
            self.tail_was_anchored = self.tail_anchored_by(self.checkpoint_key)
        model = subject.get("model") if subject else None
        if model is not None:
            model = str(model)
        last_error: Exception | None = None
        for attempt in range(_APPEND_RETRIES):
            try:
                with self._write() as conn:
                    last = conn.exec_driver_sql(
                        f"SELECT seq, entry_hash, body FROM {ENTRIES} ORDER BY seq DESC LIMIT 1"
                    ).first()
                    if last is None:
                        seq, prev, prev_ts = 1, GENESIS_DIGEST, None
                    else:
                        seq, prev = int(last[0]) + 1, _bytes(last[1])
                        prev_ts = _timestamp_of(_bytes(last[2]))
                    now = self._clock()
                    clock: datetime | None = None
                    if prev_ts is not None and now < prev_ts:
                        now, clock = prev_ts, now
                    body = build_body(action, actor=actor, timestamp=now, clock=clock, **fields)
                    digest = entry_digest(seq, prev, body)
                    entry = AuditEntry(seq, prev.hex(), digest.hex(), body)
                    p = self._param
                    conn.exec_driver_sql(
                        f"INSERT INTO {ENTRIES} (seq, prev_hash, entry_hash, body, ts, action, model) "
                        f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
                        (seq, prev, digest, body, format_timestamp(now), action, model),
                    )
                self.appended += 1
                return entry
            except IntegrityError as exc:
                # Only reachable if the lock failed: the constraints refused a fork. Retry from the new head.
                last_error = exc
            except OperationalError as exc:
                if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                    raise BackendError(f"appending to the audit trail failed: {_short(exc)}") from exc
                last_error = exc
            except SQLAlchemyError as exc:
                raise BackendError(f"appending to the audit trail failed: {_short(exc)}") from exc
            time.sleep(0.05 * (attempt + 1))
        raise ConcurrencyError(
            f"could not append {action!r} to the audit trail after {_APPEND_RETRIES} attempts: {_short(last_error)}",
            hint="another writer holds the trail; retry",
        )

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a signed checkpoint (idempotent)."""
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        p = self._param
        try:
            with self._write() as conn:
                conn.exec_driver_sql(
                    f"INSERT INTO {CHECKPOINTS} (size, head, time, signature, signer, key_fingerprint) "
                    f"VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                    (
                        checkpoint.size,
                        checkpoint.head,
                        checkpoint.time,
                        checkpoint.signature,
                        checkpoint.signer,
                        checkpoint.key,
                    ),
                )
        except IntegrityError:
            return
        except SQLAlchemyError as exc:
            raise BackendError(f"storing the checkpoint failed: {_short(exc)}") from exc

    # -------------------------------------------------------------------------------------------- reading

    def head(self) -> tuple[int, str]:
        """(number of entries, hash of the last entry); ``(0, GENESIS)`` when the trail is empty."""
        with self._read() as conn:
            row = conn.exec_driver_sql(f"SELECT seq, entry_hash FROM {ENTRIES} ORDER BY seq DESC LIMIT 1").first()
        return (0, GENESIS) if row is None else (int(row[0]), _bytes(row[1]).hex())

    def get(self, seq: int) -> AuditEntry:
        """The entry with sequence number ``seq``; NotFoundError if there is none."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise InputError(f"audit sequence number must be a positive integer, got {seq!r}")
        with self._read() as conn:
            row = conn.exec_driver_sql(
                f"SELECT seq, prev_hash, entry_hash, body FROM {ENTRIES} WHERE seq = {self._param}", (seq,)
            ).first()
        if row is None:
            size, _ = self.head()
            raise NotFoundError(f"audit entry {seq} does not exist (the trail has {size} entries)")
        return _entry(row)

    def entries(
        self,
        *,
        model: str | None = None,
        action: str | Sequence[str] | None = None,
        since: datetime | None = None,
        after_seq: int = 0,
    ) -> Iterator[AuditEntry]:
        """Entries in sequence order, filtered by subject model, action(s) and time; read in batches.

        The indexed columns only narrow the scan: every entry is re-checked against its hashed body, so a tampered
        column can hide an entry from this view (``verify --deep`` reports that) but never forge one into it.
        """
        actions = [action] if isinstance(action, str) else list(action) if action is not None else None
        since_text = format_timestamp(since) if since is not None else None
        p = self._param
        where = [f"seq > {p}"]
        params: list[Any] = []
        if model is not None:
            where.append(f"model = {p}")
            params.append(model)
        if actions is not None:
            if not actions:
                return
            where.append(f"action IN ({', '.join([p] * len(actions))})")
            params.extend(actions)
        if since_text is not None:
            where.append(f"ts >= {p}")
            params.append(since_text)
        sql = (
            f"SELECT seq, prev_hash, entry_hash, body FROM {ENTRIES} WHERE {' AND '.join(where)} "
            f"ORDER BY seq LIMIT {_BATCH}"
        )
        cursor = after_seq
        while True:
            with self._read() as conn:
                rows = conn.exec_driver_sql(sql, (cursor, *params)).all()
            for row in rows:
                entry = _entry(row)
                if _matches(entry, model, actions, since):
                    yield entry
            if len(rows) < _BATCH:
                return
            cursor = int(rows[-1][0])

    def rows(self, *, after_seq: int = 0, upto_seq: int | None = None, batch: int = 50000) -> Iterator[Row]:
        """Raw ``(seq, prev_hash, entry_hash, body)`` tuples in sequence order, straight from the driver (fast)."""
        p = self._param
        limit = f" AND seq <= {int(upto_seq)}" if upto_seq is not None else ""
        sql = (
            f"SELECT seq, prev_hash, entry_hash, body FROM {ENTRIES} WHERE seq > {p}{limit} ORDER BY seq LIMIT {batch}"
        )
        cursor = after_seq
        while True:
            with self._read() as conn:
                cur = conn.connection.driver_connection.cursor()
                try:
                    cur.execute(sql, (cursor,))
                    chunk = cur.fetchall()
                finally:
                    cur.close()
            if self.dialect != "sqlite":
                chunk = [(s, bytes(ph), bytes(eh), bytes(b)) for s, ph, eh, b in chunk]
            yield from chunk
            if len(chunk) < batch:
                return
            cursor = int(chunk[-1][0])

    def index_rows(self, *, after_seq: int = 0, batch: int = 20000) -> Iterator[tuple[int, str, str, str | None]]:
        """The query columns ``(seq, ts, action, model)`` (not hashed), for ``verify --deep`` to compare with bodies."""
        p = self._param
        sql = f"SELECT seq, ts, action, model FROM {ENTRIES} WHERE seq > {p} ORDER BY seq LIMIT {batch}"
        cursor = after_seq
        while True:
            with self._read() as conn:
                chunk = [tuple(r) for r in conn.exec_driver_sql(sql, (cursor,)).all()]
            yield from chunk  # type: ignore[misc]
            if len(chunk) < batch:
                return
            cursor = int(chunk[-1][0])

    def checkpoints(self) -> list[Checkpoint]:
        """Checkpoints stored in the database, oldest first."""
        with self._read() as conn:
            rows = conn.exec_driver_sql(
                f"SELECT id, size, head, time, signature, signer, key_fingerprint FROM {CHECKPOINTS} ORDER BY id"
            ).all()
        return [
            Checkpoint(
                size=int(r[1]),
                head=str(r[2]),
                time=str(r[3]),
                signature=str(r[4]),
                signer=r[5],
                key=r[6],
                source=f"db:{r[0]}",
            )
            for r in rows
        ]

    @contextlib.contextmanager
    def raw_connection(self) -> Iterator[Any]:
        """A SQLAlchemy connection in a transaction, for tests and benchmarks that need to reach under the API."""
        with self._engine.connect() as conn, conn.begin():
            yield conn


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(int(row[0]), _bytes(row[1]).hex(), _bytes(row[2]).hex(), _bytes(row[3]))


def _bytes(value: Any) -> bytes:
    """Column value as bytes: SQLite may hand back TEXT for a BLOB someone rewrote by hand."""
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)


def _timestamp_of(body: bytes) -> datetime | None:
    try:
        raw = json.loads(body).get("timestamp")
        return parse_timestamp(str(raw)) if raw else None
    except (ValueError, AttributeError):
        return None


def _matches(entry: AuditEntry, model: str | None, actions: Sequence[str] | None, since: datetime | None) -> bool:
    try:
        if model is not None and entry.model != model:
            return False
        if actions is not None and entry.action not in actions:
            return False
        return not (since is not None and entry.timestamp < since)
    except (ValueError, KeyError):
        return False


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
