"""Latency checks: p50/p95/p99 per minute and per endpoint, slow queries, RDS CPU, missing indexes.

Percentiles come from the latency metric when CloudWatch has percentile data (the team's own
metric, else the load balancer's ``TargetResponseTime``), else from the request lines of the API
logs (any line with a method, a path and a duration, whatever the dialect). Pure: frames in,
findings out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from propflow_ops.checks import logs as log_checks
from propflow_ops.checks.ecs import CPU_HIGH_PCT, utilisation_high
from propflow_ops.findings import Finding
from propflow_ops.results import takes_fetched

LATENCY_P95_MS = 500.0
#: API_LATENCY_HIGH needs this many minutes with p95 over the threshold (or the whole-window p95 over it).
MIN_SLOW_MINUTES = 3
SLOW_QUERY_MS = 500.0
SLOW_QUERY_PATTERN = r"slow query"
#: A table is a missing-index suspect when sequential scans outnumber index scans, it has at least this
#: many rows, and sequential scans read at least SEQ_TUP_READ_MIN rows in total.
MIN_TABLE_ROWS = 10_000
SEQ_TUP_READ_MIN = 100_000
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}

_ID_SEGMENT = re.compile(r"/(?:\d+|[0-9a-f]{8}-[0-9a-f-]{27,}|wst_[0-9a-z]+)(?=/|$)", re.I)
_DURATION = re.compile(r"slow query:?\s*([\d.]+)\s*ms", re.I)
_WHERE_COL = re.compile(r"\bWHERE\s+(?:\"?(\w+)\"?\.)?\"?(\w+)\"?\s*(?:=|IN\b|<|>|BETWEEN\b)", re.I)
_FROM_TABLE = re.compile(r"\bFROM\s+\"?(\w+)\"?", re.I)


def endpoint_of(method: Any, path: Any) -> str:
    """``GET /api/v1/properties/{id}/units``: ids folded so one endpoint is one row."""
    p = _ID_SEGMENT.sub("/{id}", str(path or "?"))
    return f"{method or '?'} {p}"


def requests(logs: pd.DataFrame) -> pd.DataFrame:
    """Request lines that carry a latency: whatever the dialect, a line with a method, a path and a
    duration (:func:`checks.logs.is_request`)."""
    if logs is None or len(logs) == 0 or "latency_ms" not in logs:
        return pd.DataFrame(columns=["timestamp", "endpoint", "latency_ms", "status"])
    mask = logs["latency_ms"].notna() & log_checks.is_request(logs)
    df = logs[mask]
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(df["timestamp"], utc=True),
            "endpoint": [
                endpoint_of(m, p)
                for m, p in zip(
                    df.get("method", [None] * len(df)), df.get("path", [None] * len(df)), strict=False
                )
            ],
            "latency_ms": df["latency_ms"].astype("float64"),
            "status": df["status"] if "status" in df else pd.NA,
        }
    ).reset_index(drop=True)


def _pcts(values: pd.Series) -> dict[str, float]:
    arr = values.to_numpy(dtype="float64")
    return (
        {k: float(np.percentile(arr, q * 100)) for k, q in PERCENTILES.items()}
        if len(arr)
        else {k: float("nan") for k in PERCENTILES}
    )


def per_minute_from_logs(logs: pd.DataFrame) -> pd.DataFrame:
    """timestamp (minute), requests, p50, p95, p99 (ms) from the request lines."""
    req = requests(logs)
    cols = ["timestamp", "requests", *PERCENTILES]
    if req.empty:
        return pd.DataFrame(columns=cols)
    req["timestamp"] = req["timestamp"].dt.floor("1min")
    grouped = req.groupby("timestamp")["latency_ms"]
    out = grouped.quantile(list(PERCENTILES.values())).unstack()
    out.columns = list(PERCENTILES)
    out.insert(0, "requests", grouped.size())
    out = out.reset_index()[cols]
    out[["requests", *PERCENTILES]] = out[["requests", *PERCENTILES]].round(1)
    return out


def per_minute_from_metric(metric: Mapping[str, pd.DataFrame | BaseException | None]) -> pd.DataFrame:
    """Merge {"p50": frame, "p95": frame, "p99": frame} (each timestamp, value) into one frame."""
    merged: pd.DataFrame | None = None
    for name, frame in metric.items():
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            continue
        part = frame[["timestamp", "value"]].rename(columns={"value": name})
        part["timestamp"] = pd.to_datetime(part["timestamp"], utc=True)
        merged = part if merged is None else merged.merge(part, on="timestamp", how="outer")
    if merged is None:
        return pd.DataFrame(columns=["timestamp", *PERCENTILES])
    for name in PERCENTILES:
        if name not in merged:
            merged[name] = float("nan")
    return merged.sort_values("timestamp").reset_index(drop=True)


MetricStats = Mapping[str, pd.DataFrame | BaseException | None]


def _metric_label(metric: MetricStats, default: str) -> str:
    for frame in metric.values():
        if isinstance(frame, pd.DataFrame):
            if frame.attrs.get("label"):
                return str(frame.attrs["label"])
            if frame.attrs.get("metric"):
                return f"{frame.attrs.get('namespace', '')} {frame.attrs['metric']}".strip()
    return default


@takes_fetched
def latency_per_minute(
    metric: MetricStats | BaseException | None,
    logs: pd.DataFrame | BaseException | None,
    *,
    alb: MetricStats | BaseException | None = None,
) -> pd.DataFrame:
    """Per-minute percentiles from the first source that has p95 data: the latency ``metric`` (the team's
    namespace/metric/dimensions), then the load balancer's ``alb`` TargetResponseTime (already in ms),
    then the request lines of the logs. ``df.attrs["source"]`` says which ("metric", "alb", "logs" or
    "none"); ``df.attrs["sources_tried"]`` what each source had."""
    tried: dict[str, str] = {}
    for name, stats in (("metric", metric), ("alb", alb)):
        if stats is None:
            continue
        if isinstance(stats, BaseException):
            tried[name] = f"unreadable ({type(stats).__name__})"
            continue
        frame = per_minute_from_metric(stats)
        errors = [v for v in stats.values() if isinstance(v, BaseException)]
        if len(frame) and frame["p95"].notna().any():
            frame.attrs["source"] = name
            frame.attrs["metric"] = _metric_label(stats, name)
            tried[name] = f"{int(frame['p95'].notna().sum())} minutes of p95"
            frame.attrs["sources_tried"] = tried
            return frame
        tried[name] = (
            f"unreadable ({type(errors[0]).__name__})" if errors else "no p95 datapoints in the window"
        )
    if isinstance(logs, pd.DataFrame):
        out = per_minute_from_logs(logs)
        out.attrs["source"] = "logs" if len(out) else "none"
        tried["logs"] = f"{int(out['requests'].sum()) if len(out) else 0} request lines with a duration"
        out.attrs["sources_tried"] = tried
        return out
    tried["logs"] = f"unreadable ({type(logs).__name__})" if isinstance(logs, BaseException) else "not read"
    out = pd.DataFrame(columns=["timestamp", *PERCENTILES])
    out.attrs["source"] = "none"
    out.attrs["sources_tried"] = tried
    return out


def source_note(per_minute: pd.DataFrame) -> str:
    """One line for the reader: where the percentiles came from, and what the other sources had."""
    source = per_minute.attrs.get("source", "none")
    tried = per_minute.attrs.get("sources_tried") or {}
    others = "; ".join(f"{k}: {v}" for k, v in tried.items() if k != source)
    where = {
        "metric": f"the metric {per_minute.attrs.get('metric') or ''}".rstrip(),
        "alb": f"the load balancer's {per_minute.attrs.get('metric') or 'TargetResponseTime'}",
        "logs": f"the request lines of the logs ({tried.get('logs', '')})",
        "none": "nowhere: no source had latency data",
    }.get(source, source)
    return f"Percentiles from {where}." + (f" Also tried: {others}." if others else "")


def series(per_minute: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{"p50": frame, "p95": ..., "p99": ...} with ``timestamp``/``value`` columns, for ``plots.timeseries``."""
    if per_minute is None or per_minute.empty:
        return {}
    return {
        name: per_minute[["timestamp", name]].rename(columns={name: "value"}).dropna()
        for name in PERCENTILES
        if name in per_minute
    }


