"""The exceptions the package defines for a fetch that failed (one module; sources raise them, checks read them).

``str()`` of each is one line without secrets: the checks quote it in an ``error`` finding.
"""

from __future__ import annotations


class FetchError(RuntimeError):
    """A fetch that failed; ``str()`` is one line without secrets. ``unreachable``: the target gave no usable
    answer (refused, timed out, throttled), as ``reach.unreachable`` told it from the original exception;
    None when nobody classified it (``reach.unreachable`` then reads the text)."""

    def __init__(self, text: str = "", *, unreachable: bool | None = None) -> None:
        super().__init__(text)
        self.unreachable = unreachable


class DeadlineExceeded(TimeoutError):
    """No complete answer within the request's total deadline."""


class ReadOnlyViolation(RuntimeError):
    """SQL refused because it could change something (or the session is not read-only)."""


class NoAnswer(FetchError):
    """An HTTP request that got no answer at all (refused, timed out, breaker open, a URL it could not ask),
    after ``attempts`` tries (0: not tried)."""

    def __init__(self, text: str = "", *, unreachable: bool = False, attempts: int = 0) -> None:
        super().__init__(text, unreachable=unreachable)
        self.attempts = attempts
