"""CloudWatch Logs Insights: run a query under a poll deadline and type its results as a frame."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from propflow_ops.sources import aws
from propflow_ops.sources.logparse import STR_DTYPE

# CloudWatch Logs Insights query used when the window is too large to fetch.
AGGREGATE_QUERY = "stats count(*) as requests, pct(latency_ms, 95) as p95_latency_ms by bin(1m) as minute"


def epoch_ms(dt: datetime) -> int:
    """Milliseconds since the epoch, as CloudWatch Logs takes times (a naive time is UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


class InsightsTimeout(TimeoutError):
    """A Logs Insights query did not complete within the poll timeout."""


def insights_aggregate(
    log_group: str,
    start: datetime,
    end: datetime,
    query: str,
    *,
    client: Any = None,
    poll_timeout_s: float = 30,
    poll_interval_s: float = 0.5,
) -> pd.DataFrame:
    """Run a Logs Insights query and return its results as a typed frame.

    Polls get_query_results until Complete; raises :class:`InsightsTimeout` (after
    stopping the query) when it takes longer than ``poll_timeout_s``, and
    RuntimeError when the query Failed/Cancelled.
    """
    logs = client or aws.client("logs")
    qid = logs.start_query(
        logGroupName=log_group,
        startTime=epoch_ms(start) // 1000,
        endTime=epoch_ms(end) // 1000,
        queryString=query,
    )["queryId"]
    deadline = time.monotonic() + poll_timeout_s
    while True:
        resp = logs.get_query_results(queryId=qid)
        status = resp.get("status")
        if status == "Complete":
            df = parse_insights_results(resp)
            df.attrs["query_id"] = qid
            return df
        if status in ("Failed", "Cancelled", "Timeout", "Unknown"):
            raise RuntimeError(f"Logs Insights query {qid} ended with status {status}")
        if time.monotonic() >= deadline:
            try:
                logs.stop_query(queryId=qid)
            except Exception:  # noqa: BLE001 - best effort; the timeout is what matters
                pass
            raise InsightsTimeout(f"Logs Insights query {qid} still {status} after {poll_timeout_s:g}s")
        time.sleep(poll_interval_s)


def _convert_insights_column(name: str, values: list[str | None]) -> pd.Series:
    s = pd.Series(values, dtype=STR_DTYPE, name=name)
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return s
    if name == "@timestamp" or name.startswith("bin(") or name in ("minute", "bin", "time", "timestamp"):
        parsed = pd.to_datetime(s, utc=True, errors="coerce", format="mixed")
        if parsed.notna().sum() == len(present):
            return parsed.astype("datetime64[ns, UTC]")
    if name.startswith("@") and name not in ("@timestamp",):
        return s
    nums = pd.to_numeric(s, errors="coerce")
    if nums.notna().sum() == len(present):
        if all(v.lstrip("-").isdigit() for v in present if v is not None):
            return nums.astype("Int64")
        return nums.astype("float64")
    # A time-looking column under another alias.
    parsed = pd.to_datetime(s, utc=True, errors="coerce", format="%Y-%m-%d %H:%M:%S.%f")
    if parsed.notna().sum() == len(present):
        return parsed.astype("datetime64[ns, UTC]")
    return s


def parse_insights_results(response: dict[str, Any]) -> pd.DataFrame:
    """GetQueryResults ``results`` ([[{field, value}, ...], ...]) -> typed frame.

    Column order follows first appearance. ``@ptr`` is dropped. Values are typed
    per column: timestamps (``@timestamp``, ``bin(...)`` and values like
    ``2024-11-26 05:46:00.000``) become datetime64[ns, UTC], all-integer columns
    Int64, all-numeric columns float64, the rest ``str``. The response's
    ``statistics`` and ``status`` go to ``df.attrs``. Rows are sorted by the
    first datetime column when there is one.
    """
    rows = response.get("results") or []
    names: list[str] = []
    records: list[dict[str, str | None]] = []
    for row in rows:
        rec: dict[str, str | None] = {}
        for cell in row:
            name = cell.get("field")
            if not name or name == "@ptr":
                continue
            if name not in rec and name not in names:
                names.append(name)
            rec[name] = cell.get("value")
        records.append(rec)
    data = {name: _convert_insights_column(name, [r.get(name) for r in records]) for name in names}
    df = pd.DataFrame(data, columns=names)
    time_cols = [c for c in names if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    if time_cols:
        df = df.sort_values(time_cols[0], kind="stable").reset_index(drop=True)
    df.attrs["status"] = response.get("status")
    if response.get("statistics"):
        df.attrs["statistics"] = dict(response["statistics"])
    return df
