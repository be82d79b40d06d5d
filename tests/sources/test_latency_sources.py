"""Latency from where teams keep it: a custom metric, the ALB's TargetResponseTime, else the logs.

moto cannot compute percentiles (DESIGN.md; GetMetricData with ``p95`` fails on its server), so the
percentile path is proven twice: against moto's real server (the metric is there, its percentiles
are not: the runbook falls back to the logs and says so), and with CloudWatch's recorded answer
for a percentile query fed to a real boto3 client through botocore's Stubber.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pandas as pd
import pytest
from botocore.stub import ANY, Stubber

from propflow_ops.checks import latency
from propflow_ops.incident import BadInput
from propflow_ops.sources import aws, logparse, metrics

END = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
START = END - timedelta(minutes=10)
STAMPS = [END - timedelta(minutes=m) for m in range(10, 0, -1)]


def request_logs(latency_ms: float) -> pd.DataFrame:
    events = [
        {
            "timestamp": int((START + timedelta(seconds=6 * i)).timestamp() * 1000),
            "logStreamName": "s",
            "message": json.dumps(
                {
                    "levelname": "INFO",
                    "http": {"method": "GET", "url": "/api/v1/properties", "status_code": 200},
                    "duration": latency_ms / 1000,
                }
            ),
        }
        for i in range(100)
    ]
    return logparse.parse_events(events)


def recorded(
    client: object, values: dict[str, list[float]], dims: list[dict[str, str]], namespace: str, metric: str
) -> Stubber:
    """CloudWatch's answer to a p50/p95/p99 query, as it returns it."""
    stub = Stubber(client)
    stub.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                {
                    "Id": f"m{i}",
                    "Label": stat,
                    "Timestamps": list(reversed(STAMPS)),
                    "Values": list(reversed(values[stat])),
                    "StatusCode": "Complete",
                }
                for i, stat in enumerate(("p50", "p95", "p99"))
            ],
            "Messages": [],
        },
        {
            "MetricDataQueries": [
                {
                    "Id": f"m{i}",
                    "MetricStat": {
                        "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims},
                        "Period": 60,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
                for i, stat in enumerate(("p50", "p95", "p99"))
            ],
            "StartTime": ANY,
            "EndTime": ANY,
            "ScanBy": "TimestampAscending",
        },
    )
    return stub


def cw() -> object:
    return boto3.client(
        "cloudwatch",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",
    )  # never called: the Stubber answers


def test_dimensions_parameter() -> None:
    assert metrics.dimensions("", {"Service": "propflow-api"}) == {"Service": "propflow-api"}
    assert metrics.dimensions("Service=api, Stage=prod", {}) == {"Service": "api", "Stage": "prod"}
    assert metrics.dimensions('{"ApiName": "propflow"}', {}) == {"ApiName": "propflow"}
    for bad in ("Service", "=x", "{not json", '["a"]', '{"a": 1}'):
        with pytest.raises(BadInput, match="latency_dimensions"):
            metrics.dimensions(bad, {})


def test_alb_target_response_time_is_converted_to_ms_and_named() -> None:
    client = cw()
    dims = [{"Name": "LoadBalancer", "Value": "app/propflow-alb/50dc6c495c0c9188"}]
    vals = {"p50": [0.08] * 10, "p95": [0.2] * 7 + [1.4, 1.6, 1.5], "p99": [0.4] * 7 + [2.9, 3.1, 3.0]}
    with recorded(client, vals, dims, "AWS/ApplicationELB", "TargetResponseTime"):
        alb = metrics.alb_response_time("app/propflow-alb/50dc6c495c0c9188", START, END, client=client)
    assert alb["p95"]["value"].tolist()[-3:] == pytest.approx([1400.0, 1600.0, 1500.0])
    assert (
        alb["p95"].attrs["label"]
        == "AWS/ApplicationELB TargetResponseTime (LoadBalancer=app/propflow-alb/50dc6c495c0c9188)"
    )
    # the team's metric had nothing; the ALB is used before the logs (which would say all is well)
    pm = latency.latency_per_minute(RuntimeError("no such metric"), request_logs(40.0), alb=alb)
    assert pm.attrs["source"] == "alb"
    f = latency.latency_high(pm, request_logs(40.0))
    assert f.status == "fail" and f.data["source"] == "alb" and f.data["minutes_over"] == 3
    assert "TargetResponseTime" in f.detail and "LoadBalancer=app/propflow-alb" in f.detail
    assert "alb" in latency.source_note(pm) or "load balancer" in latency.source_note(pm)


def test_custom_metric_first_then_alb_then_logs() -> None:
    client = cw()
    dims = [{"Name": "ApiName", "Value": "propflow"}, {"Name": "Stage", "Value": "prod"}]
    vals = {"p50": [30.0] * 10, "p95": [90.0] * 10, "p99": [150.0] * 10}
    with recorded(client, vals, dims, "Acme/Gateway", "ResponseLatency"):
        mine = metrics.latency_percentiles(
            "Acme/Gateway",
            "ResponseLatency",
            {"ApiName": "propflow", "Stage": "prod"},
            START,
            END,
            client=client,
        )
    slow_alb = {k: pd.DataFrame({"timestamp": STAMPS, "value": [5000.0] * 10}) for k in ("p50", "p95", "p99")}
    pm = latency.latency_per_minute(mine, request_logs(2000.0), alb=slow_alb)
    assert pm.attrs["source"] == "metric" and pm["p95"].tolist() == [90.0] * 10
    f = latency.latency_high(pm, request_logs(2000.0))
    assert f.status == "ok" and "Acme/Gateway ResponseLatency (ApiName=propflow, Stage=prod)" in f.detail
    # neither metric has percentiles: the logs (another dialect: duration in seconds) decide, and it says so
    empty = {k: metrics.empty_series_frame() for k in ("p50", "p95", "p99")}
    pm = latency.latency_per_minute(empty, request_logs(2000.0), alb=empty)
    assert pm.attrs["source"] == "logs"
    assert pm.attrs["sources_tried"]["metric"] == "no p95 datapoints in the window"
    f = latency.latency_high(pm, request_logs(2000.0))
    assert f.status == "fail" and "(from the logs)" in f.detail


def test_moto_has_the_metric_but_not_its_percentiles_so_the_logs_decide(aws_env: str, unique: str) -> None:
    namespace = f"PropFlow/API-{unique}"
    client = aws.client("cloudwatch")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    client.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": [{"Name": "Service", "Value": "propflow-api"}],
                "Timestamp": now - timedelta(minutes=m),
                "Values": [100.0, 1900.0],
                "Counts": [5.0, 5.0],
                "Unit": "Milliseconds",
            }
            for m in range(1, 6)
        ],
    )
    try:
        got: object = metrics.latency_percentiles(
            namespace, "Latency", {"Service": "propflow-api"}, now - timedelta(minutes=10), now, client=client
        )
    except Exception as exc:  # noqa: BLE001 - moto's server fails a percentile query: that is the point
        got = exc
    if isinstance(got, dict):  # a moto that answers percentile queries with no datapoints
        assert all(frame.empty or frame["value"].isna().all() for frame in got.values())
    pm = latency.latency_per_minute(got, request_logs(1200.0))  # type: ignore[arg-type]
    assert pm.attrs["source"] == "logs"
    assert set(pm.attrs["sources_tried"]) == {"metric", "logs"}
    assert latency.latency_high(pm, request_logs(1200.0)).status == "fail"
