"""Error as value: a fetch whose failure is returned, not raised.

A notebook cell has no ``try``, and the pure checks (``propflow_ops.checks``)
turn a failed fetch into an ``error`` (or ``fail``) finding. The fetch
wrappers in ``sources.apidb``, ``sources.s3`` and ``sources.twilio`` therefore
hand the failure back, each in the form its checks read: a one-line
``FetchError``, a result with an ``error`` field, or the exception itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
E = TypeVar("E")


def attempt(fetch: Callable[[], T], on_error: Callable[[Exception], E]) -> T | E:
    """``fetch()``, or ``on_error(exc)`` when it raised: the failure is returned for a check to report."""
    try:
        return fetch()
    except Exception as exc:  # noqa: BLE001 - returned for the check to report
        return on_error(exc)
