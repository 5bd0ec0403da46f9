"""Drift: reference profiles, per-column statistics and the drift gate."""
