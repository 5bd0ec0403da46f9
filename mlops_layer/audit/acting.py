"""The audit trail as one actor writes it: every append stamped with the acting principal, returning its seq."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ActingTrail:
    """An ``AuditStore`` plus the acting principal; the one wrapper through which the facade and flows append."""

    def __init__(self, store: Any, actor: str) -> None:
        self.store = store
        self.actor = actor

    def append(
        self,
        action: str,
        *,
        subject: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        decision: str | None = None,
        reasons: Sequence[str] | None = None,
        details: Mapping[str, Any] | None = None,
        git_commit: str | None = None,
        dvc_hashes: Mapping[str, str] | None = None,
    ) -> int:
        """Append one entry as ``self.actor``; returns its sequence number."""
        entry = self.store.append(
            action,
            actor=self.actor,
            subject=subject,
            git_commit=git_commit,
            dvc_hashes=dvc_hashes,
            run_id=run_id,
            decision=decision,
            reasons=reasons,
            details=details,
        )
        return int(entry.seq)
