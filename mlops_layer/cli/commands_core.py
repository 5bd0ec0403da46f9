"""Core commands: init, status, lineage."""

from __future__ import annotations
