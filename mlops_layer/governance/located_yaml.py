"""Kept for importers of the governance package: the located YAML reader now lives in :mod:`mlops_layer.yamlfile`."""

from __future__ import annotations

from mlops_layer.yamlfile import Fields, Located, git_blob_hash, kind_of, parse_located, read_bytes

__all__ = ["Fields", "Located", "git_blob_hash", "kind_of", "parse_located", "read_bytes"]
