"""Promotion locks that hold across uvicorn workers and server hosts: PostgreSQL session advisory locks.

One lock per model+alias, keyed by the first 8 bytes of a sha256. The lock lives in a dedicated connection; if the
worker dies, PostgreSQL ends the session and releases it. A SQLite audit URL (a one-host demo) falls back to the
machine-local file lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlops_layer.errors import BackendError, ConcurrencyError

LockFactory = Callable[[str, str], "contextlib.AbstractContextManager[None]"]


def lock_key(kind: str, model: str, alias: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock``."""
    digest = hashlib.sha256(f"mlops:{kind}:{model}@{alias}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLocks:
    """``locks(model, alias)``: a context manager holding the PostgreSQL advisory lock of that alias."""

    def __init__(self, url: str, *, timeout: float = 120.0) -> None:
        from sqlalchemy import create_engine

        self.timeout = timeout
        self._engine: Any = create_engine(url, pool_size=2, max_overflow=16, pool_pre_ping=True)

    @contextlib.contextmanager
    def __call__(self, model: str, alias: str) -> Iterator[None]:
        from sqlalchemy.exc import SQLAlchemyError

        key = lock_key("promote", model, alias)
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            raise BackendError(f"cannot reach the lock database: {exc}") from exc
        try:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            deadline = time.monotonic() + self.timeout
            while not conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar():
                if time.monotonic() > deadline:
                    raise ConcurrencyError(
                        f"the promotion lock of {model}@{alias} stayed busy for {self.timeout:.0f}s",
                        hint="another promotion of this alias is running; retry",
                    )
                time.sleep(0.02)
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
        finally:
            conn.close()

    def close(self) -> None:
        self._engine.dispose()


def promotion_locks(audit_url: str, state_dir: Path) -> LockFactory:
    """Advisory locks on the audit database when it is PostgreSQL, else the machine-local file lock."""
    if audit_url.startswith("postgresql"):
        return AdvisoryLocks(audit_url)
    from mlops_layer.governance.ports import file_locks

    return file_locks(state_dir)
