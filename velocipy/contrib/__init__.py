"""Integrations with other projects' engines, each behind its own optional extra."""