@takes_fetched
def by_endpoint(logs: pd.DataFrame | BaseException | None, n: int = 10) -> pd.DataFrame:
    """The slowest endpoints by p95: endpoint, requests, p50, p95, p99, max (ms)."""
    cols = ["endpoint", "requests", *PERCENTILES, "max"]
    if not isinstance(logs, pd.DataFrame):
        return pd.DataFrame(columns=cols)
    req = requests(logs)
    if req.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for endpoint, group in req.groupby("endpoint"):
        rows.append(
            {
                "endpoint": endpoint,
                "requests": len(group),
                **_pcts(group["latency_ms"]),
                "max": float(group["latency_ms"].max()),
            }
        )
    out = pd.DataFrame(rows, columns=cols).sort_values("p95", ascending=False).head(n)
    return out.round(1).reset_index(drop=True)


@takes_fetched
def latency_high(
    per_minute: pd.DataFrame,
    logs: pd.DataFrame | BaseException | None = None,
    *,
    threshold_ms: float = LATENCY_P95_MS,
    min_minutes: int = MIN_SLOW_MINUTES,
) -> Finding:
    """``API_LATENCY_HIGH``: p95 above ``threshold_ms`` for at least ``min_minutes`` minutes (or for the window)."""
    code, title = "API_LATENCY_HIGH", f"API p95 latency against {threshold_ms:g} ms"
    source = per_minute.attrs.get("source", "logs")
    tried = per_minute.attrs.get("sources_tried") or {}
    info = log_checks.summary(logs)
    if per_minute is None or len(per_minute) == 0 or per_minute["p95"].dropna().empty:
        said = "; ".join(f"{k}: {v}" for k, v in tried.items())
        if (
            isinstance(logs, BaseException)
            and not tried.get("metric", "").startswith("no p95")
            and not tried.get("alb", "").startswith("no p95")
        ):
            return Finding.error(code, title, logs)
        reason = (
            "no latency data: no metric has percentiles in the window and the logs hold no request "
            f"line with a duration ({info.get('lines', 0)} lines read, dialect {info.get('dialect', '?')})"
            + (f". Sources tried: {said}" if said else "")
            + ". Set latency_namespace/latency_metric (or load_balancer) or map the log dialect "
            "(log_mapping) so latency can be judged"
        )
        return Finding.warn(
            code, "API latency not measurable", reason, source="none", sources_tried=tried, logs=info
        )
    p95 = per_minute["p95"].astype("float64")
    slow = per_minute[p95 > threshold_ms]
    overall: dict[str, float] = {}
    if isinstance(logs, pd.DataFrame) and source == "logs":
        overall = _pcts(requests(logs)["latency_ms"])
    data = {
        "source": source,
        "threshold_ms": threshold_ms,
        "minutes": len(per_minute),
        "minutes_over": len(slow),
        "worst_p95_ms": float(p95.max()),
        "latest_p95_ms": float(p95.iloc[-1]),
        "window": overall,
        "sources_tried": tried,
        "metric": per_minute.attrs.get("metric"),
        "logs": info,
    }
    source = {
        "metric": f"metric {per_minute.attrs.get('metric') or ''}".strip(),
        "alb": f"load balancer's TargetResponseTime {per_minute.attrs.get('metric') or ''}".strip(),
    }.get(source, source)
    window_p95 = overall.get("p95")
    if len(slow) >= min(min_minutes, len(per_minute)) or (
        window_p95 is not None and window_p95 > threshold_ms
    ):
        since = pd.Timestamp(slow["timestamp"].min()) if len(slow) else None
        return Finding.fail(
            code,
            f"API p95 latency above {threshold_ms:g} ms",
            f"{len(slow)} of {len(per_minute)} minutes over {threshold_ms:g} ms"
            + (f" since {since:%H:%M} UTC" if since is not None else "")
            + f"; worst minute p95 {p95.max():.0f} ms, latest {p95.iloc[-1]:.0f} ms"
            + (f"; window p95 {window_p95:.0f} ms" if window_p95 is not None else "")
            + f" (from the {source})",
            **data,
        )
    return Finding.ok(
        code,
        f"API p95 latency under {threshold_ms:g} ms",
        f"worst minute p95 {p95.max():.0f} ms, latest {p95.iloc[-1]:.0f} ms (from the {source})",
        **data,
    )


