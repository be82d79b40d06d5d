"""CloudWatch metrics -> a (timestamp, value) frame.

moto: Average/Maximum/Minimum/Sum/SampleCount work; percentiles (``p95``) do
not (empty or HTTP 500): compute percentiles from request logs instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from propflow_ops.sources import aws

COLUMNS = ["timestamp", "value"]


def empty_series_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "value": pd.Series([], dtype="float64"),
        }
    )


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def metric_series(
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    start: datetime,
    end: datetime,
    *,
    period: int = 60,
    stat: str = "Average",
    client: Any = None,
) -> pd.DataFrame:
    """One metric statistic over [start, end] via GetMetricData (paginated), sorted by time.

    ``stat`` is a CloudWatch statistic (``Average``, ``Maximum``, ``Sum``, ``p95`` ...).
    Columns: ``timestamp`` datetime64[ns, UTC], ``value`` float64; no rows when
    CloudWatch has no data. ``df.attrs`` holds namespace/metric/stat/period and
    the query's ``status_code`` (``Complete`` / ``PartialData``) and messages.
    """
    cw = client or aws.client("cloudwatch")
    query = {
        "Id": "m0",
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            },
            "Period": int(period),
            "Stat": stat,
        },
        "ReturnData": True,
    }
    kwargs: dict[str, Any] = {
        "MetricDataQueries": [query],
        "StartTime": _utc(start),
        "EndTime": _utc(end),
        "ScanBy": "TimestampAscending",
    }
    stamps: list[datetime] = []
    values: list[float] = []
    status_code: str | None = None
    messages: list[str] = []
    token: str | None = None
    while True:
        if token:
            kwargs["NextToken"] = token
        resp = cw.get_metric_data(**kwargs)
        for result in resp.get("MetricDataResults", []):
            stamps.extend(result.get("Timestamps", []))
            values.extend(float(v) for v in result.get("Values", []))
            status_code = result.get("StatusCode", status_code)
            messages.extend(m.get("Value", "") for m in result.get("Messages", []) if m.get("Value"))
        new_token = resp.get("NextToken")
        if not new_token or new_token == token:
            break
        token = new_token
    if stamps:
        df = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(pd.Series(stamps), utc=True).astype("datetime64[ns, UTC]"),
                "value": pd.Series(values, dtype="float64"),
            }
        )
        df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    else:
        df = empty_series_frame()
    df.attrs.update(
        namespace=namespace,
        metric=metric,
        dimensions=dict(dimensions),
        stat=stat,
        period=int(period),
        status_code=status_code,
        messages=messages,
    )
    return df
