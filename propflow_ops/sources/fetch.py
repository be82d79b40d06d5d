"""Error as value: a fetch whose failure is returned, not raised.

A notebook cell has no ``try``, and the pure checks (``propflow_ops.checks``) turn a failed fetch into
an ``error`` (or ``fail``) finding. :func:`fetch` calls a real source (``ecs.service``,
``metrics.metric_series``, ``logs.fetch_log_events``...) and hands back a
:class:`~propflow_ops.results.Fetched`: the value, or a one-line
:class:`~propflow_ops.errors.FetchError` (no secrets), with the target and the time it took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from propflow_ops.errors import FetchError
from propflow_ops.reach import unreachable
from propflow_ops.results import Fetched

T = TypeVar("T")


def error_text(exc: BaseException, engine: Any = None) -> str:
    """One line describing a failed call (AWS, SQLAlchemy/psycopg or anything else), without secrets."""
    from propflow_ops.sources import aws
    from propflow_ops.sources import db as dbsrc

    if isinstance(exc, FetchError):
        return str(exc)
    module = type(exc).__module__
    if module.startswith(("sqlalchemy", "psycopg")):
        return dbsrc._one_line(exc, engine)
    return aws.aws_error_text(exc)


def fetch_error(exc: BaseException, engine: Any = None) -> FetchError:
    """``exc`` as a one-line :class:`FetchError` that still tells whether the target was unreachable."""
    if isinstance(exc, FetchError):
        return exc
    return FetchError(error_text(exc, engine), unreachable=unreachable(exc))


def _target(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    shown = [str(a) for a in args[:2] if isinstance(a, str | int | float)]
    return f"{getattr(fn, '__name__', 'fetch')}({', '.join(shown)})"


def fetch(
    fn: Callable[..., T], *args: Any, target: str | None = None, engine: Any = None, **kwargs: Any
) -> Fetched[T]:
    """``fn(*args, **kwargs)`` as a :class:`Fetched`: its value, or the failure as a one-line error."""
    shown = target if target is not None else _target(fn, args)
    t0 = time.monotonic()
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - returned for the check to report
        return Fetched(None, fetch_error(exc, engine), shown, time.monotonic() - t0)
    return Fetched(value, None, shown, time.monotonic() - t0)
