"""PostgreSQL through SQLAlchemy 2 + psycopg 3: the read-only engine every diagnosis uses, ping,
parameterized queries, stats, and the guarded runner for SQL a runbook parameter holds.

Read-only at the root. :func:`make_engine` is the one factory for diagnostic sessions (db, s3,
alembic, triage all come through it). Its sessions are held read-only by the server itself
(``default_transaction_read_only=on`` in the startup options, so ``RESET``/``RESET ALL``/``DISCARD ALL``
go back to read-only), and it sends one statement per execution (psycopg's extended protocol: a string
with two statements is refused by the server, so ``...; COMMIT; DELETE ...`` cannot run). SQL that
someone typed goes through :func:`guarded_rows` on top of that. A remediation step that must write
asks for :func:`writer_engine` inside its ``execute`` (applied steps only).

Every call has a total deadline: libpq ``connect_timeout`` for the connection, a server-side
``statement_timeout``, TCP keepalives and ``tcp_user_timeout``, and a client-side wall clock per
execution that cuts the socket of a server that stops answering mid-query. A database that timed out
trips its breaker in :mod:`propflow_ops.reach`: the run's later calls to it fail at once.

Engines use NullPool (a runbook must not hold connections) and announce themselves as
``application_name=propflow-ops``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from propflow_ops import reach
from propflow_ops.errors import FetchError
from propflow_ops.errors import ReadOnlyViolation as ReadOnlyViolation  # callers import it from here
from propflow_ops.records import DbPing as DbPing  # callers import it from here
from propflow_ops.results import Fetched, failed, unwrap
from propflow_ops.urls import url_host as url_host  # the notebooks call db.url_host

APPLICATION_NAME = "propflow-ops"
QUERY_CHARS = 200
#: Seconds a client-side wall clock gives an execution beyond its statement_timeout before it cuts the
#: socket (the server's own timeout should answer first; this is for a server that stopped answering).
EXECUTION_GRACE_S = 5.0
#: TCP bounds: unacknowledged data for longer than this drops the connection; keepalives find a dead peer.
TCP_USER_TIMEOUT_MS = 10_000
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}

#: Functions a read-only transaction still lets run whose effect is outside the transaction (signals,
#: server admin, session state, large objects, remote sessions, files): refused in SQL a parameter holds.
SIDE_EFFECT_FUNCTIONS = (
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_create_restore_point",
    "pg_log_backend_memory_contexts",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_replication_slot_advance",
    "pg_replication_origin_create",
    "pg_replication_origin_drop",
    "pg_replication_origin_advance",
    "pg_replication_origin_session_setup",
    "pg_logical_slot_get_changes",
    "pg_logical_slot_get_binary_changes",
    "pg_logical_emit_message",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters",
    "pg_stat_reset_single_function_counters",
    "pg_stat_reset_slru",
    "pg_stat_reset_replication_slot",
    "pg_stat_reset_subscription_stats",
    "pg_stat_statements_reset",
    "pg_import_system_collations",
    "pg_notify",
    "set_config",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "lo_create",
    "lo_creat",
    "lo_unlink",
    "lo_import",
    "lo_export",
    "lo_from_bytea",
    "lo_put",
    "lo_open",
    "lo_write",
    "lo_truncate",
    "lo_truncate64",
    "lowrite",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "dblink_open",
    "dblink_fetch",
    "nextval",
    "setval",
)
_SIDE_EFFECT_RE = re.compile(
    r"(?<![A-Za-z0-9_$])(" + "|".join(map(re.escape, SIDE_EFFECT_FUNCTIONS)) + r")\s*\(", re.IGNORECASE
)
#: Plan nodes that change or lock rows (a data-modifying CTE, SELECT ... FOR UPDATE).
_WRITING_NODES = ("ModifyTable", "LockRows")


def _driver_url(url: str | URL) -> URL:
    u = make_url(url) if isinstance(url, str) else url
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def target_key(url: str | URL) -> str:
    """The breaker key of a database: ``database host:port`` (or its socket directory)."""
    u = make_url(url) if isinstance(url, str) else url
    host = u.host or str(u.query.get("host") or "") or "localhost"
    return f"database {host}:{u.port or 5432}"


def _options(read_only: bool, statement_timeout_ms: int) -> str:
    opts = [
        f"-c statement_timeout={int(statement_timeout_ms)}",
        f"-c idle_in_transaction_session_timeout={max(int(statement_timeout_ms) * 3, 30_000)}",
    ]
    if read_only:
        opts.append("-c default_transaction_read_only=on")
    return " ".join(opts)


def _connect_args(read_only: bool, connect_timeout_s: float, statement_timeout_ms: int) -> dict[str, Any]:
    return {
        "connect_timeout": max(1, int(connect_timeout_s)),
        "application_name": APPLICATION_NAME,
        "options": _options(read_only, statement_timeout_ms),
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        **KEEPALIVES,
    }


def _create(
    url: str | URL, *, read_only: bool, connect_timeout_s: float, statement_timeout_ms: int
) -> Engine:
    u = _driver_url(url)
    if u.get_backend_name() != "postgresql":
        raise ValueError(f"only PostgreSQL is supported, not {u.get_backend_name()!r}")
    engine = sa.create_engine(
        u,
        poolclass=NullPool,
        pool_pre_ping=True,
        connect_args=_connect_args(read_only, connect_timeout_s, statement_timeout_ms),
    )
    key = target_key(u)
    _fail_fast_when_tripped(engine, key)
    _bound_executions(engine, key, statement_timeout_ms / 1000 + EXECUTION_GRACE_S)
    if read_only:
        _one_statement_per_execution(engine)
    reach.watch_engine(engine)
    return engine


def make_engine(url: str | URL, *, connect_timeout_s: int = 5, statement_timeout_ms: int = 10_000) -> Engine:
    """The READ-ONLY engine for ``url`` (``postgresql://`` becomes ``postgresql+psycopg://``): the one factory
    for every diagnostic session.

    Sessions start with ``default_transaction_read_only=on`` (the server refuses every write), each
    execution is one statement (extended protocol), NullPool, ``pool_pre_ping``, libpq
    ``connect_timeout``, ``statement_timeout``, TCP keepalives/``tcp_user_timeout``, a client-side deadline
    per execution, ``application_name=propflow-ops``. Creating it does not connect.
    """
    return _create(
        url, read_only=True, connect_timeout_s=connect_timeout_s, statement_timeout_ms=statement_timeout_ms
    )


def writer_engine(
    url: str | URL, *, connect_timeout_s: int = 5, statement_timeout_ms: int = 60_000
) -> Engine:
    """A read-WRITE engine, for the ``execute`` of a remediation step that ``apply`` named, and nothing else.

    Same timeouts and breaker as :func:`make_engine`, without the read-only session.
    """
    return _create(
        url, read_only=False, connect_timeout_s=connect_timeout_s, statement_timeout_ms=statement_timeout_ms
    )


def _one_statement_per_execution(engine: Engine) -> None:
    """Every execution goes through the extended query protocol (a prepared statement), which carries one
    statement: the server refuses ``SELECT 1; COMMIT; DELETE ...`` whatever psycopg would otherwise do with
    a parameterless string (the simple protocol, which runs them all)."""

    @sa.event.listens_for(engine, "do_execute")
    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        cursor.execute(statement, parameters or None, prepare=True)
        return True

    @sa.event.listens_for(engine, "do_execute_no_params")
    def do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
        cursor.execute(statement, None, prepare=True)
        return True

    @sa.event.listens_for(engine, "do_executemany")
    def do_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        raise ReadOnlyViolation("executemany is not used by diagnosis")


def _fail_fast_when_tripped(engine: Engine, key: str) -> None:
    @sa.event.listens_for(engine, "do_connect")
    def do_connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: Any) -> None:
        reach.check(key)


def _cut(dbapi_conn: Any) -> None:
    """Shut the socket of a psycopg connection down: a read blocked on a silent server returns at once."""
    with contextlib.suppress(Exception):
        if dbapi_conn.closed:  # its socket number may belong to someone else by now
            return
        fd = dbapi_conn.pgconn.socket
        s = socket.socket(fileno=os.dup(fd))
        try:
            s.shutdown(socket.SHUT_RDWR)
        finally:
            s.close()


def _bound_executions(engine: Engine, key: str, seconds: float) -> None:
    """A wall-clock deadline per execution: past it the socket is cut and the database's breaker trips."""

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        dbapi_conn = conn.connection.dbapi_connection
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            reach.trip(key, f"no answer within {seconds:g} s")
            _cut(dbapi_conn)

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        conn.info.setdefault("propflow_timers", []).append((timer, fired))

    @sa.event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, *_: Any) -> None:
        for timer, _fired in conn.info.pop("propflow_timers", []):
            timer.cancel()

    @sa.event.listens_for(engine, "handle_error")
    def on_error(ctx: Any) -> None:
        conn = ctx.connection
        if conn is not None:
            for timer, _fired in conn.info.pop("propflow_timers", []):
                timer.cancel()
        exc = ctx.original_exception
        # A server that answered "statement timeout" (an SQLSTATE) is up; a connection that timed out is not.
        if reach.timed_out(exc) and getattr(exc, "sqlstate", None) is None:
            reach.trip(key, _one_line(exc))


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


