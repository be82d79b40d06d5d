"""sources.logs: parse_events (fast path and fallbacks), fetch from a real moto server, Insights shapes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from propflow_ops.sources import aws, insights, logmapping, logparse, logs

DATA = Path(__file__).parent / "data"
T0 = 1_732_600_000_000  # 2024-11-26T05:46:40Z


def req(i: int, status: int = 200, **extra: Any) -> dict[str, Any]:
    rec = {
        "ts": "2024-11-26T05:46:40.000Z",
        "level": "ERROR" if status >= 500 else "INFO",
        "logger": "propflow.api.access",
        "event": "request_failed" if status >= 500 else "request_completed",
        "method": "GET",
        "path": f"/api/v1/properties/{i}",
        "status": status,
        "latency_ms": 10.5 + i,
        "request_id": f"req-{i}",
        "message": f"GET /api/v1/properties/{i} -> {status}",
    }
    rec.update(extra)
    return rec


def event(i: int, message: str | dict[str, Any], stream: str = "ecs/propflow-api/a") -> dict[str, Any]:
    msg = message if isinstance(message, str) else json.dumps(message)
    return {"timestamp": T0 + i, "message": msg, "logStreamName": stream, "ingestionTime": T0 + i + 5}


EXPECTED_DTYPES = {
    "timestamp": "datetime64[ns, UTC]",
    "status": "Int64",
    "latency_ms": "float64",
}


def test_empty_frame_has_the_columns_and_dtypes() -> None:
    df = logparse.empty_frame()
    assert list(df.columns) == logparse.COLUMNS
    assert len(df) == 0
    for col, dtype in EXPECTED_DTYPES.items():
        assert str(df[col].dtype) == dtype
    assert df["level"].dtype == logparse.parse_events([event(0, req(0))])["level"].dtype
    assert logparse.parse_events([]).dtypes.equals(df.dtypes)


def test_parse_events_json_and_plain_lines() -> None:
    trace = 'Traceback (most recent call last):\n  File "/app/x.py", line 1, in f\nValueError: bad é'
    events = [
        event(0, req(0)),
        event(1, trace, stream="ecs/propflow-api/b"),
        event(
            2,
            req(2, 503, provider="s3", error_code="AccessDenied", error_type="ClientError", client_id="c-9"),
        ),
    ]
    df = logparse.parse_events(events)
    assert list(df.columns) == logparse.COLUMNS
    assert len(df) == 3
    assert df["timestamp"].tolist() == [pd.Timestamp(T0 + i, unit="ms", tz="UTC") for i in range(3)]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["level"].tolist()[0] == "INFO" and df["level"].tolist()[2] == "ERROR"
    # a whole traceback in one event is an error, its type from the last line
    assert df["level"][1] == "ERROR" and df["error_type"][1] == "ValueError"
    assert df["format"].tolist() == ["json", "traceback", "json"]
    assert df["message"].tolist() == [
        "GET /api/v1/properties/0 -> 200",
        trace,
        "GET /api/v1/properties/2 -> 503",
    ]
    assert df["status"].tolist()[0] == 200 and df["status"].tolist()[2] == 503
    assert df["status"].isna().tolist() == [False, True, False]
    assert str(df["status"].dtype) == "Int64"
    assert df["latency_ms"].tolist()[0] == pytest.approx(10.5)
    assert np.isnan(df["latency_ms"][1])
    assert df["stream"].tolist() == ["ecs/propflow-api/a", "ecs/propflow-api/b", "ecs/propflow-api/a"]
    assert df["provider"].isna().tolist() == [True, True, False]
    assert (df["provider"][2], df["error_code"][2], df["error_type"][2]) == (
        "s3",
        "AccessDenied",
        "ClientError",
    )
    assert df["client_id"][2] == "c-9"
    assert df["request_id"][0] == "req-0"
    assert df["path"][2] == "/api/v1/properties/2"
    # the string columns behave like str for the checks
    assert (df["level"] == "ERROR").sum() == 2
    assert df["message"].str.contains("ValueError").tolist() == [False, True, False]


def test_parse_events_many_blocks_keep_order_and_values() -> None:
    n = logparse._CHUNK_EVENTS * 3 + 17
    events = [
        event(i, req(i, 500 if i % 7 == 0 else 200)) if i % 50 else event(i, f"plain line {i}")
        for i in range(n)
    ]
    df = logparse.parse_events(events)
    assert len(df) == n
    assert df["timestamp"].is_monotonic_increasing
    plain = df["level"].isna()
    assert plain.sum() == len(range(0, n, 50))
    assert df.loc[plain, "message"].tolist() == [f"plain line {i}" for i in range(0, n, 50)]
    json_rows = df[~plain]
    assert json_rows["request_id"].tolist() == [f"req-{i}" for i in range(n) if i % 50]
    assert int((df["status"] == 500).sum()) == sum(1 for i in range(n) if i % 50 and i % 7 == 0)


@pytest.mark.parametrize(
    "bad",
    [
        "{not json at all",
        '{"status": "two hundred", "level": "INFO"}',
        '{"level": "INFO", "message": {"nested": true}}',
        '{"a": 1}\n{"level": "X"}',
        '{\n  "level": "WARNING",\n  "status": 404\n}',
    ],
)
def test_odd_lines_fall_back_without_losing_the_others(bad: str) -> None:
    events = [event(i, req(i)) for i in range(20)]
    events.insert(10, event(99, bad))
    df = logparse.parse_events(events)
    assert len(df) == 21
    others = df.drop(index=10)
    assert others["request_id"].tolist() == [f"req-{i}" for i in range(20)]
    assert others["status"].tolist() == [200] * 20
    row = df.iloc[10]
    if bad.startswith("{\n"):
        assert (row["level"], row["status"]) == ("WARNING", 404)
    elif "nested" in bad:
        assert row["level"] == "INFO" and json.loads(row["message"]) == {"nested": True}
    elif "two hundred" in bad:
        assert row["level"] == "INFO" and pd.isna(row["status"])
    else:
        assert pd.isna(row["level"]) and row["message"] == bad


def test_trailing_newlines_and_empty_messages() -> None:
    events = [event(0, json.dumps(req(0)) + "\n"), event(1, ""), event(2, json.dumps(req(2)) + "\r\n")]
    df = logparse.parse_events(events)
    assert len(df) == 3
    assert df["request_id"].tolist()[0] == "req-0" and df["request_id"].tolist()[2] == "req-2"
    assert df["message"][1] == ""


def _odd_row(message: Any, **event_fields: Any) -> pd.Series:
    """Parse ``message`` between two ordinary request lines; the neighbours must survive."""
    events = [event(0, req(0)), {"timestamp": T0 + 1, "message": message, **event_fields}, event(2, req(2))]
    df = logparse.parse_events(events)
    assert len(df) == 3
    assert df["request_id"].tolist()[::2] == ["req-0", "req-2"]
    assert df["status"].tolist()[::2] == [200, 200]
    return df.iloc[1]


@pytest.mark.parametrize(
    ("message", "field", "expected"),
    [
        ('{"status": "200"}', "status", 200),
        ('{"status": 200.0}', "status", 200),
        ('{"status": 200.5}', "status", None),
        ('{"status": true}', "status", None),
        ('{"status": 99999999999999999999}', "status", None),  # beyond int64: used to raise OverflowError
        ('{"status": -5}', "status", -5),
        ('{"latency_ms": "12.5"}', "latency_ms", 12.5),
        ('{"latency_ms": 12}', "latency_ms", 12.0),
        ('{"latency_ms": "slow"}', "latency_ms", None),
        ('{"level": 5}', "level", "5"),
        ('{"level": ["a", 1]}', "level", '["A", 1]'),
        ('{"message": {"nested": true}}', "message", '{"nested": true}'),
        ('{"message": null}', "message", None),
        ('{"level": "INFO", "level": "ERROR"}', "level", "ERROR"),
    ],
)
def test_wrong_types_in_fields_are_coerced_or_missing(message: str, field: str, expected: Any) -> None:
    row = _odd_row(message)
    if expected is None:
        assert pd.isna(row[field])
    else:
        assert row[field] == expected


def test_missing_fields_are_missing_not_empty() -> None:
    row = _odd_row("{}", logStreamName="ecs/propflow-api/a")
    for col in logparse.COLUMNS:
        if col not in ("timestamp", "stream", "format"):
            assert pd.isna(row[col]), col
    assert row["format"] == "unknown"
    row = _odd_row('{"message": "only a message"}', logStreamName="s")
    assert row["message"] == "only a message" and pd.isna(row["level"]) and pd.isna(row["status"])


@pytest.mark.parametrize(
    "line",
    ["[1, 2]", "null", '"a JSON string"', ' {"level": "INFO"}', '{"level": "INFO"} trailing', "plain é ü 😀"],
)
def test_lines_that_are_not_one_json_object_are_plain_text(line: str) -> None:
    row = _odd_row(line, logStreamName="s")
    assert row["message"] == line
    assert pd.isna(row["level"]) and pd.isna(row["status"]) and pd.isna(row["latency_ms"])


def test_unicode_in_json_and_plain_lines() -> None:
    rec = req(1, path="/api/v1/propriétés/ü€", message='ok 😀 \u0000 "q" \\')
    events = [
        event(0, json.dumps(rec, ensure_ascii=False)),  # raw UTF-8 in the JSON
        event(1, json.dumps(rec)),  # \u escapes, a surrogate pair for the emoji
        event(2, "Traceback: ValueError: café 😀"),
    ]
    df = logparse.parse_events(events)
    assert df["path"].tolist()[:2] == ["/api/v1/propriétés/ü€"] * 2
    assert df["message"].tolist() == [
        'ok 😀 \u0000 "q" \\',
        'ok 😀 \u0000 "q" \\',
        "Traceback: ValueError: café 😀",
    ]


def test_lone_surrogates_become_replacement_marks() -> None:
    # Not valid Unicode: used to raise UnicodeEncodeError on the careful path.
    row = _odd_row("x\udcffy", logStreamName="s")
    assert row["message"] == "x?y" and pd.isna(row["level"])
    row = _odd_row('{"level": "INFO", "path": "/a\\udcff"}', logStreamName="s")
    assert row["level"] == "INFO" and row["path"] == "/a?"


def test_odd_event_envelopes() -> None:
    events = [
        {"timestamp": T0, "message": None, "logStreamName": "s"},
        {"timestamp": T0 + 1, "message": 5},
        {"timestamp": str(T0 + 2), "message": json.dumps(req(2)), "logStreamName": None},
        {"message": json.dumps(req(3)), "logStreamName": "s"},
    ]
    df = logparse.parse_events(events)
    assert df["message"].tolist()[:2] == ["", "5"]
    assert df["stream"].isna().tolist() == [False, True, True, False]
    assert df["request_id"].tolist()[2:] == ["req-2", "req-3"]
    assert df["timestamp"].tolist() == [pd.Timestamp(t, unit="ms", tz="UTC") for t in (T0, T0 + 1, T0 + 2, 0)]


# --------------------------------------------------------------------------- moto


@pytest.fixture
def log_group(aws_env: str, unique: str) -> dict[str, Any]:
    client = aws.client("logs")
    group = f"/ecs/propflow-api-{unique}"
    client.create_log_group(logGroupName=group)
    # CloudWatch refuses events older than 14 days: write into the last hour.
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=55)
    written = 0
    for s, stream in enumerate(("ecs/propflow-api/task1", "ecs/propflow-api/task2")):
        client.create_log_stream(logGroupName=group, logStreamName=stream)
        batch = []
        for i in range(150):
            ts = int((base + timedelta(seconds=i * 10 + s)).timestamp() * 1000)
            status = 500 if i % 10 == 0 else 200
            msg = json.dumps(req(i, status)) if i != 5 else "Traceback (most recent call last):\n  boom"
            batch.append({"timestamp": ts, "message": msg})
        resp = client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
        assert not resp.get("rejectedLogEventsInfo")
        written += len(batch)
    return {"group": group, "start": base, "end": base + timedelta(hours=1), "written": written}


def test_fetch_log_events_from_moto(log_group: dict[str, Any]) -> None:
    df = logs.fetch_log_events(log_group["group"], log_group["start"], log_group["end"])
    assert len(df) == log_group["written"] == 300
    assert df.attrs["truncated"] is False
    assert set(df["stream"]) == {"ecs/propflow-api/task1", "ecs/propflow-api/task2"}
    assert int((df["status"] == 500).sum()) == 30
    assert int(df["level"].isna().sum()) == 0  # the two tracebacks are errors
    assert int((df["level"] == "ERROR").sum()) == 32
    assert df["timestamp"].min() >= pd.Timestamp(log_group["start"])


def test_fetch_log_events_window_and_truncation(log_group: dict[str, Any]) -> None:
    start = log_group["start"]
    df = logs.fetch_log_events(log_group["group"], start, start + timedelta(seconds=95))
    assert len(df) == 20  # i = 0..9 in each of two streams (ts <= start + 95 s)
    capped = logs.fetch_log_events(log_group["group"], start, log_group["end"], max_events=42)
    assert len(capped) == 42
    assert capped.attrs["truncated"] is True


def test_fetch_with_bare_term_filter(log_group: dict[str, Any]) -> None:
    df = logs.fetch_log_events(log_group["group"], log_group["start"], log_group["end"], "Traceback")
    assert len(df) == 2
    assert df["message"].str.startswith("Traceback").all()


def test_fetch_missing_group_raises_client_error(aws_env: str, unique: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        logs.fetch_log_events(
            f"/nope/{unique}", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
        )
    assert "ResourceNotFoundException" in aws.aws_error_text(info.value)


def test_pages_read_past_botocore_give_what_botocore_gives(log_group: dict[str, Any], monkeypatch) -> None:
    """FilterLogEvents pages are read with json.loads (a before-parse hook) instead of botocore's
    per-member walk: page by page, the events and the paging are what botocore itself returns."""
    import boto3

    real, read = logs._events_without_botocore, []

    def spy(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **kw: Any) -> None:
        real(response_dict, customized_response_dict, **kw)
        read.append(len(customized_response_dict.get("events", [])))

    monkeypatch.setattr(logs, "_events_without_botocore", spy)
    hooked = logs._fast_pages(boto3.client("logs"))
    plain = boto3.client("logs")
    kwargs: dict[str, Any] = {
        "logGroupName": log_group["group"],
        "startTime": insights.epoch_ms(log_group["start"]),
        "endTime": insights.epoch_ms(log_group["end"]),
        "limit": 120,
    }
    pages = 0
    while True:
        ours, theirs = hooked.filter_log_events(**kwargs), plain.filter_log_events(**kwargs)
        ours.pop("ResponseMetadata"), theirs.pop("ResponseMetadata")
        assert ours == theirs
        pages += 1
        if not ours.get("nextToken"):
            break
        kwargs["nextToken"] = ours["nextToken"]
    assert pages == 3 and read == [120, 120, 60], read
    df = logs.fetch_log_events(log_group["group"], log_group["start"], log_group["end"], client=hooked)
    del kwargs["nextToken"], kwargs["limit"]
    pd.testing.assert_frame_equal(
        df, logparse.parse_events(plain.filter_log_events(**kwargs)["events"]), check_like=False
    )


@pytest.mark.parametrize(
    "response",
    [
        {"status_code": 400, "body": b'{"__type": "ResourceNotFoundException", "events": []}'},
        {"status_code": 200, "body": b"not json"},
        {"status_code": 200, "body": b'{"events": "not a list"}'},
        {"status_code": 200, "body": b'{"events": [1, 2]}'},
        {"status_code": 200, "body": b"[]"},
        {"status_code": 200, "body": b""},
    ],
)
def test_pages_botocore_should_judge_are_left_to_it(response: dict[str, Any]) -> None:
    before = dict(response)
    custom: dict[str, Any] = {}
    logs._events_without_botocore(response, custom)
    assert response == before and custom == {}


def test_estimate_and_fetch_or_aggregate_small_window(log_group: dict[str, Any]) -> None:
    count, exact = logs.estimate_event_count(log_group["group"], log_group["start"], log_group["end"])
    assert (count, exact) == (300, True)
    kind, df = logs.fetch_or_aggregate(log_group["group"], log_group["start"], log_group["end"])
    assert kind == "events" and len(df) == 300


class FakeInsightsClient:
    """Stands in for the Logs client where moto cannot go: Insights, and huge windows."""

    def __init__(self, results: list[dict[str, Any]], filter_pages: int = 0) -> None:
        self.results = list(results)
        self.filter_pages = filter_pages
        self.started: list[dict[str, Any]] = []
        self.stopped: list[str] = []

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        start = kwargs["startTime"]
        page = int(kwargs.get("nextToken") or 0)
        # 10k events per page covering one minute each: a 1 h window holds ~600k
        events = [{"timestamp": start + page * 60_000 + j * 6, "message": "{}"} for j in range(10_000)]
        return {"events": events, "nextToken": str(page + 1)}

    def start_query(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"queryId": "q-1"}

    def get_query_results(self, queryId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]

    def stop_query(self, queryId: str) -> dict[str, Any]:  # noqa: N803
        self.stopped.append(queryId)
        return {"success": True}


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def test_fetch_or_aggregate_large_window_uses_insights() -> None:
    fake = FakeInsightsClient([load("insights_running_empty.json"), load("insights_aggregate_aliases.json")])
    start = datetime(2024, 11, 26, 5, 0, tzinfo=UTC)
    kind, df = logs.fetch_or_aggregate("/ecs/propflow-api", start, start + timedelta(hours=1), client=fake)
    assert kind == "aggregate"
    assert df.attrs["estimated_events"] > logs.MAX_RAW_EVENTS
    assert fake.started[0]["queryString"] == insights.AGGREGATE_QUERY
    assert fake.started[0]["startTime"] == int(start.timestamp())
    assert df["requests"].tolist() == [1203, 1311]
    assert df["p95_latency_ms"].tolist() == [143.25, 988.5]
    assert str(df["minute"].dtype) == "datetime64[ns, UTC]"


def test_insights_aggregate_times_out_and_stops_the_query() -> None:
    fake = FakeInsightsClient([load("insights_running_empty.json")])
    start = datetime(2024, 11, 26, 5, 0, tzinfo=UTC)
    with pytest.raises(insights.InsightsTimeout):
        insights.insights_aggregate(
            "/g",
            start,
            start + timedelta(minutes=5),
            "stats count(*)",
            client=fake,
            poll_timeout_s=0.2,
            poll_interval_s=0.05,
        )
    assert fake.stopped == ["q-1"]


def test_parse_insights_stats_by_bin() -> None:
    df = insights.parse_insights_results(load("insights_stats_bin.json"))
    assert list(df.columns) == ["bin(1m)", "count(*)", "pct(latency_ms, 95)"]
    assert str(df["bin(1m)"].dtype) == "datetime64[ns, UTC]"
    # sorted by time
    assert df["bin(1m)"].tolist() == [
        pd.Timestamp("2024-11-26 05:46:00", tz="UTC"),
        pd.Timestamp("2024-11-26 05:47:00", tz="UTC"),
        pd.Timestamp("2024-11-26 05:48:00", tz="UTC"),
    ]
    assert str(df["count(*)"].dtype) == "Int64"
    assert df["count(*)"].tolist() == [1203, 1311, 1187]
    assert df["pct(latency_ms, 95)"].dtype == "float64"
    assert df["pct(latency_ms, 95)"].tolist() == [143.25, 151.0, 612.4]
    assert df.attrs["statistics"]["recordsMatched"] == 3701.0
    assert df.attrs["status"] == "Complete"


def test_parse_insights_fields_and_messages() -> None:
    df = insights.parse_insights_results(load("insights_fields_messages.json"))
    assert "@ptr" not in df.columns
    assert list(df.columns) == ["@timestamp", "@logStream", "@message", "status"]
    assert df["@timestamp"].tolist() == [
        pd.Timestamp("2024-11-26 05:46:59.001", tz="UTC"),
        pd.Timestamp("2024-11-26 05:47:12.345", tz="UTC"),
    ]
    assert df["@message"].tolist()[0].startswith("Traceback")
    # the field is missing in one row: NA, still numeric
    assert df["status"].isna().tolist() == [True, False]
    assert df["status"].tolist()[1] == 500


def test_parse_insights_empty() -> None:
    df = insights.parse_insights_results({"results": [], "status": "Complete"})
    assert len(df) == 0 and list(df.columns) == []


# --- dialects (issue 15) ---------------------------------------------------------------------------


def _parse(lines: list[str | dict[str, Any]], mapping: Any = None) -> pd.DataFrame:
    return logparse.parse_events([event(i, m) for i, m in enumerate(lines)], mapping)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            {
                "levelname": "ERROR",
                "method": "POST",
                "route": "/api/v1/photos/upload",
                "status_code": 500,
                "duration_ms": 84.1,
                "msg": "upload failed",
            },
            ("ERROR", "POST", "/api/v1/photos/upload", 500, 84.1),
        ),
        (
            {"severity": "warn", "http": {"method": "GET", "url": "/a", "status_code": 404}, "elapsed": 0.25},
            ("WARNING", "GET", "/a", 404, 250.0),
        ),
        (
            {
                "level": "info",
                "request": {"method": "GET", "path": "/b"},
                "response": {"status": 201},
                "response_time": 12,
            },
            ("INFO", "GET", "/b", 201, 12.0),
        ),
        (
            {"lvl": "error", "http.method": "PUT", "url": "/c", "status": "503", "latency": "1.5s"},
            ("ERROR", "PUT", "/c", 503, 1500.0),
        ),
        (
            {
                "level": 50,
                "req": {"method": "GET", "url": "/d"},
                "res": {"statusCode": 500},
                "responseTime": 7,
            },
            ("ERROR", "GET", "/d", 500, 7.0),
        ),
        (
            {
                "level": "INFO",
                "event": "request finished",
                "method": "GET",
                "path": "/e",
                "status": 200,
                "duration_us": 1500,
            },
            ("INFO", "GET", "/e", 200, 1.5),
        ),
        (
            '2026-11-27T10:00:00.123Z {"level": "INFO", "method": "GET", "path": "/f", "status": 200}',
            ("INFO", "GET", "/f", 200, None),
        ),
        (
            '10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /g?x=1 HTTP/1.1" 200 512 "-" "okhttp" 0.084213',
            (None, "GET", "/g?x=1", 200, 84.213),
        ),
        (
            'INFO:     10.0.0.5:53211 - "POST /h HTTP/1.1" 500 Internal Server Error',
            ("INFO", "POST", "/h", 500, None),
        ),
        (
            "2026-11-27 10:00:00,123 ERROR [propflow.api] POST /i 502 31.5ms - upstream died",
            ("ERROR", "POST", "/i", 502, 31.5),
        ),
        ("level=error method=GET path=/j status=502 duration=0.5", ("ERROR", "GET", "/j", 502, 500.0)),
        ({"message": "GET /k 200 15ms", "level": "info"}, ("INFO", "GET", "/k", 200, 15.0)),
    ],
)
def test_request_lines_in_common_dialects(line: str | dict[str, Any], expected: tuple[Any, ...]) -> None:
    row = _parse([line]).iloc[0]
    got = (row["level"], row["method"], row["path"], row["status"], row["latency_ms"])
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert pd.isna(g), (got, expected)
        elif isinstance(e, float):
            assert g == pytest.approx(e), (got, expected)
        else:
            assert g == e, (got, expected)
    assert row["format"] not in ("raw", "unknown")


def test_text_formats_and_tracebacks() -> None:
    df = _parse(
        [
            "2026-11-27 10:00:00,123 ERROR [propflow.api] boom\nTraceback (most recent call last):\n"
            '  File "/app/x.py", line 1, in f\nsqlalchemy.exc.OperationalError: too many clients',
            "[2026-11-27 10:00:00 +0000] [7] [CRITICAL] WORKER TIMEOUT (pid:12)",
            "2026-11-27 10:00:00,123 - propflow.db - WARNING - slow query: 900 ms SELECT 1",
            "Traceback (most recent call last):",
            '  File "/app/app/api/v1/units.py", line 88, in list_units',
            "KeyError: 'unit_id'",
            'stdout F {"severity": "ERROR", "message": "cri prefixed"}',
            "just some words",
        ]
    )
    assert df["level"].tolist()[:3] == ["ERROR", "CRITICAL", "WARNING"]
    assert df["error_type"][0] == "OperationalError"
    assert df["message"][2] == "slow query: 900 ms SELECT 1"
    # a traceback split over events: its frames are understood, one error (the exception line)
    assert df["format"].tolist()[3:6] == ["traceback"] * 3
    assert pd.isna(df["level"][3]) and pd.isna(df["level"][4]) and df["level"][5] == "ERROR"
    assert df["error_type"][5] == "KeyError"
    assert (df["level"][6], df["message"][6], df["format"][6]) == ("ERROR", "cri prefixed", "json+prefix")
    assert df["format"][7] == "raw" and df["message"][7] == "just some words"


def test_exc_info_makes_an_error_with_its_type() -> None:
    row = _parse(
        [
            {
                "levelname": "WARNING",
                "message": "retrying",
                "exc_info": 'Traceback (most recent call last):\n  File "x"\nbotocore.exceptions.ClientError: '
                "An error occurred (AccessDenied)",
            }
        ]
    ).iloc[0]
    assert row["level"] == "WARNING" and row["error_type"] == "ClientError"


def test_field_usage_is_reported() -> None:
    df = _parse(
        [{"levelname": "INFO", "http": {"status_code": 200, "method": "GET", "url": "/x"}, "duration": 0.1}]
    )
    used = df.attrs["log_fields"]
    assert used["status"] == {"http.status_code": 1} and used["latency_ms"] == {"duration": 1}
    assert df.attrs["mapping"] == "built-in"


def test_a_custom_mapping_reads_fields_units_and_text() -> None:
    mapping = logmapping.mapping_from_dict(
        {
            "name": "acme",
            "fields": {
                "status": ["resp.code"],
                "latency_ms": "timing.total",
                "path": "req.uri",
                "method": "req.verb",
                "level": "sev",
            },
            "units": {"timing.total": "s"},
            "text_patterns": r"^ACME (?P<level>\w+) (?P<method>[A-Z]+) (?P<path>\S+) -> (?P<status>\d{3}) in (?P<latency_us>\d+)us$",
        }
    )
    df = _parse(
        [
            {
                "sev": "error",
                "req": {"verb": "GET", "uri": "/x"},
                "resp": {"code": 502},
                "timing": {"total": 0.2},
            },
            "ACME INFO POST /y -> 201 in 1500us",
        ],
        mapping,
    )
    assert df["status"].tolist() == [502, 201] and df["latency_ms"].tolist() == pytest.approx([200.0, 1.5])
    assert df["path"].tolist() == ["/x", "/y"] and df["level"].tolist() == ["ERROR", "INFO"]
    assert df["format"].tolist() == ["json", "text:acme"] and df.attrs["mapping"] == "acme"
    # set once for every later parse (what the notebook's log_mapping parameter does), then back
    try:
        logparse.use_mapping(json.dumps({"fields": {"status": "resp.code"}}))
        assert logparse.parse_events([event(0, {"resp": {"code": 418}})])["status"][0] == 418
    finally:
        logparse.use_mapping("")
    assert pd.isna(logparse.parse_events([event(0, {"resp": {"code": 418}})])["status"][0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{not json", "log_mapping: not valid JSON"),
        ('["a"]', "expected an object"),
        ({"colour": 1}, "unknown key 'colour'"),
        ({"fields": {"statuz": "x"}}, "log_mapping.fields.statuz: not a column"),
        ({"fields": {"status": 5}}, "log_mapping.fields.status: expected a field name"),
        ({"units": {"t": "fortnights"}}, "log_mapping.units.t"),
        ({"text_patterns": ["("]}, "log_mapping.text_patterns[0]: not a regex"),
        ({"text_patterns": ["^no groups$"]}, "has no named group"),
        ({"text_patterns": ["^(?P<colour>x)$"]}, "unknown group 'colour'"),
    ],
)
def test_bad_mappings_are_bad_input_naming_the_key(spec: Any, message: str) -> None:
    from propflow_ops.incident import BadInput

    with pytest.raises(BadInput, match=re.escape(message)):
        logmapping.mapping_from_dict(spec)


def test_structlog_event_is_the_message_and_uvicorn_access_inside_json() -> None:
    df = _parse(
        [
            {"event": "request finished", "level": "info", "method": "GET", "path": "/x", "status_code": 200},
            {
                "message": '10.0.0.1:5000 - "GET /y HTTP/1.1" 404',
                "levelname": "INFO",
                "name": "uvicorn.access",
            },
        ]
    )
    assert df["message"][0] == "request finished" and df["event"][0] == "request finished"
    assert (df["method"][1], df["path"][1], df["status"][1]) == ("GET", "/y", 404)
    assert df["format"][1] == "json:request-in-message"


def test_team_file_logs_section_is_validated_and_becomes_the_log_mapping(tmp_path: Path) -> None:
    from propflow_ops import config
    from propflow_ops.run.parameters import notebook_parameters
    from propflow_ops.runbooks import RUNBOOKS

    good = tmp_path / "good.toml"
    good.write_text(
        '[logs]\nname = "acme"\nunits = {"timing.total" = "s"}\n'
        '[logs.fields]\nstatus = ["resp.code"]\nlatency_ms = "timing.total"\n'
    )
    cfg = config.load(str(good), env={})
    declared = notebook_parameters(RUNBOOKS["photo-upload"].path)
    pairs = dict(config.parameter_defaults(cfg, declared, set()))
    mapping = logmapping.mapping_from_dict(pairs["log_mapping"])
    assert (
        mapping.name == "acme"
        and mapping.fields["status"][0] == "resp.code"
        and mapping.factor("timing.total") == 1000
    )
    assert "log_mapping" not in dict(config.parameter_defaults(cfg, declared, {"log_mapping"}))  # -p wins
    bad = tmp_path / "bad.toml"
    bad.write_text('[logs.fields]\nstatuz = "x"\n')
    with pytest.raises(config.ConfigError, match=re.escape("logs.fields.statuz: not a column")):
        config.load(str(bad), env={})
