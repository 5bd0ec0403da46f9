"""Monitoring: batch scoring over time, alert rules with windows and cooldowns, notifiers."""
