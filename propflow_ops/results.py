"""What a fetch returns: the value, or the error, with the target and the time it took.

Below both layers: ``propflow_ops.sources`` make :class:`Fetched` results (``sources.fetch.fetch``),
``propflow_ops.checks`` judge them. A notebook cell has no ``try``, so a failed fetch is a value
(``error`` set, ``value`` None) that a check turns into an ``error`` (or ``fail``) finding. ``value``
None without an error means "not configured" (no database URL, no extension).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pandas as pd

from propflow_ops.errors import FetchError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, eq=False)  # a value may be a DataFrame: no element-wise ==
class Fetched(Generic[T]):
    """One fetch: ``value`` or ``error`` (a one-line :class:`FetchError`, or the exception an older source
    returned as its value), what was asked, and how long it took."""

    value: T | None = field(default=None, repr=False)  # may hold secrets (a task environment): never shown
    error: BaseException | None = None
    target: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def empty(self) -> bool:
        """Neither value nor error: not configured, or never fetched (its checks are ``skipped``)."""
        return self.value is None and self.error is None

    @property
    def outcome(self) -> Any:
        """The value, or the error itself: the form the checks judge (``isinstance(x, BaseException)``)."""
        return self.value if self.error is None else self.error

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"error={str(self.error)!r}"
        return f"Fetched({self.target!r}, {state}, {self.seconds:.3f} s)"


def failed(text: str, target: str = "", seconds: float = 0.0) -> Fetched[Any]:
    """A result that failed before it could ask (``text`` is one line without secrets)."""
    return Fetched(None, FetchError(text), target, seconds)


def unwrap(x: Any) -> Any:
    """A :class:`Fetched` as its value or its error; anything else unchanged."""
    return x.outcome if isinstance(x, Fetched) else x


def takes_fetched(fn: F) -> F:
    """A check that reads fetches: every :class:`Fetched` argument is judged as its value or its error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*(unwrap(a) for a in args), **{k: unwrap(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]


def frame(x: Any) -> pd.DataFrame:
    """The frame, or an empty one when the fetch failed or was not configured (for plots and tables)."""
    x = unwrap(x)
    return x if isinstance(x, pd.DataFrame) else pd.DataFrame()
