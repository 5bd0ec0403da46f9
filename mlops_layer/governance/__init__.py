"""Governance: model cards, promotion policy, rule evaluation, identities and signed approvals."""
