"""PostgreSQL through SQLAlchemy 2 + psycopg 3: engine, ping, parameterized queries, stats.

Engines use NullPool (a runbook must not hold connections), libpq
``connect_timeout`` and a server-side ``statement_timeout``, and announce
themselves as ``application_name=propflow-ops``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from propflow_ops import reach
from propflow_ops.urls import url_host as url_host  # the notebooks call db.url_host

APPLICATION_NAME = "propflow-ops"
QUERY_CHARS = 200


def _driver_url(url: str | URL) -> URL:
    u = make_url(url) if isinstance(url, str) else url
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def make_engine(url: str | URL, *, connect_timeout_s: int = 5, statement_timeout_ms: int = 10_000) -> Engine:
    """A SQLAlchemy engine for ``url`` (``postgresql://`` becomes ``postgresql+psycopg://``).

    NullPool, ``pool_pre_ping``, libpq ``connect_timeout``, ``statement_timeout``
    via ``options``, ``application_name=propflow-ops``. Creating it does not connect.
    """
    u = _driver_url(url)
    connect_args: dict[str, Any] = {
        "connect_timeout": max(1, int(connect_timeout_s)),
        "application_name": APPLICATION_NAME,
        "options": f"-c statement_timeout={int(statement_timeout_ms)}",
    }
    engine = sa.create_engine(u, poolclass=NullPool, pool_pre_ping=True, connect_args=connect_args)
    reach.watch_engine(engine)
    return engine


def _one_line(exc: BaseException, engine: Engine | None = None) -> str:
    """A one-line reason without the password (and without SQLAlchemy's background link)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    line = text[0] if text else type(orig).__name__
    if engine is not None:
        pw = engine.url.password
        if pw:
            line = line.replace(str(pw), "***")
    return f"{type(orig).__name__}: {line}"


def ping(engine: Engine) -> dict[str, Any]:
    """Connect and ``SELECT 1``. Never raises.

    Returns ``{"ok", "latency_ms", "server_version", "error"}``; ``error`` is a
    one-line reason (no password) when ``ok`` is False.
    """
    t0 = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        return {
            "ok": True,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
            "server_version": str(version),
            "error": None,
        }
    except Exception as exc:  # noqa: BLE001 - ping reports, it never raises
        return {
            "ok": False,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
            "server_version": None,
            "error": _one_line(exc, engine),
        }


def query_df(engine: Engine, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """Run one parameterized statement (``:name`` placeholders) and return its rows."""
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params or {})
        rows = result.fetchall()
        return pd.DataFrame([tuple(r) for r in rows], columns=list(result.keys()))


def resolve_database_url(task_env: dict[str, Any] | None) -> tuple[str | None, str]:
    """The database URL to check and where it came from.

    ``PROPFLOW_DATABASE_URL`` from the environment first, else ``DATABASE_URL``
    from the task definition's environment. Returns ``(url or None, source)``
    where source is ``"env PROPFLOW_DATABASE_URL"``, ``"task definition
    DATABASE_URL"`` or ``"not configured"``. The URL may hold a password: keep it
    in memory, show it through ``redact``.
    """
    env_url = os.environ.get("PROPFLOW_DATABASE_URL")
    if env_url:
        return env_url, "env PROPFLOW_DATABASE_URL"
    if task_env:
        url = task_env.get("DATABASE_URL")
        if url:
            return str(url), "task definition DATABASE_URL"
    return None, "not configured"


# ---------------------------------------------------------------------------
# Fetches for the runbooks

_ACTIVITY_SQL = """
SELECT pid, usename, application_name, client_addr::text AS client_addr, state,
       wait_event_type, wait_event, backend_type,
       xact_start, query_start, state_change,
       EXTRACT(EPOCH FROM (now() - state_change))::float8 AS age_s,
       EXTRACT(EPOCH FROM (now() - xact_start))::float8 AS xact_age_s,
       EXTRACT(EPOCH FROM (now() - query_start))::float8 AS query_age_s,
       left(query, :qchars) AS query
FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
ORDER BY state_change NULLS LAST
"""


def activity(engine: Engine) -> pd.DataFrame:
    """pg_stat_activity rows (all backends but ours).

    Columns: pid, usename, application_name, client_addr, state,
    wait_event_type, wait_event, backend_type, xact_start, query_start,
    state_change, age_s (seconds in the current state), xact_age_s,
    query_age_s, query (first 200 characters).
    """
    df = query_df(engine, _ACTIVITY_SQL, {"qchars": QUERY_CHARS})
    for col in ("xact_start", "query_start", "state_change"):
        df[col] = pd.to_datetime(df[col], utc=True)
    for col in ("age_s", "xact_age_s", "query_age_s"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df


def max_connections(engine: Engine) -> int:
    """The server's ``max_connections``."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SHOW max_connections")).scalar_one())


def connection_counts(engine: Engine) -> dict[str, int]:
    """Backends by state (client backends only), plus ``total``."""
    df = query_df(
        engine,
        "SELECT coalesce(state, 'unknown') AS state, count(*) AS n FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' GROUP BY 1",
    )
    counts = {str(r.state): int(r.n) for r in df.itertuples()}
    counts["total"] = sum(counts.values())
    return counts


def table_scan_stats(engine: Engine) -> pd.DataFrame:
    """pg_stat_user_tables: schemaname, relname, seq_scan, seq_tup_read, idx_scan, n_live_tup."""
    df = query_df(
        engine,
        "SELECT schemaname, relname, seq_scan, seq_tup_read, idx_scan, n_live_tup"
        " FROM pg_stat_user_tables ORDER BY seq_tup_read DESC NULLS LAST, relname",
    )
    for col in ("seq_scan", "seq_tup_read", "idx_scan", "n_live_tup"):
        df[col] = pd.array([None if v is None or v != v else int(v) for v in df[col].tolist()], dtype="Int64")
    return df


def pg_stat_statements(engine: Engine, *, limit: int = 50) -> pd.DataFrame | None:
    """Top statements by mean time from pg_stat_statements, or None when the extension is absent.

    Columns: query (first 200 characters), calls, total_exec_time_ms,
    mean_exec_time_ms, rows.
    """
    with engine.connect() as conn:
        present = conn.execute(
            sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")
        ).scalar_one()
    if not present:
        return None
    try:
        return query_df(
            engine,
            "SELECT left(query, :qchars) AS query, calls, total_exec_time AS total_exec_time_ms,"
            " mean_exec_time AS mean_exec_time_ms, rows"
            " FROM pg_stat_statements ORDER BY mean_exec_time DESC LIMIT :limit",
            {"qchars": QUERY_CHARS, "limit": int(limit)},
        )
    except sa.exc.DBAPIError as exc:
        # Installed in the database but not preloaded: the view errors on read.
        if "pg_stat_statements must be loaded" in str(exc):
            return None
        raise
