"""Pure checks: DataFrames and records in, Findings out. Thresholds live here."""
