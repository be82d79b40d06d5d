"""Remediation step builders, one module per domain: each returns a remediation.Step."""
