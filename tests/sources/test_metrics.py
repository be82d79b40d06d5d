"""sources.metrics against a real moto server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from propflow_ops.sources import aws, metrics


def test_metric_series_average_and_maximum(aws_env: str, unique: str) -> None:
    cw = aws.client("cloudwatch")
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    dims = {"ClusterName": "propflow", "ServiceName": f"svc-{unique}"}
    # two samples per minute for 10 minutes, written out of order
    data = []
    for m in reversed(range(10)):
        for v in (10.0 * m, 10.0 * m + 4):
            data.append(
                {
                    "MetricName": "MemoryUtilization",
                    "Dimensions": [{"Name": k, "Value": val} for k, val in dims.items()],
                    "Timestamp": base + timedelta(minutes=m, seconds=5 if v % 10 == 0 else 35),
                    "Value": v,
                    "Unit": "Percent",
                }
            )
    cw.put_metric_data(Namespace="AWS/ECS", MetricData=data)
    start, end = base - timedelta(minutes=1), base + timedelta(minutes=15)

    avg = metrics.metric_series("AWS/ECS", "MemoryUtilization", dims, start, end)
    assert list(avg.columns) == ["timestamp", "value"]
    assert str(avg["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert avg["timestamp"].is_monotonic_increasing
    assert avg["value"].tolist() == [10.0 * m + 2 for m in range(10)]
    assert avg["timestamp"].iloc[0] == pd.Timestamp(base)

    mx = metrics.metric_series("AWS/ECS", "MemoryUtilization", dims, start, end, stat="Maximum")
    assert mx["value"].tolist() == [10.0 * m + 4 for m in range(10)]
    assert mx.attrs["stat"] == "Maximum"

    both = metrics.metric_stats(
        "AWS/ECS", "MemoryUtilization", dims, start, end, stats=("Minimum", "Maximum")
    )
    assert list(both) == ["Minimum", "Maximum"]
    assert both["Minimum"]["value"].tolist() == [10.0 * m for m in range(10)]
    assert both["Maximum"]["value"].tolist() == mx["value"].tolist()
    assert both["Minimum"].attrs["stat"] == "Minimum"


def test_metric_series_no_data_is_empty_with_columns(aws_env: str, unique: str) -> None:
    now = datetime.now(UTC)
    df = metrics.metric_series(
        "AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": unique}, now - timedelta(hours=1), now
    )
    assert len(df) == 0
    assert list(df.columns) == ["timestamp", "value"]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(df["value"].dtype) == "float64"
