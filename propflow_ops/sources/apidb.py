"""Fetches for the api-down, db-connection and api-latency runbooks that never raise.

The shared sources (``ecs``, ``metrics``, ``logs``, ``db``) raise on a failed
call; a notebook cell has no ``try``. These wrappers return the value, or a
:class:`~propflow_ops.sources.rds.FetchError` (one line, no secrets) that the
checks turn into ``error`` findings; ``None`` means "not configured".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd

from propflow_ops.sources import aws, fetch
from propflow_ops.sources import db as dbsrc
from propflow_ops.sources import ecs as ecssrc
from propflow_ops.sources import logs as logsrc
from propflow_ops.sources import metrics as metricsrc
from propflow_ops.sources.rds import FetchError

T = TypeVar("T")
PERCENTILE_STATS = ("p50", "p95", "p99")


def error_text(exc: BaseException, engine: Any = None) -> str:
    module = type(exc).__module__
    if module.startswith(("botocore", "boto3")):
        return aws.aws_error_text(exc)
    if module.startswith(("sqlalchemy", "psycopg")):
        return dbsrc._one_line(exc, engine)
    return aws.aws_error_text(exc)


def attempt(fn: Callable[..., T], *args: Any, engine: Any = None, **kwargs: Any) -> T | FetchError:
    """``fn(*args, **kwargs)``, or the failure as a returned :class:`FetchError`."""
    return fetch.attempt(lambda: fn(*args, **kwargs), lambda exc: FetchError(error_text(exc, engine)))


# --- AWS --------------------------------------------------------------------------------------

def service(cluster: str, name: str) -> dict[str, Any] | FetchError:
    return attempt(ecssrc.service, cluster, name)


def stopped_tasks(cluster: str, name: str, since: datetime | None) -> pd.DataFrame | FetchError:
    return attempt(ecssrc.stopped_tasks, cluster, name, since)


def metric(namespace: str, name: str, dimensions: Mapping[str, str], start: datetime | None, end: datetime | None,
           stat: str = "Average", period: int = 60) -> pd.DataFrame | FetchError:
    assert start is not None and end is not None
    return attempt(metricsrc.metric_series, namespace, name, dict(dimensions), start, end, stat=stat, period=period)


def percentile_metric(namespace: str, name: str, dimensions: Mapping[str, str], start: datetime | None,
                      end: datetime | None) -> dict[str, pd.DataFrame | FetchError]:
    """p50/p95/p99 of a metric (CloudWatch extended statistics) in one call; when it fails, every stat is
    that FetchError."""
    assert start is not None and end is not None
    got = attempt(metricsrc.metric_stats, namespace, name, dict(dimensions), start, end, stats=PERCENTILE_STATS)
    if isinstance(got, FetchError):
        return dict.fromkeys(PERCENTILE_STATS, got)
    return dict(got)


def logs(log_group: str, start: datetime | None, end: datetime | None) -> pd.DataFrame | FetchError:
    assert start is not None and end is not None
    return attempt(logsrc.fetch_log_events, log_group, start, end)


@dataclass
class TaskDatabaseUrl:
    """The DATABASE_URL of the service's current task definition. ``url`` stays in memory: never shown."""

    task_definition: str | None = None
    url: str | None = field(default=None, repr=False)
    env: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def host(self) -> str | None:
        return dbsrc.url_host(self.url)

    def __repr__(self) -> str:
        return f"TaskDatabaseUrl(task_definition={self.task_definition!r}, host={self.host!r})"


def task_database_url(cluster: str, name: str, family: str) -> TaskDatabaseUrl | FetchError:
    """The service's current task definition (else the family's latest) and its DATABASE_URL."""

    def lookup() -> TaskDatabaseUrl:
        td = ecssrc.current_task_definition(cluster, name, family)
        env = ecssrc.task_environment(td)
        label = f"{td.get('family')}:{td.get('revision')}"
        url = env.get("DATABASE_URL")
        return TaskDatabaseUrl(label, str(url) if url else None, env)

    return attempt(lookup)


# --- PostgreSQL -------------------------------------------------------------------------------

@dataclass
class Database:
    """Where the database checks connect: host and where the URL came from. The URL is never shown."""

    host: str | None
    source: str
    engine: Any = field(default=None, repr=False)
    error: str | None = None

    @property
    def configured(self) -> bool:
        return self.engine is not None

    def __repr__(self) -> str:
        return f"Database(host={self.host!r}, source={self.source!r}, error={self.error!r})"


def database(task: TaskDatabaseUrl | FetchError | None = None, *, connect_timeout_s: int = 5,
             statement_timeout_ms: int = 10_000) -> Database:
    """``PROPFLOW_DATABASE_URL``, else DATABASE_URL from the task definition (CONTRACT 2)."""
    env = task.env if isinstance(task, TaskDatabaseUrl) else None
    url, source = dbsrc.resolve_database_url(env)
    if not url:
        return Database(None, source)
    try:
        engine = dbsrc.make_engine(url, connect_timeout_s=connect_timeout_s, statement_timeout_ms=statement_timeout_ms)
    except Exception as exc:  # noqa: BLE001 - a URL that does not parse is reported, never printed
        return Database(dbsrc.url_host(url), source, None, f"bad database URL ({type(exc).__name__})")
    return Database(dbsrc.url_host(url), source, engine)


def _db_call(db: Database, fn: Callable[..., T], *args: Any) -> T | FetchError | None:
    if db.error:
        return FetchError(db.error)
    if not db.configured:
        return None
    return attempt(fn, db.engine, *args, engine=db.engine)


def ping(db: Database) -> dict[str, Any] | FetchError | None:
    """``{"ok", "latency_ms", "server_version", "error", "host"}``; None when no database is configured."""
    if db.error:
        return {"ok": False, "latency_ms": None, "error": db.error, "host": db.host}
    if not db.configured:
        return None
    result = dbsrc.ping(db.engine)
    return {**result, "host": db.host}


def activity(db: Database) -> pd.DataFrame | FetchError | None:
    return _db_call(db, dbsrc.activity)


def max_connections(db: Database) -> int | FetchError | None:
    return _db_call(db, dbsrc.max_connections)


def table_scan_stats(db: Database) -> pd.DataFrame | FetchError | None:
    return _db_call(db, dbsrc.table_scan_stats)


def pg_stat_statements(db: Database) -> pd.DataFrame | FetchError | None:
    """None when the extension is not installed (or no database)."""
    return _db_call(db, dbsrc.pg_stat_statements)


def data(value: Any) -> pd.DataFrame:
    """The frame, or an empty one when the fetch failed or was not configured (for plots and tables)."""
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame()
