"""The safety suite: CONTRACT.md's promises (read-only, no secrets out, dead targets, bad input, evidence
integrity, applying) proven against the sandbox for every runbook that exists."""
