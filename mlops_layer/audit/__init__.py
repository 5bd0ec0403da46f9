"""The audit trail: an append-only, hash-chained, signed-checkpoint record of every governance action."""
