from __future__ import annotations

from datetime import timedelta

import pandas as pd

from checks.logframes import NOW, frame, line
from propflow_ops.checks import latency


def requests_over(minutes, ms, path="/api/v1/properties", per_minute=10):
    return [
        line(m - 0.02 * i, latency_ms=ms, method="GET", path=path, status=200)
        for m in range(minutes, 0, -1)
        for i in range(per_minute)
    ]


def test_percentiles_from_logs_and_endpoints():
    df = frame(
        requests_over(30, 100.0) + requests_over(30, 900.0, path="/api/v1/properties/7/units", per_minute=2)
    )
    pm = latency.latency_per_minute({}, df)
    assert pm.attrs["source"] == "logs"
    assert len(pm) == 30 and set(pm.columns) >= {"p50", "p95", "p99", "requests"}
    assert pm["requests"].iloc[0] == 12
    ep = latency.by_endpoint(df)
    assert ep.iloc[0]["endpoint"] == "GET /api/v1/properties/{id}/units" and ep.iloc[0]["p95"] == 900.0


def test_metric_preferred_when_it_has_percentiles():
    ts = pd.date_range(NOW - timedelta(minutes=5), periods=5, freq="1min", tz="UTC")
    metric = {
        "p50": pd.DataFrame({"timestamp": ts, "value": [80.0] * 5}),
        "p95": pd.DataFrame({"timestamp": ts, "value": [700.0] * 5}),
        "p99": RuntimeError("HTTP 500"),
    }
    pm = latency.latency_per_minute(metric, frame(requests_over(5, 100.0)))
    assert pm.attrs["source"] == "metric" and pm["p95"].tolist() == [700.0] * 5
    assert latency.latency_high(pm).status == "fail"
    empty = {"p95": pd.DataFrame({"timestamp": [], "value": []})}
    assert latency.latency_per_minute(empty, frame(requests_over(5, 100.0))).attrs["source"] == "logs"


def test_latency_high():
    fast = frame(requests_over(60, 120.0))
    assert latency.latency_high(latency.latency_per_minute({}, fast), fast).status == "ok"
    slow = frame(requests_over(60, 120.0) + requests_over(10, 2000.0, per_minute=30))
    f = latency.latency_high(latency.latency_per_minute({}, slow), slow)
    assert f.status == "fail" and f.data["minutes_over"] == 10
    assert latency.latency_high(latency.latency_per_minute({}, slow), slow, threshold_ms=5000).status == "ok"
    none = latency.latency_per_minute({}, frame([line(1, event="db", message="x")]))
    missing = latency.latency_high(none)  # no request line is missing data, not an error
    assert missing.status == "warn" and "no latency data" in missing.detail


def test_slow_queries_and_missing_index():
    stmt = (
        "slow query: 1834.2 ms SELECT maintenance_requests.* FROM maintenance_requests WHERE "
        "maintenance_requests.property_id = %(property_id)s"
    )
    df = frame(
        [
            line(2, "WARNING", stmt, event="db"),
            line(1, "WARNING", stmt.replace("1834.2", "950.0"), event="db"),
        ]
    )
    f = latency.slow_queries(df, None)
    assert f.status == "fail" and f.data["log_lines"] == 2
    assert latency.slow_queries(frame([line(1)]), None).status == "ok"
    dead = latency.slow_queries(frame([line(1)]), OSError("connection refused"))
    assert dead.status == "error" and "connection refused" in dead.detail  # a dead database is no all-clear
    assert latency.slow_queries(frame([line(1)]), OSError()).status == "error"
    statements = pd.DataFrame({"query": ["SELECT 1"], "mean_exec_time_ms": [812.0]})
    assert latency.slow_queries(frame([line(1)]), statements).status == "fail"
    stats = pd.DataFrame(
        {
            "relname": ["maintenance_requests", "properties", "users"],
            "seq_scan": [150, 900, 3],
            "idx_scan": [20, 0, 500],
            "seq_tup_read": [7_500_000, 22_500, 100],
            "n_live_tup": [50_000, 25, 200],
        }
    )
    f = latency.missing_index(stats, latency.slow_query_lines(df))
    assert f.status == "fail" and f.data["tables"][0]["table"] == "maintenance_requests"
    assert "ON maintenance_requests (property_id)" in f.data["suggested"]["maintenance_requests"]
    stats.loc[0, "n_live_tup"] = 0  # after pg_stat_reset: size estimated from rows read per scan
    assert latency.missing_index(stats, None).status == "fail"
    stats.loc[0, "idx_scan"] = 5000
    assert latency.missing_index(stats, None).status == "ok"


def test_rds_cpu():
    ts = pd.date_range(NOW - timedelta(minutes=5), periods=5, freq="1min", tz="UTC")
    assert latency.rds_cpu_high(pd.DataFrame({"timestamp": ts, "value": [90.0] * 5})).status == "fail"
    assert latency.rds_cpu_high(pd.DataFrame({"timestamp": ts, "value": [20.0] * 5})).status == "ok"