def _host(engine: Engine) -> str | None:
    """The database host of ``engine`` (the URL is rendered with its password hidden first)."""
    return url_host(engine.url.render_as_string(hide_password=True))


def ping(engine: Engine, *, host: str | None = None) -> Fetched[DbPing]:
    """Connect, ``SELECT 1`` and ``SHOW server_version``. Never raises.

    The value is a :class:`~propflow_ops.records.DbPing` (``latency_ms``, ``server_version``, ``host``); a
    failure is the error: a one-line :class:`~propflow_ops.errors.FetchError` without the password,
    ``unreachable`` unless the server answered by refusing the session (a wrong password: :func:`_unreachable`).
    The target is the host (``host``, else the engine's), never the URL.
    """
    shown = host if host is not None else _host(engine)
    t0 = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
    except Exception as exc:  # noqa: BLE001 - ping reports, it never raises
        error = FetchError(_one_line(exc, engine), unreachable=reach.unreachable(exc))
        return Fetched(None, error, shown or "", time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    answer = DbPing(latency_ms=round(seconds * 1000, 2), server_version=str(version), host=shown)
    return Fetched(answer, None, shown or "", seconds)


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


# ---------------------------------------------------------------------------
# SQL a runbook parameter holds


def _plan_refusal(plan: Any) -> str | None:
    """Why the plan of typed SQL must not run (it writes, locks rows, or calls a side-effect function)."""
    text = plan if isinstance(plan, str) else json.dumps(plan)
    for node in _WRITING_NODES:
        if f'"Node Type": "{node}"' in text:
            return (
                "it modifies or locks rows ("
                + ("a data-modifying statement" if node == "ModifyTable" else "FOR UPDATE/SHARE")
                + ")"
            )
    found = sorted({m.group(1).lower() for m in _SIDE_EFFECT_RE.finditer(text)})
    if found:
        return "it calls " + ", ".join(found) + " (an effect outside the transaction)"
    return None


def guarded_rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows of SQL that someone typed (a runbook parameter), with no way for it to change anything.

    On top of the read-only engine (read-only session, one statement per execution): the transaction is
    checked read-only and takes its snapshot first (so ``SET TRANSACTION READ WRITE`` cannot follow); the
    server plans the SQL (``EXPLAIN``: only a plannable query gets this far, so ``SET``, ``COMMIT``,
    ``RESET``, ``BEGIN`` never run) and a plan that writes, locks rows or calls a function whose effect
    escapes the transaction (``pg_terminate_backend``, ``set_config``, ``lo_unlink``, ``dblink`` ...) is
    refused with :class:`ReadOnlyViolation`; the statement runs, the transaction is rolled back and the
    session is thrown away.
    """
    if not sql or not sql.strip():
        raise ReadOnlyViolation("empty query")
    with engine.connect() as conn:
        try:
            if conn.exec_driver_sql("SELECT current_setting('transaction_read_only')").scalar() != "on":
                raise ReadOnlyViolation("the database session is not read-only: refusing to run the query")
            try:
                plan = conn.exec_driver_sql("EXPLAIN (VERBOSE, FORMAT JSON) " + sql).scalar()
            except sa.exc.ProgrammingError as exc:  # not one plannable query: SET, COMMIT, two statements...
                if type(exc.orig).__name__ != "SyntaxError":
                    raise
                raise ReadOnlyViolation(
                    "query refused (read-only): only one query (SELECT) can run here; the server said "
                    + _one_line(exc, engine)
                ) from None
            why = _plan_refusal(plan)
            if why:
                raise ReadOnlyViolation(f"query refused (read-only): {why}")
            rows = [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]
            conn.rollback()
        finally:
            with contextlib.suppress(Exception):
                conn.invalidate()  # never reused, whatever the statement did to the session
    return rows


T = TypeVar("T")


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

    def ping(self) -> Fetched[DbPing]:
        """:func:`ping` of this database, its target the host; value None (and no error) when no database is
        configured, the URL's problem as the error when it could not be used."""
        if self.error:
            return failed(self.error, self.host or "")
        if not self.configured:
            return Fetched(None, None, "database (not configured)")
        return ping(self.engine, host=self.host)

    def fetch(self, fn: Callable[..., T], *args: Any) -> Fetched[T]:
        """``fn(engine, *args)`` (``activity``, ``max_connections``...) as a result; value None when no
        database is configured."""
        from propflow_ops.sources.fetch import fetch

        target = f"{getattr(fn, '__name__', 'query')}@{self.host}"
        if self.error:
            return failed(self.error, target)
        if not self.configured:
            return Fetched(None, None, target)
        return fetch(fn, self.engine, *args, target=target, engine=self.engine)


def connect(task: Any = None, *, connect_timeout_s: int = 5, statement_timeout_ms: int = 10_000) -> Database:
    """``PROPFLOW_DATABASE_URL``, else DATABASE_URL from the task definition (CONTRACT 2): ``task`` is the
    fetched ``ecs.task_database_url`` (or None)."""
    task = unwrap(task)
    env = getattr(task, "env", None) if not isinstance(task, BaseException) else None
    url, source = resolve_database_url(env)
    if not url:
        return Database(None, source)
    try:
        engine = make_engine(
            url, connect_timeout_s=connect_timeout_s, statement_timeout_ms=statement_timeout_ms
        )
    except Exception as exc:  # noqa: BLE001 - a URL that does not parse is reported, never printed
        return Database(url_host(url), source, None, f"bad database URL ({type(exc).__name__})")
    return Database(url_host(url), source, engine)
