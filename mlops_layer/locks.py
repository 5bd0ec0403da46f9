"""Machine-local exclusive locks (``flock``) that serialise promotions, monitoring and retraining of one model."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from mlops_layer.errors import ConcurrencyError


def lock_path(state_dir: Path, kind: str, key: str) -> Path:
    """``<state_dir>/locks/<kind>-<key>.lock`` with ``key`` made safe for a file name."""
    return state_dir / "locks" / f"{kind}-{re.sub(r'[^A-Za-z0-9._@-]', '_', key)}.lock"


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float = 30.0, what: str = "", hint: str | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed).

    ``timeout=0`` tries once. When the lock stays busy: ConcurrencyError naming ``what`` and who holds it.
    The holder's pid is written into the file so the refusal can say who is busy.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = ""
                    with contextlib.suppress(OSError, ValueError):
                        holder = f" (held by pid {int(path.read_text().strip())})"
                    raise ConcurrencyError(
                        f"{what or path.name} is busy{holder}",
                        hint=hint or "wait for the other process to finish, then retry",
                    ) from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
