"""Integrations with other tools; each module needs its tool installed (an optional extra)."""
