"""PostgreSQL fixtures for the team-mode tests (owner: audit). Filled in by the audit work."""

from __future__ import annotations
