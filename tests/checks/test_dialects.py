"""The same PropFlow world written in each log dialect reads the same to the checks.

The sandbox's log builder writes one world's events (seeded) in every dialect it knows
(``propflow``, ``python-json``, ``text``); each is parsed by ``sources.logparse.parse_events``
and judged by the checks. Counts of each kind of line, and every log-based finding, must not
depend on the dialect; a dialect the parser does not know must raise LOGS_UNPARSED.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable

import pandas as pd
import pytest

from propflow_ops.checks import db, latency, migration, notify, s3, websocket
from propflow_ops.checks import logs as lc
from propflow_ops.sandbox import logs as L
from propflow_ops.sources import logmapping, logparse

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
START = NOW - dt.timedelta(minutes=60)


@functools.cache
def world(dialect: str, *faults: Callable[[L.LogBuilder], None]) -> pd.DataFrame:
    """The last hour of the world's logs in ``dialect`` (cached: the checks do not change the frame)."""
    b = L.LogBuilder(["ecs/api/t1", "ecs/api/t2"], NOW, dialect=dialect)
    L.baseline(b)
    for fault in faults:
        fault(b)
    events = [
        {"timestamp": x.timestamp_ms, "message": x.message, "logStreamName": x.stream}
        for x in b.sorted_lines()
        if x.ts >= START
    ]
    return logparse.parse_events(events)


def findings(df: pd.DataFrame) -> dict[str, str]:
    pm = latency.latency_per_minute({}, df)
    out = [
        lc.error_spike(df, start=START, end=NOW),
        latency.latency_high(pm, df),
        latency.slow_queries(df),
        s3.check_upload_errors(df),
        websocket.check_reconnect_spike(df, start=START, end=NOW),
        notify.log_send_errors(df),
        migration.object_exists(df),
        db.connection_errors_in_logs(df),
        lc.unparsed(df),
    ]
    return {f.code: f.status.value for f in out}