@takes_fetched
def slow_query_lines(logs: pd.DataFrame | BaseException | None) -> pd.DataFrame:
    """'slow query' log lines: timestamp, duration_ms, statement (normalised SQL)."""
    cols = ["timestamp", "duration_ms", "statement"]
    if not isinstance(logs, pd.DataFrame):
        return pd.DataFrame(columns=cols)
    hits = log_checks.matching(logs, SLOW_QUERY_PATTERN)
    if hits.empty:
        return pd.DataFrame(columns=cols)
    text = hits["message"].astype("object").fillna("").astype(str)
    durations = text.str.extract(_DURATION)[0].astype("float64")
    statements = text.str.replace(r"^.*?slow query:?\s*[\d.]+\s*ms\s*", "", regex=True, flags=re.I).str[:300]
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(hits["timestamp"], utc=True).to_numpy(),
            "duration_ms": durations.to_numpy(),
            "statement": statements.to_numpy(),
        },
        columns=cols,
    )


def slow_query_summary(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per statement: count, mean and max duration (ms)."""
    cols = ["statement", "count", "mean_ms", "max_ms"]
    if lines.empty:
        return pd.DataFrame(columns=cols)
    out = (
        lines.groupby("statement")["duration_ms"]
        .agg(count="size", mean_ms="mean", max_ms="max")
        .reset_index()
    )
    return out.sort_values(["count", "max_ms"], ascending=False).round(1).reset_index(drop=True)[cols]


@takes_fetched
def slow_queries(
    logs: pd.DataFrame | BaseException | None,
    statements: pd.DataFrame | BaseException | None = None,
    *,
    threshold_ms: float = SLOW_QUERY_MS,
) -> Finding:
    """``DB_SLOW_QUERIES``: 'slow query' lines in the logs, or pg_stat_statements entries whose mean time is
    above ``threshold_ms`` (when the extension is installed)."""
    code, title = "DB_SLOW_QUERIES", "Slow queries (logs and pg_stat_statements)"
    if isinstance(logs, BaseException) and not isinstance(statements, pd.DataFrame):
        return Finding.error(code, title, logs)
    lines = slow_query_lines(logs)
    stmt_slow = pd.DataFrame()
    stmt_note = "pg_stat_statements not installed"
    if isinstance(statements, pd.DataFrame):
        stmt_note = f"{len(statements)} statements in pg_stat_statements"
        mean_col = next((c for c in ("mean_exec_time_ms", "mean_exec_time") if c in statements), None)
        if mean_col:
            stmt_slow = statements[statements[mean_col].astype("float64") > threshold_ms]
    elif isinstance(statements, BaseException):
        stmt_note = f"pg_stat_statements unreadable ({type(statements).__name__})"
    summary = slow_query_summary(lines)
    data = {
        "log_lines": len(lines),
        "statements_over": len(stmt_slow),
        "threshold_ms": threshold_ms,
        "top": summary.head(5).to_dict(orient="records"),
        "pg_stat_statements": stmt_note,
        "logs": log_checks.summary(logs),
    }
    if len(lines) or len(stmt_slow):
        parts = []
        if len(lines):
            top = summary.iloc[0]
            parts.append(
                f"{len(lines)} 'slow query' log lines (max {lines['duration_ms'].max():.0f} ms); most "
                f"frequent: {top['statement'][:120]} ({top['count']}x, mean {top['mean_ms']:.0f} ms)"
            )
        if len(stmt_slow):
            parts.append(
                f"{len(stmt_slow)} statements with mean time > {threshold_ms:g} ms in pg_stat_statements"
            )
        return Finding.fail(code, "Slow queries found", "; ".join(parts) + f" ({stmt_note})", **data)
    if isinstance(statements, BaseException):  # half the evidence is missing: not an all-clear
        return Finding.error(
            code,
            title,
            f"no 'slow query' log lines in the window, but the database could not be "
            f"read: {type(statements).__name__}: {(str(statements).splitlines() or [''])[0][:200]}",
            **data,
        )
    return Finding.ok(
        code, "No slow queries", f"no 'slow query' log lines in the window; {stmt_note}", **data
    )


@takes_fetched
def rds_cpu_high(series: pd.DataFrame | BaseException | None, *, threshold: float = CPU_HIGH_PCT) -> Finding:
    """``RDS_CPU_HIGH``: RDS CPUUtilization above 80%."""
    return utilisation_high(series, code="RDS_CPU_HIGH", what="RDS CPUUtilization", threshold=threshold)


def filter_columns(lines: pd.DataFrame) -> dict[str, list[str]]:
    """{table: [columns]} that the slow statements filter on (WHERE t.col = ...)."""
    out: dict[str, list[str]] = {}
    for stmt in lines.get("statement", pd.Series(dtype="object")).dropna().unique():
        table_match = _FROM_TABLE.search(str(stmt))
        for qual, col in _WHERE_COL.findall(str(stmt)):
            table = qual or (table_match.group(1) if table_match else "")
            if table and col not in out.setdefault(table, []):
                out[table].append(col)
    return out


def seq_scan_suspects(
    stats: pd.DataFrame, *, min_rows: int = MIN_TABLE_ROWS, min_seq_tup_read: int = SEQ_TUP_READ_MIN
) -> pd.DataFrame:
    """Tables where sequential scans dominate (pg_stat_user_tables): big enough, seq_scan > idx_scan."""
    if stats is None or len(stats) == 0:
        return pd.DataFrame(columns=["table", "seq_scan", "idx_scan", "seq_tup_read", "n_live_tup"])
    df = stats.copy()
    if "table" not in df:
        df["table"] = df["relname"] if "relname" in df else df.iloc[:, 0]
    for col in ("seq_scan", "idx_scan", "seq_tup_read", "n_live_tup"):
        df[col] = pd.to_numeric(df.get(col, 0), errors="coerce").fillna(0).astype("int64")
    # n_live_tup is 0 after a stats reset; rows read per sequential scan estimates the size then
    per_scan = (df["seq_tup_read"] // df["seq_scan"].clip(lower=1)).astype("int64")
    df["n_live_tup"] = df["n_live_tup"].where(df["n_live_tup"] >= per_scan, per_scan)
    mask = (
        (df["n_live_tup"] >= min_rows)
        & (df["seq_scan"] > df["idx_scan"])
        & (df["seq_tup_read"] >= min_seq_tup_read)
    )
    out = df[mask].sort_values("seq_tup_read", ascending=False)
    return out[["table", "seq_scan", "idx_scan", "seq_tup_read", "n_live_tup"]].reset_index(drop=True)


def suggest_index(table: str, columns: list[str]) -> str:
    if not columns:
        return (
            f"-- find the filtered column: EXPLAIN the slow statements on {table}, then\n"
            f"CREATE INDEX CONCURRENTLY ix_{table}_<column> ON {table} (<column>);"
        )
    cols = ", ".join(columns[:2])
    return f"CREATE INDEX CONCURRENTLY ix_{table}_{'_'.join(columns[:2])} ON {table} ({cols});"


@takes_fetched
def missing_index(
    stats: pd.DataFrame | BaseException | None,
    slow_lines: pd.DataFrame | None = None,
    *,
    min_rows: int = MIN_TABLE_ROWS,
    min_seq_tup_read: int = SEQ_TUP_READ_MIN,
) -> Finding:
    """``DB_MISSING_INDEX``: a large table read mostly by sequential scans; suggests an index on the columns
    the slow statements filter on."""
    code, title = "DB_MISSING_INDEX", "Tables where sequential scans dominate"
    if isinstance(stats, BaseException):
        return Finding.error(code, title, stats)
    if stats is None:
        return Finding.skipped(code, title, "no database connection")
    suspects = seq_scan_suspects(stats, min_rows=min_rows, min_seq_tup_read=min_seq_tup_read)
    columns = filter_columns(slow_lines if slow_lines is not None else pd.DataFrame())
    suggestions = {
        row.table: suggest_index(row.table, columns.get(row.table, [])) for row in suspects.itertuples()
    }
    data = {"tables": suspects.to_dict(orient="records"), "suggested": suggestions, "min_rows": min_rows}
    if len(suspects):
        worst = suspects.iloc[0]
        return Finding.fail(
            code,
            f"Sequential scans dominate on {', '.join(suspects['table'])}",
            f"{worst['table']}: {worst['seq_scan']} seq scans vs {worst['idx_scan']} index scans, "
            f"{worst['seq_tup_read']:,} rows read sequentially ({worst['n_live_tup']:,} rows). "
            f"Suggested: {suggestions[worst['table']]}",
            **data,
        )
    return Finding.ok(
        code,
        "No table dominated by sequential scans",
        f"{len(stats)} tables checked (>= {min_rows:,} rows, seq_scan > idx_scan)",
        **data,
    )


def window_minutes(start: datetime | None, end: datetime | None) -> float:
    return (end - start).total_seconds() / 60 if start and end else float("nan")
