"""Database checks: RDS instance state and RPO, connectivity, sessions (pg_stat_activity), pool pressure,
and whether the service's DATABASE_URL points at the RDS endpoint.

Inputs: the ``DBInstances[0]`` dict of ``aws rds describe-db-instances``, the
:class:`~propflow_ops.results.Fetched` of ``sources.db.ping`` (a :class:`~propflow_ops.records.DbPing`, or a
one-line error), a ``pg_stat_activity`` frame, ``max_connections``, the log frame, URLs/hosts. A
fetch that failed is passed as the exception (``Finding.error``); a target not
configured as ``None`` (``Finding.skipped``). Nothing here connects anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from propflow_ops.checks import logs as log_checks
from propflow_ops.errors import FetchError
from propflow_ops.findings import Finding
from propflow_ops.incident import DATABASE_RPO
from propflow_ops.records import DbPing
from propflow_ops.results import Fetched, takes_fetched
from propflow_ops.urls import url_host

POOL_EXHAUSTED_PCT = 90.0
IDLE_IN_TRANSACTION_S = 60.0
LONG_RUNNING_QUERY_S = 30.0
RPO_MINUTES = DATABASE_RPO.total_seconds() / 60

POOL_ERROR_PATTERN = (
    r"QueuePool limit|too many clients|remaining connection slots are reserved|pool exhausted"
)
REFUSED_PATTERN = r"connection refused|could not connect to server|connection to server at .* failed"
IDLE_IN_TX_STATES = ("idle in transaction", "idle in transaction (aborted)")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _aware(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


# --- RDS ------------------------------------------------------------------------------------


@takes_fetched
def rds_summary(instance: Mapping[str, Any] | BaseException | None) -> dict[str, Any]:
    """What an engineer wants from describe-db-instances, without secrets."""
    if isinstance(instance, BaseException):
        return {"error": str(instance)}
    if not instance:
        return {"error": "no such DB instance"}
    endpoint = instance.get("Endpoint") or {}
    return {
        "identifier": instance.get("DBInstanceIdentifier"),
        "status": instance.get("DBInstanceStatus"),
        "engine": f"{instance.get('Engine')} {instance.get('EngineVersion') or ''}".strip(),
        "class": instance.get("DBInstanceClass"),
        "endpoint": f"{endpoint.get('Address')}:{endpoint.get('Port')}" if endpoint else None,
        "multi_az": instance.get("MultiAZ"),
        "availability_zone": instance.get("AvailabilityZone"),
        "secondary_az": instance.get("SecondaryAvailabilityZone"),
        "backup_retention_days": instance.get("BackupRetentionPeriod"),
        "latest_restorable_time": instance.get("LatestRestorableTime"),
        "storage_gb": instance.get("AllocatedStorage"),
        "read_replicas": instance.get("ReadReplicaDBInstanceIdentifiers") or [],
    }


@takes_fetched
def rds_available(instance: Mapping[str, Any] | BaseException | None, *, name: str = "") -> Finding:
    """``RDS_NOT_AVAILABLE``: the instance is missing (``{}``: RDS said so) or its status is not ``available``;
    ``skipped`` when RDS was never asked (None)."""
    code, title = "RDS_NOT_AVAILABLE", "RDS instance status"
    if instance is None:
        return Finding.skipped(code, title, "RDS was not asked (not fetched)")
    if isinstance(instance, BaseException):
        text = str(instance)
        if "DBInstanceNotFound" in text or "not found" in text.lower():
            return Finding.fail(code, "RDS instance not found", f"{name}: {text}")
        return Finding.error(code, title, instance)
    if not instance:
        return Finding.fail(code, "RDS instance not found", f"no DB instance {name!r} in this account/region")
    s = rds_summary(instance)
    if s["status"] != "available":
        return Finding.fail(
            code,
            f"RDS instance is {s['status']}",
            f"{s['identifier']} status {s['status']} (expected available); Multi-AZ {s['multi_az']}",
            **s,
        )
    return Finding.ok(
        code,
        "RDS instance available",
        f"{s['identifier']} ({s['engine']}, {s['class']}) at {s['endpoint']}; Multi-AZ {s['multi_az']}",
        **s,
    )


@takes_fetched
def rpo_at_risk(
    instance: Mapping[str, Any] | BaseException | None,
    *,
    now: datetime | None = None,
    rpo_minutes: float = RPO_MINUTES,
) -> Finding:
    """``DB_RPO_AT_RISK``: automated backups off (retention 0), or LatestRestorableTime older than the RPO."""
    code, title = "DB_RPO_AT_RISK", f"Point-in-time recovery against the {rpo_minutes:g} min RPO"
    if isinstance(instance, BaseException):
        return Finding.error(code, title, instance)
    if not instance:
        return Finding.skipped(code, title, "no RDS instance to inspect")
    now = now or datetime.now(UTC)
    retention = int(instance.get("BackupRetentionPeriod") or 0)
    latest = _aware(instance.get("LatestRestorableTime"))
    lag_min = round((now - latest).total_seconds() / 60, 1) if latest else None
    data = {
        "backup_retention_days": retention,
        "latest_restorable_time": latest,
        "lag_minutes": lag_min,
        "rpo_minutes": rpo_minutes,
    }
    if retention <= 0:
        return Finding.fail(
            code,
            "Automated backups are OFF",
            f"BackupRetentionPeriod is 0: no point-in-time recovery; latest restorable time "
            f"{latest or 'none'} -> the {rpo_minutes:g} min RPO cannot be met",
            **data,
        )
    if latest is None:
        return Finding.fail(
            code,
            "No latest restorable time",
            f"backups retained {retention} days but RDS reports no LatestRestorableTime",
            **data,
        )
    if now - latest > timedelta(minutes=rpo_minutes):
        return Finding.fail(
            code,
            f"Latest restorable time is {lag_min} min old",
            f"{latest:%Y-%m-%d %H:%M} UTC is older than the {rpo_minutes:g} min RPO "
            f"(retention {retention} days)",
            **data,
        )
    return Finding.ok(
        code,
        "RPO met",
        f"latest restorable time {lag_min} min ago (RPO {rpo_minutes:g} min); backups kept {retention} days",
        **data,
    )


# --- connectivity -----------------------------------------------------------------------------


#: What a check reads of ``sources.db.ping``: its Fetched, or (unwrapped) the answer or the error.
Ping = Fetched[DbPing] | DbPing | BaseException | None


def ping_of(ping: Ping) -> tuple[DbPing | BaseException | None, str | None, float | None]:
    """A ping as (the answer, or the error; None when not configured), the host it asked and, for a failed
    one, how long it took in ms (None when it was never tried)."""
    if isinstance(ping, Fetched):
        took = round(ping.seconds * 1000, 2) if ping.error is not None and ping.seconds else None
        return ping.outcome, ping.target or None, took
    return ping, getattr(ping, "host", None), None


def connectivity(ping: Ping, *, code: str = "DB_UNREACHABLE", configured: bool = True) -> Finding:
    """``DB_UNREACHABLE``: ``SELECT 1`` did not answer (``ping``: the Fetched of ``sources.db.ping``). Any failed
    ping is ``fail``, the server's refusal of the session (a wrong password) as much as no answer: its detail
    says which; not configured is ``skipped``."""
    title = "Database answers SELECT 1"
    got, host, took = ping_of(ping)
    if not configured or got is None:
        return Finding.skipped(
            code, title, "no database URL: set PROPFLOW_DATABASE_URL or DATABASE_URL in the task definition"
        )
    if isinstance(got, BaseException):
        error = (
            str(got).strip() if isinstance(got, FetchError) else f"{type(got).__name__}: {str(got).strip()}"
        )
        error = (error.splitlines() or ["no answer"])[0][:300]
        return Finding.fail(
            code, "Database unreachable", f"{host or 'database'}: {error}", latency_ms=took, host=host
        )
    host = got.host or host
    return Finding.ok(
        code,
        f"Database answers ({float(got.latency_ms):.0f} ms)",
        f"SELECT 1 on {host or 'the database'} in {float(got.latency_ms):.1f} ms",
        latency_ms=got.latency_ms,
        host=host,
    )


PING_COLUMNS = ["host", "url_from", "ok", "latency_ms", "server_version", "error"]


def ping_table(ping: Ping, *, url_from: str = "") -> pd.DataFrame:
    """The ping as a one-row table for display (the host, never the URL); ``url_from`` where the URL came from."""
    got, host, took = ping_of(ping)
    if isinstance(got, BaseException):
        row = {"host": host, "url_from": url_from, "ok": False, "latency_ms": took, "server_version": None}
        row["error"] = str(got)
    elif got is None:
        row = {"host": host, "url_from": url_from or "not configured", "ok": None, "latency_ms": None}
        row |= {"server_version": None, "error": None}
    else:
        row = {"host": got.host or host, "url_from": url_from, "ok": True, "latency_ms": got.latency_ms}
        row |= {"server_version": got.server_version, "error": None}
    return pd.DataFrame([row], columns=PING_COLUMNS)


# --- sessions ---------------------------------------------------------------------------------


def _now_of(activity: pd.DataFrame, now: datetime | None) -> pd.Timestamp:
    if now is not None:
        return (
            pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
        )
    if "now" in activity and len(activity) and activity["now"].notna().any():
        return pd.Timestamp(pd.to_datetime(activity["now"], utc=True).max())
    return pd.Timestamp.now(tz="UTC")


def with_ages(activity: pd.DataFrame, now: datetime | None = None) -> pd.DataFrame:
    """pg_stat_activity plus ``query_s`` / ``xact_s`` / ``state_s`` (seconds since query/transaction/state start)."""
    df = activity.copy()
    ref = _now_of(df, now)
    for col, out, given in (
        ("query_start", "query_s", "query_age_s"),
        ("xact_start", "xact_s", "xact_age_s"),
        ("state_change", "state_s", "age_s"),
    ):
        if out in df:
            continue
        if given in df:  # computed by the server (sources.db.activity): its clock, not ours
            df[out] = pd.to_numeric(df[given], errors="coerce").astype("float64").round(1)
            continue
        df[out] = (
            (ref - pd.to_datetime(df[col], utc=True)).dt.total_seconds().round(1)
            if col in df
            else float("nan")
        )
    return df


def client_sessions(activity: pd.DataFrame) -> pd.DataFrame:
    if "backend_type" in activity:
        return activity[activity["backend_type"].fillna("client backend") == "client backend"]
    return activity


@takes_fetched
def activity_summary(activity: pd.DataFrame) -> pd.DataFrame:
    """Client sessions counted by state, application and wait event."""
    cols = ["state", "application_name", "wait_event_type", "wait_event"]
    if activity is None or len(activity) == 0:
        return pd.DataFrame(columns=[*cols, "sessions"])
    df = client_sessions(activity).copy()
    for c in cols:
        df[c] = df[c].fillna("") if c in df else ""
    return (
        df.groupby(cols)
        .size()
        .rename("sessions")
        .reset_index()
        .sort_values("sessions", ascending=False)
        .reset_index(drop=True)
    )


@takes_fetched
def pool_exhausted(
    activity: pd.DataFrame | BaseException | None,
    max_connections: int | BaseException | None,
    logs: pd.DataFrame | BaseException | None = None,
    *,
    threshold_pct: float = POOL_EXHAUSTED_PCT,
) -> Finding:
    """``DB_POOL_EXHAUSTED``: connections >= ``threshold_pct`` of max_connections, or pool / too-many-clients
    errors in the logs."""
    code, title = (
        "DB_POOL_EXHAUSTED",
        f"Connections against max_connections ({threshold_pct:g}%) and pool errors",
    )
    pool_errors = log_checks.matching(logs, POOL_ERROR_PATTERN) if isinstance(logs, pd.DataFrame) else None
    n_errors = 0 if pool_errors is None else len(pool_errors)
    used: int | None = None
    pct: float | None = None
    problems: list[str] = []
    if isinstance(activity, pd.DataFrame) and isinstance(max_connections, int) and max_connections > 0:
        used = len(client_sessions(activity))
        pct = round(100.0 * used / max_connections, 1)
        if pct >= threshold_pct:
            problems.append(
                f"{used} of max_connections {max_connections} in use ({pct:g}% >= {threshold_pct:g}%)"
            )
    if n_errors:
        example = (
            log_checks.normalise(str(pool_errors["message"].iloc[-1])) if pool_errors is not None else ""
        )
        problems.append(f"{n_errors} pool-exhausted/too-many-clients lines in the logs (e.g. {example})")
    data = {
        "connections": used,
        "max_connections": max_connections if isinstance(max_connections, int) else None,
        "used_pct": pct,
        "threshold_pct": threshold_pct,
        "pool_error_lines": n_errors,
        "logs": log_checks.summary(logs),
    }
    if problems:
        return Finding.fail(code, "Database connections exhausted", "; ".join(problems), **data)
    unknown = [
        what
        for what, v in (("pg_stat_activity", activity), ("max_connections", max_connections), ("logs", logs))
        if isinstance(v, BaseException) or v is None
    ]
    if used is None:
        why = ", ".join(unknown) or "connection counts"
        return Finding.error(code, title, f"could not read {why}; pool errors in logs: {n_errors}", **data)
    detail = f"{used} of {max_connections} connections in use ({pct:g}%), no pool errors in the logs"
    if unknown:
        detail += f" (not checked: {', '.join(unknown)})"
    return Finding.ok(code, f"Connections at {pct:g}% of max_connections", detail, **data)


@takes_fetched
def idle_in_transaction(
    activity: pd.DataFrame | BaseException | None,
    *,
    max_idle_s: float = IDLE_IN_TRANSACTION_S,
    now: datetime | None = None,
) -> Finding:
    """``DB_IDLE_IN_TRANSACTION``: a session idle inside an open transaction for longer than ``max_idle_s``."""
    code, title = "DB_IDLE_IN_TRANSACTION", f"Sessions idle in transaction > {max_idle_s:g} s"
    if isinstance(activity, BaseException):
        return Finding.error(code, title, activity)
    if activity is None:
        return Finding.skipped(code, title, "no database connection")
    df = with_ages(activity, now)
    idle = (
        df[df["state"].isin(IDLE_IN_TX_STATES) & (df["state_s"] > max_idle_s)]
        if "state" in df
        else df.iloc[0:0]
    )
    rows = idle_table(idle)
    data = {"sessions": rows.to_dict(orient="records"), "threshold_s": max_idle_s}
    if len(idle):
        worst = idle.sort_values("state_s", ascending=False).iloc[0]
        return Finding.fail(
            code,
            f"{len(idle)} session(s) idle in transaction > {max_idle_s:g} s",
            f"longest: pid {worst.get('pid')} ({worst.get('application_name') or '?'}) idle "
            f"{worst['state_s']:.0f} s in a transaction open {worst.get('xact_s', float('nan')):.0f} s;"
            " it holds its locks until it commits or is terminated",
            **data,
        )
    return Finding.ok(
        code,
        "No session idle in transaction too long",
        f"none idle in transaction for more than {max_idle_s:g} s",
        **data,
    )


def idle_table(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["pid", "application_name", "usename", "state", "state_s", "xact_s", "wait_event", "query"]
    return df[[c for c in cols if c in df]].reset_index(drop=True)


@takes_fetched
def long_running_queries(
    activity: pd.DataFrame | BaseException | None,
    *,
    max_query_s: float = LONG_RUNNING_QUERY_S,
    now: datetime | None = None,
) -> Finding:
    """``DB_LONG_RUNNING_QUERY``: an active client query running longer than ``max_query_s``."""
    code, title = "DB_LONG_RUNNING_QUERY", f"Queries running > {max_query_s:g} s"
    if isinstance(activity, BaseException):
        return Finding.error(code, title, activity)
    if activity is None:
        return Finding.skipped(code, title, "no database connection")
    long = long_queries(activity, min_s=max_query_s, now=now)
    data = {"queries": long.to_dict(orient="records"), "threshold_s": max_query_s}
    if len(long):
        worst = long.iloc[0]
        return Finding.fail(
            code,
            f"{len(long)} query(ies) running > {max_query_s:g} s",
            f"longest: pid {worst.get('pid')} ({worst.get('application_name') or '?'}) running "
            f"{worst['query_s']:.0f} s: {str(worst.get('query') or '')[:120]}",
            **data,
        )
    return Finding.ok(code, "No long-running query", f"no active query older than {max_query_s:g} s", **data)


def long_queries(activity: pd.DataFrame, *, min_s: float = 0.0, now: datetime | None = None) -> pd.DataFrame:
    """Active client queries (not this session's own) sorted by age, oldest first (for the plot/table)."""
    cols = [
        "pid",
        "application_name",
        "usename",
        "state",
        "query_s",
        "wait_event_type",
        "wait_event",
        "query",
    ]
    if activity is None or len(activity) == 0:
        return pd.DataFrame(columns=cols)
    df = with_ages(client_sessions(activity), now)
    mask = (df["state"] == "active") & (df["query_s"] > min_s)
    if "is_self" in df:
        mask &= ~df["is_self"].fillna(False).astype(bool)
    if "query" in df:
        mask &= ~df["query"].fillna("").str.contains("pg_stat_activity", case=False, regex=False)
    out = df[mask].sort_values("query_s", ascending=False)
    return out[[c for c in cols if c in out]].reset_index(drop=True)


@takes_fetched
def connection_errors_in_logs(logs: pd.DataFrame | BaseException | None) -> Finding:
    """``DB_CONNECTION_REFUSED``: 'connection refused' lines in the API logs (the runbook's first symptom)."""
    if logs is None:
        return Finding.skipped("DB_CONNECTION_REFUSED", "'connection refused' lines in the logs", "no logs")
    return log_checks.pattern_finding(
        logs, "DB_CONNECTION_REFUSED", REFUSED_PATTERN, what="connection refused"
    )


# --- configuration ----------------------------------------------------------------------------


@takes_fetched
def url_mismatch(task: Any, instance: Mapping[str, Any] | BaseException | None) -> Finding:
    """``DB_URL_MISMATCH``: the task definition's DATABASE_URL host is not the RDS endpoint (hosts only shown).

    ``task`` is the service's task definition environment as an object/mapping with ``url`` (its
    DATABASE_URL, kept in memory) and ``task_definition`` (``family:revision``), or the URL itself.
    """
    code, title = "DB_URL_MISMATCH", "DATABASE_URL in the task definition against the RDS endpoint"
    for value in (task, instance):
        if isinstance(value, BaseException):
            return Finding.error(code, title, value)
    url = task if isinstance(task, str) or task is None else _get(task, "url")
    label = "" if isinstance(task, str) or task is None else str(_get(task, "task_definition") or "")
    if not url:
        return Finding.fail(
            code,
            "DATABASE_URL missing from the task definition",
            f"{label or 'the task definition'} has no DATABASE_URL environment variable (or secret)",
            task_definition=label,
        )
    if not isinstance(instance, Mapping) or not instance:
        return Finding.skipped(code, title, "no RDS instance to compare with")
    endpoint = (instance.get("Endpoint") or {}).get("Address")
    task_host = url_host(str(url))
    rds_host = str(endpoint).lower() if endpoint else None
    data = {"task_definition": label, "task_host": task_host, "rds_endpoint": rds_host}
    if not rds_host:
        return Finding.error(code, title, "RDS reports no endpoint address yet", **data)
    if task_host != rds_host:
        return Finding.fail(
            code,
            "DATABASE_URL points at another host",
            f"{label or 'task definition'}: DATABASE_URL host {task_host} is not the RDS endpoint {rds_host}",
            **data,
        )
    return Finding.ok(code, "DATABASE_URL host is the RDS endpoint", f"{task_host} ({label})", **data)


@takes_fetched
def connection_error_lines(logs: pd.DataFrame | BaseException | None) -> pd.DataFrame:
    """Pool-exhausted, too-many-clients and connection-refused log lines, with a ``kind`` column."""
    if not isinstance(logs, pd.DataFrame) or logs.empty:
        return pd.DataFrame(columns=["timestamp", "kind", "message"])
    kinds = (
        ("pool exhausted", r"QueuePool limit|pool exhausted"),
        ("too many clients", r"too many clients|remaining connection slots"),
        ("connection refused", REFUSED_PATTERN),
    )
    parts = []
    for kind, pattern in kinds:
        hits = log_checks.matching(logs, pattern)
        parts.append(pd.DataFrame({"timestamp": hits["timestamp"], "kind": kind, "message": hits["message"]}))
    out = pd.concat(parts, ignore_index=True).drop_duplicates(subset=["timestamp", "message"])
    return out.sort_values("timestamp").reset_index(drop=True)


@takes_fetched
def query_ages(activity: pd.DataFrame | BaseException | None, n: int = 15) -> pd.Series:
    """Seconds each active client query has been running, labelled ``pid app: query`` (for a bar plot)."""
    if not isinstance(activity, pd.DataFrame):
        return pd.Series(dtype="float64")
    long = long_queries(activity).head(n)
    labels = [f"{r.pid} {r.application_name or '?'}: {str(r.query or '')[:40]}" for r in long.itertuples()]
    return pd.Series(long["query_s"].to_numpy(dtype="float64"), index=labels, dtype="float64")