FAULTS: dict[str, tuple[Callable[[L.LogBuilder], None], ...]] = {
    "healthy": (),
    "upload-denied": (lambda b: L.upload_error_spike(b, "AccessDenied"),),
    "latency": (L.latency_spike,),
    "reconnect-storm": (L.reconnect_storm,),
    "notify-errors": (L.notify_error_spike,),
    "oom": (L.oom_spike,),
    "db-down": (L.db_down_spike,),
    "pool-exhausted": (L.pool_exhausted_spike,),
    "redis-down": (L.redis_down_spike,),
    "migration-exists": (lambda b: L.migration_exists_spike(b, b.streams[0]),),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_dialect_reads_the_same(fault: str) -> None:
    frames = {d: world(d, *FAULTS[fault]) for d in L.DIALECTS}
    seen = {d: findings(df) for d, df in frames.items()}
    assert seen["python-json"] == seen["propflow"], fault
    assert seen["text"] == seen["propflow"], fault
    kinds = {d: lc.summary(df)["kinds"] for d, df in frames.items()}
    for d in ("python-json", "text"):
        for kind in ("request", "error", "upload", "websocket"):
            assert kinds[d][kind] == kinds["propflow"][kind], (fault, d, kind, kinds)
    for d, df in frames.items():
        info = lc.summary(df)
        assert info["understood"] == info["lines"], (d, info["formats"])
    if fault == "healthy":
        assert set(seen["propflow"].values()) <= {"ok"}, seen["propflow"]


@pytest.mark.parametrize("dialect", L.DIALECTS)
def test_the_faults_are_found_in_each_dialect(dialect: str) -> None:
    assert findings(world(dialect, *FAULTS["upload-denied"]))["UPLOAD_ERRORS_IN_LOGS"] == "fail"
    assert findings(world(dialect, *FAULTS["latency"]))["API_LATENCY_HIGH"] == "fail"
    assert findings(world(dialect, *FAULTS["latency"]))["DB_SLOW_QUERIES"] == "fail"
    assert findings(world(dialect, *FAULTS["reconnect-storm"]))["WS_RECONNECT_SPIKE"] == "fail"
    assert findings(world(dialect, *FAULTS["notify-errors"]))["NOTIFY_SEND_ERRORS"] == "fail"
    assert findings(world(dialect, *FAULTS["oom"]))["LOG_ERROR_SPIKE"] == "fail"
    assert findings(world(dialect, *FAULTS["migration-exists"]))["MIGRATION_OBJECT_EXISTS"] == "fail"


def test_python_json_is_detected_by_its_field_names() -> None:
    info = lc.summary(world("python-json"))
    assert info["dialect"].startswith("json (")
    for renamed in ("level<-levelname", "status<-http.status_code", "latency_ms<-duration", "path<-http.url"):
        assert renamed in info["dialect"], info["dialect"]
    text = lc.summary(world("text"))
    assert (
        text["dialect"].startswith("text (") and "access" in text["dialect"] and "python" in text["dialect"]
    )
    assert text["formats"]["text:access"] > 1000


def test_issue_example_line_is_an_upload_error_and_a_request() -> None:
    line = {
        "level": "ERROR",
        "method": "POST",
        "path": "/api/v1/photos/upload",
        "status": 500,
        "latency_ms": 84.1,
        "message": "upload failed: An error occurred (AccessDenied) when calling the PutObject operation",
    }
    df = logparse.parse_events(
        [{"timestamp": int(NOW.timestamp() * 1000), "message": json.dumps(line), "logStreamName": "s"}]
    )
    assert lc.is_request(df).tolist() == [True] and lc.is_error(df).tolist() == [True]
    f = s3.check_upload_errors(df)
    assert f.status == "fail" and f.data["by_type"] == {"AccessDenied": 1}
    assert latency.requests(df)["latency_ms"].tolist() == [84.1]


def test_a_dialect_nobody_mapped_raises_logs_unparsed_and_a_mapping_fixes_it() -> None:
    t0 = int(NOW.timestamp() * 1000)
    lines = [
        f"acme|{i}|POST|/api/v1/photos/upload|{500 if i % 3 == 0 else 201}|{0.05 + i / 1000:.3f}|"
        f"{'AccessDenied' if i % 3 == 0 else 'ok'}"
        for i in range(60)
    ]
    events = [
        {"timestamp": t0 - 1000 * (60 - i), "message": m, "logStreamName": "s"} for i, m in enumerate(lines)
    ]
    df = logparse.parse_events(events)
    f = lc.unparsed(df)
    assert f.status == "warn" and f.data["logs"]["not_understood"] == 60
    assert len(f.data["examples"]) == 3 and f.data["examples"][0].startswith("acme|")
    assert s3.check_upload_errors(df).status != "fail"  # silence: nothing read as an upload error
    mapping = logmapping.mapping_from_dict(
        {
            "name": "acme-pipe",
            "text_patterns": [
                r"^acme\|\d+\|(?P<method>[A-Z]+)\|(?P<path>[^|]+)\|(?P<status>\d{3})\|"
                r"(?P<latency_s>[\d.]+)\|(?P<message>.*)$"
            ],
        }
    )
    mapped = logparse.parse_events(events, mapping)
    assert lc.unparsed(mapped).status == "ok"
    assert "acme-pipe" in lc.summary(mapped)["dialect"]
    f = s3.check_upload_errors(mapped)
    assert f.status == "fail" and f.data["errors"] == 20 and f.data["by_type"] == {"AccessDenied": 20}
    assert latency.requests(mapped)["latency_ms"].max() == pytest.approx(109.0)


def test_no_request_lines_is_not_an_error() -> None:
    t0 = int(NOW.timestamp() * 1000)
    df = logparse.parse_events(
        [
            {
                "timestamp": t0 - i * 1000,
                "message": json.dumps({"level": "INFO", "msg": "tick"}),
                "logStreamName": "s",
            }
            for i in range(30)
        ]
    )
    f = latency.latency_high(latency.latency_per_minute({}, df), df)
    assert f.status == "warn" and "no latency data" in f.detail and f.data["logs"]["lines"] == 30
    assert s3.check_upload_errors(df).status == "skipped"
    assert notify.log_send_errors(df).status == "skipped"
    empty = logparse.parse_events([])
    assert lc.unparsed(empty).status == "warn" and lc.error_spike(empty).status == "skipped"
