"""Report pages people read: per-model HTML and the inventory, built from the audit trail and the registry."""
