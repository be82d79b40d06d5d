"""The exceptions the package defines for a fetch that failed (one module; sources raise them, checks read them).

``str()`` of each is one line without secrets: the checks quote it in an ``error`` finding.
"""

from __future__ import annotations


class FetchError(RuntimeError):
    """A fetch that failed; ``str()`` is one line without secrets."""


class DeadlineExceeded(TimeoutError):
    """No complete answer within the request's total deadline."""


class ReadOnlyViolation(RuntimeError):
    """SQL refused because it could change something (or the session is not read-only)."""
