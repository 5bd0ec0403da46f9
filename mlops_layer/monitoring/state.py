"""Where monitoring keeps its local state: one JSON file of alert state per model, written atomically, under a lock.

Layout under ``settings.state_dir / "monitoring"``: ``<model>.json`` (the :class:`AlertState`; while a batch is
processed ``<state_dir>/locks/monitor-<model>.lock`` is held, so two monitors of one model cannot lose each other's
updates),
``outbox.jsonl`` (failed deliveries, see :mod:`mlops_layer.monitoring.notifiers`) and ``notifications.jsonl``
(the file notifier of the embedded default).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from mlops_layer.errors import ConfigError, InputError
from mlops_layer.monitoring.alerts import AlertState

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def monitoring_dir(state_dir: Path) -> Path:
    return state_dir / "monitoring"


def _safe(model: str) -> str:
    if not _SAFE_NAME.match(model) or ".." in model:
        raise InputError(f"model name {model!r} is not valid", hint="use letters, digits, '.', '_' and '-'")
    return model


def state_path(state_dir: Path, model: str) -> Path:
    return monitoring_dir(state_dir) / f"{_safe(model)}.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_state(state_dir: Path, model: str) -> AlertState:
    """The saved alert state of ``model``; a fresh state when there is none yet."""
    path = state_path(state_dir, model)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AlertState(model=model)
    try:
        state = AlertState.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"monitoring state {path} is corrupt ({exc})",
            hint="move the file away to start the alert state afresh (open alerts will fire again)",
        ) from None
    if state.model != model:
        raise ConfigError(f"monitoring state {path} belongs to model {state.model!r}, not {model!r}")
    return state


def save_state(state_dir: Path, state: AlertState) -> Path:
    path = state_path(state_dir, state.model)
    atomic_write_text(path, json.dumps(state.to_dict(), indent=1, sort_keys=True) + "\n")
    return path


def model_lock(state_dir: Path, model: str, *, timeout: float = 30.0) -> contextlib.AbstractContextManager[None]:
    """The lock held while one batch of ``model`` is processed (the layer's shared flock, kind ``monitor``)."""
    from mlops_layer.locks import file_lock, lock_path

    return file_lock(
        lock_path(state_dir, "monitor", _safe(model)),
        timeout=timeout,
        what=f"monitoring of {model!r}",
        hint="another `mlops monitor` of this model is running; wait for it to finish, then retry",
    )


def open_alerts(state_dir: Path, model: str) -> list[str]:
    """The ids of the alerts of ``model`` that are open now."""
    return list(load_state(state_dir, model).open_alerts())
